// DNS for the platform zone: looking names up at one named server, and changing its records
// with TSIG-signed dynamic updates (RFC 2136, RFC 8945). ldns stays in dns.cc.
//
// The platform zone (`platform.zone`, default tandem.test) holds, per deployment, the host name
// of its API and that of its Execution API, and one name for the control plane; see names.h.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/status.h"

namespace tandem::dns {

// Where a DNS server answers: an IPv4 address and a port.
struct Server {
  std::string address;
  int port = 53;
  std::string ToString() const { return address + ":" + std::to_string(port); }
};

// Parses "ADDRESS:PORT" or "ADDRESS" (port 53). InvalidArgument with a sentence otherwise.
Result<Server> ParseServer(const std::string& text);

// A TSIG key (RFC 8945): its name, algorithm and secret (base64).
struct TsigKey {
  std::string name;                       // a DNS name, e.g. "tandem-update"
  std::string algorithm = "hmac-sha256";  // hmac-sha256, hmac-sha384, hmac-sha512
  std::string secret;                     // base64
};
// InvalidArgument when a part is missing or malformed.
Status CheckTsigKey(const TsigKey& key);

// One answer: the addresses of a name and how long they may be kept.
struct Addresses {
  std::vector<std::string> addresses;  // dotted IPv4
  uint32_t ttl = 0;                    // seconds (for a name that does not exist: the SOA minimum)
};

// Asks `server` for the A records of `name`, over UDP (TCP when the answer is truncated), once,
// within `timeout`. NotFound when the name does not exist or has no address (NXDOMAIN or an
// empty answer), Unavailable when the server does not answer or answers SERVFAIL/REFUSED.
Result<Addresses> LookUp(const Server& server, const std::string& name, Duration timeout);

// A change to a zone, applied in one message — all of it or none of it.
struct Update {
  std::string zone;
  uint32_t ttl = 5;
  std::map<std::string, std::string> set;  // name -> the one IPv4 address it should have
  std::vector<std::string> remove;         // names whose A records go
};

// Sends `update` to `server`, signed with `key`, over TCP. FailedPrecondition naming the
// problem when the server refuses it (a wrong or unknown key: BADKEY/BADSIG; NOTAUTH, REFUSED,
// NOTZONE), Unavailable when the server cannot be reached, InvalidArgument for a bad update.
Status SendUpdate(const Server& server, const TsigKey& key, const Update& update, Duration timeout);

// Remembers answers for their TTL, so a client resolving the same name on every request asks
// the server once per TTL. Forget() drops a name at once: clients call it on a connection error
// or a "not active" answer (DESIGN: clients don't wait out the TTL). Thread-safe.
class Resolver {
 public:
  Resolver(Server server, Duration timeout, Clock& clock = RealClock());
  // The first address of `name` (from the cache while its TTL lasts).
  Result<std::string> Resolve(const std::string& name);
  void Forget(const std::string& name);
  const Server& server() const { return server_; }

 private:
  struct Entry {
    std::string address;
    MonoTime expires{};
  };
  const Server server_;
  const Duration timeout_;
  Clock& clock_;
  std::mutex mu_;
  std::map<std::string, Entry> cache_;  // guarded by mu_
};

// True for a dotted IPv4 address (a host that needs no lookup).
bool IsIpv4Address(const std::string& host);

// Where a client connects for `host`: `host` itself when it is an IPv4 address or there is no
// resolver, else the address `resolver` has for it.
Result<std::string> ConnectAddress(Resolver* resolver, const std::string& host);

// The scheme, host and port of an http:// or https:// URL ("https://host:port/path..."); port
// 80 (443 for https) when absent.
struct HostPort {
  std::string host;
  int port = 80;
  bool https = false;
};
Result<HostPort> ParseHttpUrl(const std::string& url);

}  // namespace tandem::dns
