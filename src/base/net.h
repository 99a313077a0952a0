// Loopback helpers for ports and addresses.
#pragma once

#include <string>

#include "base/status.h"

namespace tandem {

// A TCP port that was free on `host` a moment ago, chosen below the kernel's range for outgoing
// connections (so no client socket takes it before the caller binds it) and never the same
// twice in one process.
Result<int> PickFreePort(const std::string& host = "127.0.0.1");
// Fails with a clear message if nothing can bind host:port right now.
Status CheckPortFree(const std::string& host, int port);
// True for a dotted IPv4 address in 127.0.0.0/8.
bool IsLoopback(const std::string& address);
// True if a TCP connection to host:port succeeds within `timeout_ms`.
bool CanConnect(const std::string& host, int port, int timeout_ms = 500);

}  // namespace tandem
