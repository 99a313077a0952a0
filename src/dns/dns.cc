#include "dns/dns.h"

#include <arpa/inet.h>
#include <ldns/ldns.h>

#include <charconv>
#include <memory>

#include "crypto/secret_box.h"

namespace tandem::dns {
namespace {

struct RdfFree {
  void operator()(ldns_rdf* p) const { ldns_rdf_deep_free(p); }
};
struct PktFree {
  void operator()(ldns_pkt* p) const { ldns_pkt_free(p); }
};
struct ResolverFree {
  void operator()(ldns_resolver* p) const { ldns_resolver_deep_free(p); }
};
struct RrListFree {
  void operator()(ldns_rr_list* p) const { ldns_rr_list_deep_free(p); }
};
using Rdf = std::unique_ptr<ldns_rdf, RdfFree>;
using Pkt = std::unique_ptr<ldns_pkt, PktFree>;
using LdnsResolver = std::unique_ptr<ldns_resolver, ResolverFree>;
using RrList = std::unique_ptr<ldns_rr_list, RrListFree>;

bool IsIpv4(const std::string& s) {
  in_addr a{};
  return inet_pton(AF_INET, s.c_str(), &a) == 1;
}

std::string Fqdn(const std::string& name) {
  return !name.empty() && name.back() == '.' ? name : name + ".";
}

std::string RdfText(const ldns_rdf* rdf) {
  char* s = ldns_rdf2str(rdf);
  std::string out = s != nullptr ? s : "";
  free(s);
  return out;
}

std::string RcodeName(ldns_pkt_rcode rcode) {
  switch (rcode) {
    case LDNS_RCODE_NOERROR:
      return "NOERROR";
    case LDNS_RCODE_FORMERR:
      return "FORMERR";
    case LDNS_RCODE_SERVFAIL:
      return "SERVFAIL";
    case LDNS_RCODE_NXDOMAIN:
      return "NXDOMAIN";
    case LDNS_RCODE_NOTIMPL:
      return "NOTIMP";
    case LDNS_RCODE_REFUSED:
      return "REFUSED";
    case LDNS_RCODE_YXDOMAIN:
      return "YXDOMAIN";
    case LDNS_RCODE_YXRRSET:
      return "YXRRSET";
    case LDNS_RCODE_NXRRSET:
      return "NXRRSET";
    case LDNS_RCODE_NOTAUTH:
      return "NOTAUTH";
    case LDNS_RCODE_NOTZONE:
      return "NOTZONE";
  }
  return "rcode " + std::to_string(static_cast<int>(rcode));
}

// A resolver that asks `server` only: no search list, no recursion, one try.
Result<LdnsResolver> MakeResolver(const Server& server, Duration timeout) {
  if (!IsIpv4(server.address) || server.port < 1 || server.port > 65535) {
    return InvalidArgument("DNS server " + server.ToString() +
                           ": expected an IPv4 address and a port 1-65535");
  }
  LdnsResolver r(ldns_resolver_new());
  if (!r) return Internal("cannot create a DNS resolver");
  Rdf ns(ldns_rdf_new_frm_str(LDNS_RDF_TYPE_A, server.address.c_str()));
  if (!ns || ldns_resolver_push_nameserver(r.get(), ns.get()) != LDNS_STATUS_OK) {
    return Internal("cannot use " + server.address + " as a DNS server");
  }
  ldns_resolver_set_port(r.get(), static_cast<uint16_t>(server.port));
  ldns_resolver_set_recursive(r.get(), false);
  ldns_resolver_set_retry(r.get(), 1);
  ldns_resolver_set_retrans(r.get(), 1);
  ldns_resolver_set_dnssec(r.get(), false);
  ldns_resolver_set_defnames(r.get(), false);
  ldns_resolver_set_dnsrch(r.get(), false);
  ldns_resolver_set_fallback(r.get(), true);  // TCP when the answer is truncated
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(timeout).count();
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(us / 1000000);
  tv.tv_usec = static_cast<suseconds_t>(us % 1000000);
  ldns_resolver_set_timeout(r.get(), tv);
  return r;
}

Status CheckHostName(const std::string& name, const std::string& what) {
  if (name.empty() || name.size() > 253) {
    return InvalidArgument(what + " \"" + name + "\" is not a DNS name (1-253 characters)");
  }
  Rdf rdf(ldns_dname_new_frm_str(name.c_str()));
  if (!rdf) return InvalidArgument(what + " \"" + name + "\" is not a DNS name");
  return Status::Ok();
}

}  // namespace

Result<Server> ParseServer(const std::string& text) {
  Server s;
  const size_t colon = text.rfind(':');
  s.address = colon == std::string::npos ? text : text.substr(0, colon);
  if (colon != std::string::npos) {
    const std::string port = text.substr(colon + 1);
    int p = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (port.empty() || ec != std::errc() || end != port.data() + port.size() || p < 1 ||
        p > 65535) {
      return InvalidArgument("DNS server \"" + text + "\": the port must be 1-65535");
    }
    s.port = p;
  }
  if (!IsIpv4(s.address)) {
    return InvalidArgument("DNS server \"" + text +
                           "\": expected ADDRESS:PORT with an IPv4 address");
  }
  return s;
}

Status CheckTsigKey(const TsigKey& key) {
  if (key.name.empty()) return InvalidArgument("the TSIG key has no name");
  RETURN_IF_ERROR(CheckHostName(key.name, "the TSIG key name"));
  if (key.algorithm != "hmac-sha256" && key.algorithm != "hmac-sha384" &&
      key.algorithm != "hmac-sha512") {
    return InvalidArgument("TSIG algorithm \"" + key.algorithm +
                           "\" is not one of hmac-sha256, hmac-sha384, hmac-sha512");
  }
  auto secret = Base64Decode(key.secret);
  if (key.secret.empty() || !secret.ok() || secret->size() < 16) {
    return InvalidArgument("the TSIG key " + key.name +
                           " needs a base64 secret of at least 16 bytes");
  }
  return Status::Ok();
}

Result<Addresses> LookUp(const Server& server, const std::string& name, Duration timeout) {
  RETURN_IF_ERROR(CheckHostName(name, "host name"));
  ASSIGN_OR_RETURN(LdnsResolver r, MakeResolver(server, timeout));
  Rdf qname(ldns_dname_new_frm_str(Fqdn(name).c_str()));
  ldns_pkt* raw = nullptr;
  ldns_status st =
      ldns_resolver_query_status(&raw, r.get(), qname.get(), LDNS_RR_TYPE_A, LDNS_RR_CLASS_IN, 0);
  Pkt answer(raw);
  if (st != LDNS_STATUS_OK || !answer) {
    return Unavailable("DNS server " + server.ToString() + " did not answer for " + name + ": " +
                       ldns_get_errorstr_by_id(st));
  }
  const ldns_pkt_rcode rcode = ldns_pkt_get_rcode(answer.get());
  if (rcode != LDNS_RCODE_NOERROR && rcode != LDNS_RCODE_NXDOMAIN) {
    return Unavailable("DNS server " + server.ToString() + " answered " + RcodeName(rcode) +
                       " for " + name);
  }
  Addresses out;
  RrList as(ldns_pkt_rr_list_by_type(answer.get(), LDNS_RR_TYPE_A, LDNS_SECTION_ANSWER));
  for (size_t i = 0; as && i < ldns_rr_list_rr_count(as.get()); ++i) {
    const ldns_rr* rr = ldns_rr_list_rr(as.get(), i);
    const ldns_rdf* a = ldns_rr_a_address(rr);
    if (a == nullptr) continue;
    out.addresses.push_back(RdfText(a));
    out.ttl = out.addresses.size() == 1 ? ldns_rr_ttl(rr) : std::min(out.ttl, ldns_rr_ttl(rr));
  }
  if (out.addresses.empty()) {
    return NotFound("DNS server " + server.ToString() + " has no address for " + name + " (" +
                    RcodeName(rcode) + ")");
  }
  return out;
}

Status SendUpdate(const Server& server, const TsigKey& key, const Update& update,
                  Duration timeout) {
  RETURN_IF_ERROR(CheckHostName(update.zone, "zone"));
  RETURN_IF_ERROR(CheckTsigKey(key));
  if (update.set.empty() && update.remove.empty()) return Status::Ok();
  ASSIGN_OR_RETURN(LdnsResolver r, MakeResolver(server, timeout));
  ldns_resolver_set_usevc(r.get(), true);  // TCP: an update of many names exceeds a datagram
  ldns_resolver_set_tsig_keyname(r.get(), Fqdn(key.name).c_str());
  ldns_resolver_set_tsig_algorithm(r.get(), (key.algorithm + ".").c_str());
  ldns_resolver_set_tsig_keydata(r.get(), key.secret.c_str());

  RrList updates(ldns_rr_list_new());
  // Deleting a name's A records (RFC 2136 2.5.2): class ANY, TTL 0, no data.
  auto remove_a = [&](const std::string& name) -> Status {
    RETURN_IF_ERROR(CheckHostName(name, "host name"));
    ldns_rr* rr = ldns_rr_new();
    ldns_rr_set_owner(rr, ldns_dname_new_frm_str(Fqdn(name).c_str()));
    ldns_rr_set_type(rr, LDNS_RR_TYPE_A);
    ldns_rr_set_class(rr, LDNS_RR_CLASS_ANY);
    ldns_rr_set_ttl(rr, 0);
    ldns_rr_list_push_rr(updates.get(), rr);
    return Status::Ok();
  };
  for (const std::string& name : update.remove) RETURN_IF_ERROR(remove_a(name));
  for (const auto& [name, address] : update.set) {
    if (!IsIpv4(address)) {
      std::string what = "the address of ";
      what.append(name).append(" (\"").append(address).append("\") is not IPv4");
      return InvalidArgument(what);
    }
    RETURN_IF_ERROR(remove_a(name));
    ldns_rr* rr = nullptr;
    const std::string text = Fqdn(name) + " " + std::to_string(update.ttl) + " IN A " + address;
    if (ldns_rr_new_frm_str(&rr, text.c_str(), update.ttl, nullptr, nullptr) != LDNS_STATUS_OK) {
      return InvalidArgument("cannot make the record \"" + text + "\"");
    }
    ldns_rr_list_push_rr(updates.get(), rr);
  }
  Pkt query(ldns_update_pkt_new(ldns_dname_new_frm_str(Fqdn(update.zone).c_str()), LDNS_RR_CLASS_IN,
                                nullptr, updates.get(), nullptr));
  if (!query) return Internal("cannot build a DNS update for " + update.zone);
  ldns_pkt_set_random_id(query.get());
  if (ldns_update_pkt_tsig_add(query.get(), r.get()) != LDNS_STATUS_OK) {
    return InvalidArgument("cannot sign the DNS update with the TSIG key " + key.name);
  }
  ldns_pkt* raw = nullptr;
  ldns_status st = ldns_resolver_send_pkt(&raw, r.get(), query.get());
  Pkt answer(raw);
  const std::string where = "DNS server " + server.ToString();
  if (st == LDNS_STATUS_CRYPTO_TSIG_BOGUS || st == LDNS_STATUS_CRYPTO_TSIG_ERR) {
    // The server's answer is not signed with our key: it did not know or accept it.
    return FailedPrecondition(where + " refused the update of zone " + update.zone +
                              ": the TSIG key " + key.name + " (" + key.algorithm +
                              ") is not the one it has (" + ldns_get_errorstr_by_id(st) + ")");
  }
  if (st != LDNS_STATUS_OK || !answer) {
    return Unavailable(where + " did not take the update of zone " + update.zone + ": " +
                       ldns_get_errorstr_by_id(st));
  }
  const ldns_pkt_rcode rcode = ldns_pkt_get_rcode(answer.get());
  if (rcode == LDNS_RCODE_NOTAUTH) {
    return FailedPrecondition(where + " refused the update of zone " + update.zone +
                              " (NOTAUTH): the TSIG key " + key.name + " (" + key.algorithm +
                              ") is unknown to it or its secret differs");
  }
  if (rcode == LDNS_RCODE_REFUSED || rcode == LDNS_RCODE_NOTZONE) {
    return FailedPrecondition(where + " refused the update of zone " + update.zone + " (" +
                              RcodeName(rcode) + "): does it serve that zone, and may key " +
                              key.name + " update it?");
  }
  if (rcode != LDNS_RCODE_NOERROR) {
    return Unavailable(where + " answered " + RcodeName(rcode) + " to the update of zone " +
                       update.zone);
  }
  return Status::Ok();
}

bool IsIpv4Address(const std::string& host) { return IsIpv4(host); }

Result<std::string> ConnectAddress(Resolver* resolver, const std::string& host) {
  if (resolver == nullptr || IsIpv4(host)) return host;
  return resolver->Resolve(host);
}

Result<HostPort> ParseHttpUrl(const std::string& url) {
  HostPort hp;
  std::string authority;
  if (url.starts_with("http://")) {
    authority = url.substr(7);
  } else if (url.starts_with("https://")) {
    authority = url.substr(8);
    hp.https = true;
    hp.port = 443;
  } else {
    return InvalidArgument("expected an http:// or https:// URL, got '" + url + "'");
  }
  authority = authority.substr(0, authority.find('/'));
  const size_t colon = authority.rfind(':');
  hp.host = authority.substr(0, colon);
  if (colon != std::string::npos) {
    const std::string port = authority.substr(colon + 1);
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), hp.port);
    if (port.empty() || ec != std::errc() || end != port.data() + port.size() || hp.port < 1 ||
        hp.port > 65535) {
      return InvalidArgument("the port of '" + url + "' must be 1-65535");
    }
  }
  if (hp.host.empty()) return InvalidArgument("'" + url + "' names no host");
  return hp;
}

Resolver::Resolver(Server server, Duration timeout, Clock& clock)
    : server_(std::move(server)), timeout_(timeout), clock_(clock) {}

Result<std::string> Resolver::Resolve(const std::string& name) {
  const MonoTime now = clock_.Now();
  {
    std::lock_guard lock(mu_);
    auto it = cache_.find(name);
    if (it != cache_.end() && now < it->second.expires) return it->second.address;
  }
  ASSIGN_OR_RETURN(Addresses a, LookUp(server_, name, timeout_));
  std::lock_guard lock(mu_);
  cache_[name] = Entry{a.addresses.front(), now + std::chrono::seconds(a.ttl)};
  return a.addresses.front();
}

void Resolver::Forget(const std::string& name) {
  std::lock_guard lock(mu_);
  cache_.erase(name);
}

}  // namespace tandem::dns
