// The platform zone as the control plane keeps it: which host names point where, the DNS
// server it runs for them (Knot, when managed), and the signed updates that move every name to
// the active region at once.
//
// Names (docs/api.md, "Choosing a deployment by host name"): for each deployment
// <namespace>.<zone> (its API) and <namespace>-exec.<zone> (its Execution API), and api.<zone>
// (the region's own API: deployments, every path), all at the active region's address;
// control.<zone> at the control plane's address; ns.<zone> at the DNS server's.
//
// What was last published is kept in the ControlStore (dns_records), so a restarted control
// plane or DNS server starts from it, and Publish sends only the difference — in one TSIG-signed
// update, all of it or none of it.
//
// Thread-safety: every method may be called from any thread (the monitor and an operation's
// thread both publish); mu_ serialises them.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "dns/dns.h"

namespace tandem::dns {
class KnotServer;
}

namespace tandem::control {

class ControlStore;

struct DnsSettings {
  bool enabled = false;
  // The control plane runs Knot (true) or updates a DNS server run by someone else.
  bool managed = true;
  dns::Server server;  // where the DNS server answers (managed: where Knot listens)
  std::string zone = "tandem.test";
  uint32_t ttl = 5;
  dns::TsigKey key;
  std::string state_dir;  // managed: Knot's directory
  std::string run_as;     // managed: the user knotd runs as (when root)
  std::string knotd = "/usr/sbin/knotd";
  Duration timeout = std::chrono::seconds(2);           // one lookup or update
  std::string control_address;                          // control.<zone>
  std::map<std::string, std::string> region_addresses;  // region name -> IPv4 address
};

class DnsZone {
 public:
  // InvalidArgument for settings that cannot work (a bad key, zone, server or address).
  static Result<std::unique_ptr<DnsZone>> Create(DnsSettings s, ControlStore* store);
  ~DnsZone();

  // The records the zone should hold with `active` active and these deployment namespaces.
  std::map<std::string, std::string> Desired(const std::string& active,
                                             const std::set<std::string>& namespaces) const;
  // The namespaces whose names were last published.
  std::set<std::string> PublishedNamespaces();
  std::map<std::string, std::string> Published();

  // Managed: starts Knot with the zone rebuilt from `records`. No-op when not managed.
  Status StartServer(const std::map<std::string, std::string>& records);
  // Managed: true when Knot died since the last look (it is then reaped; StartServer again).
  bool ServerDied();
  void StopServer();

  // Makes the zone hold exactly `desired` (one signed update with the differences from what
  // was published), then records it. OK at once when nothing differs.
  Status Publish(const std::map<std::string, std::string>& desired);

  const DnsSettings& settings() const { return s_; }
  std::string ControlHost() const { return "control." + s_.zone; }
  std::string RegionApiHost() const { return "api." + s_.zone; }
  std::string ApiHost(const std::string& ns) const { return ns + "." + s_.zone; }
  std::string ExecHost(const std::string& ns) const { return ns + "-exec." + s_.zone; }

 private:
  DnsZone(DnsSettings s, ControlStore* store);

  const DnsSettings s_;
  ControlStore* const store_;
  std::unique_ptr<dns::KnotServer> knot_;  // managed only
  std::mutex mu_;                          // one Publish at a time
};

}  // namespace tandem::control
