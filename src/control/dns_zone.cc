#include "control/dns_zone.h"

#include "control/control_store.h"
#include "dns/knot_server.h"

namespace tandem::control {
namespace {

constexpr char kExecSuffix[] = "-exec";

}  // namespace

Result<std::unique_ptr<DnsZone>> DnsZone::Create(DnsSettings s, ControlStore* store) {
  RETURN_IF_ERROR(dns::CheckTsigKey(s.key).WithContext("dns.tsig"));
  RETURN_IF_ERROR(dns::ParseServer(s.server.ToString()).status().WithContext("dns"));
  RETURN_IF_ERROR(
      dns::ParseServer(s.control_address).status().WithContext("the control plane's address"));
  for (const auto& [region, address] : s.region_addresses) {
    RETURN_IF_ERROR(
        dns::ParseServer(address).status().WithContext("the address of region " + region));
  }
  std::unique_ptr<DnsZone> z(new DnsZone(std::move(s), store));
  if (z->s_.managed) {
    dns::KnotOptions ko;
    ko.binary = z->s_.knotd;
    ko.state_dir = z->s_.state_dir;
    ko.listen = z->s_.server;
    ko.zone = z->s_.zone;
    ko.ttl = z->s_.ttl;
    ko.key = z->s_.key;
    ko.run_as = z->s_.run_as;
    ASSIGN_OR_RETURN(z->knot_, dns::KnotServer::Create(ko));
  }
  return z;
}

DnsZone::DnsZone(DnsSettings s, ControlStore* store) : s_(std::move(s)), store_(store) {}

DnsZone::~DnsZone() { StopServer(); }

std::map<std::string, std::string> DnsZone::Desired(const std::string& active,
                                                    const std::set<std::string>& namespaces) const {
  std::map<std::string, std::string> out;
  out[ControlHost()] = s_.control_address;
  auto it = s_.region_addresses.find(active);
  if (it == s_.region_addresses.end()) return out;
  out[RegionApiHost()] = it->second;
  for (const std::string& ns : namespaces) {
    out[ApiHost(ns)] = it->second;
    out[ExecHost(ns)] = it->second;
  }
  return out;
}

std::map<std::string, std::string> DnsZone::Published() {
  auto r = store_->DnsRecords();
  return r.ok() ? *r : std::map<std::string, std::string>();
}

std::set<std::string> DnsZone::PublishedNamespaces() {
  std::set<std::string> out;
  const std::string suffix = "." + s_.zone;
  for (const auto& [name, address] : Published()) {
    if (name == ControlHost() || name == RegionApiHost() || name.size() <= suffix.size()) {
      continue;
    }
    std::string label = name.substr(0, name.size() - suffix.size());
    if (label.size() > sizeof kExecSuffix - 1 &&
        label.compare(label.size() - (sizeof kExecSuffix - 1), std::string::npos, kExecSuffix) ==
            0) {
      continue;  // the API name of the same deployment says it
    }
    out.insert(label);
  }
  return out;
}

Status DnsZone::StartServer(const std::map<std::string, std::string>& records) {
  if (!knot_) return Status::Ok();
  return knot_->Start(records, std::chrono::seconds(10));
}

bool DnsZone::ServerDied() { return knot_ && !knot_->Alive(); }

void DnsZone::StopServer() {
  if (knot_) (void)knot_->Stop();
}

Status DnsZone::Publish(const std::map<std::string, std::string>& desired) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(auto published, store_->DnsRecords());
  if (published == desired) return Status::Ok();
  dns::Update u;
  u.zone = s_.zone;
  u.ttl = s_.ttl;
  for (const auto& [name, address] : desired) {
    auto it = published.find(name);
    if (it == published.end() || it->second != address) u.set[name] = address;
  }
  for (const auto& [name, address] : published) {
    if (desired.count(name) == 0) u.remove.push_back(name);
  }
  RETURN_IF_ERROR(dns::SendUpdate(s_.server, s_.key, u, s_.timeout));
  return store_->SetDnsRecords(desired);
}

}  // namespace tandem::control
