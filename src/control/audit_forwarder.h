// The control plane's part of the audit trail: who asked for each failover and failback, who was
// refused, and how each operation ended. The control plane holds no trail of its own; it hands
// each event to the active region (POST /internal/v1/audit), which appends it to the metadata's
// append-only trail — replicated with the metadata and promoted with it, so the record of a
// failover is in the region that the failover made active.
//
// Events wait in a queue, in order, until a region takes them: during a forced failover the old
// primary is gone and the new one not yet promoted, so the request that started it is written
// once the new primary is active, before the event that says how the operation ended. An event
// a region refuses as malformed is logged and dropped; the queue keeps at most `capacity`
// events, dropping the oldest (logged) beyond that.
//
// Thread-safety: Add may be called from any thread.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "base/clock.h"
#include "base/status.h"

namespace tandem::control {

class AuditForwarder {
 public:
  // Delivers one event (api::AuditEventToWire's text) to the region that writes the trail now.
  // InvalidArgument: the event is refused for good; any other error: try again `retry` later.
  using Send = std::function<Status(const std::string& event)>;

  explicit AuditForwarder(Send send, Duration retry = std::chrono::seconds(1),
                          size_t capacity = 10000);
  ~AuditForwarder();  // stops; what no region took by then is logged and dropped

  void Add(std::string event);
  // Events waiting for a region.
  size_t pending() const;

 private:
  void Loop();

  const Send send_;
  const Duration retry_;
  const size_t capacity_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;  // guarded by mu_
  bool stopping_ = false;          // guarded by mu_
  std::thread thread_;
};

}  // namespace tandem::control
