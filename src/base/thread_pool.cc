#include "base/thread_pool.h"

#include <utility>

namespace tandem {

ElasticThreadPool::ElasticThreadPool(size_t max_threads, std::chrono::milliseconds idle)
    : max_threads_(max_threads < 1 ? 1 : max_threads), idle_timeout_(idle) {}

ElasticThreadPool::~ElasticThreadPool() { Shutdown(); }

void ElasticThreadPool::Submit(std::function<void()> job) {
  std::vector<std::thread> ended;
  {
    std::lock_guard lock(mu_);
    if (shutdown_) return;
    jobs_.push_back(std::move(job));
    ended.swap(ended_);
    // Every idle thread may already have a queued job to wake for: start one more when the
    // queue is longer than the threads waiting for it.
    if (jobs_.size() > idle_ && alive_.size() < max_threads_) {
      // The new thread's Loop takes mu_ first, so it finds itself in alive_.
      std::thread t([this] { Loop(); });
      std::thread::id id = t.get_id();
      alive_.emplace(id, std::move(t));
    } else {
      work_cv_.notify_one();
    }
  }
  // Threads that ended have left Loop (or are about to): joining them cannot wait long.
  for (std::thread& t : ended) t.join();
}

void ElasticThreadPool::Loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    ++idle_;
    bool woken =
        work_cv_.wait_for(lock, idle_timeout_, [this] { return shutdown_ || !jobs_.empty(); });
    --idle_;
    if (!jobs_.empty()) {
      std::function<void()> job = std::move(jobs_.front());
      jobs_.pop_front();
      lock.unlock();
      job();
      job = nullptr;  // whatever the job held goes before the lock is taken again
      lock.lock();
      continue;
    }
    if (shutdown_ || !woken) break;
  }
  auto self = alive_.find(std::this_thread::get_id());
  ended_.push_back(std::move(self->second));
  alive_.erase(self);
  gone_cv_.notify_all();
}

void ElasticThreadPool::Shutdown() {
  std::vector<std::thread> ended;
  {
    std::unique_lock lock(mu_);
    shutdown_ = true;
    work_cv_.notify_all();
    gone_cv_.wait(lock, [this] { return alive_.empty(); });
    ended.swap(ended_);
  }
  for (std::thread& t : ended) t.join();
}

size_t ElasticThreadPool::Threads() const {
  std::lock_guard lock(mu_);
  return alive_.size();
}

size_t ElasticThreadPool::Idle() const {
  std::lock_guard lock(mu_);
  return idle_;
}

}  // namespace tandem
