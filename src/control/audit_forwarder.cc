#include "control/audit_forwarder.h"

#include <spdlog/spdlog.h>

namespace tandem::control {

AuditForwarder::AuditForwarder(Send send, Duration retry, size_t capacity)
    : send_(std::move(send)), retry_(retry), capacity_(capacity) {
  thread_ = std::thread([this] { Loop(); });
}

AuditForwarder::~AuditForwarder() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
  if (!queue_.empty()) {
    spdlog::warn("audit: {} event(s) of the control plane reached no region and are dropped",
                 queue_.size());
  }
}

void AuditForwarder::Add(std::string event) {
  {
    std::lock_guard lock(mu_);
    if (queue_.size() >= capacity_) {
      spdlog::warn("audit: {} events wait for a region; dropping the oldest", queue_.size());
      queue_.pop_front();
    }
    queue_.push_back(std::move(event));
  }
  cv_.notify_all();
}

size_t AuditForwarder::pending() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

void AuditForwarder::Loop() {
  std::unique_lock lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (stopping_) return;
    const std::string event = queue_.front();
    lock.unlock();
    Status s = send_(event);
    lock.lock();
    if (s.ok() || s.code() == Code::kInvalidArgument) {
      if (!s.ok()) spdlog::error("audit: a region refused an event, dropped: {}", s.message());
      if (!queue_.empty() && queue_.front() == event) queue_.pop_front();
      continue;
    }
    spdlog::debug("audit: no region took the event yet: {}", s.message());
    cv_.wait_for(lock, retry_, [&] { return stopping_; });
  }
}

}  // namespace tandem::control
