// A pool of threads that grows with its work and shrinks when it has none.
//
// The HTTP servers run each connection on a thread for as long as the connection lives, so a
// client that keeps a busy connection holds a thread the whole time. A fixed pool sized for the
// workers is then starved by a few such clients (the failover benchmark's 80 probes held all 32
// threads of a region and its workers' claims queued for minutes). This pool starts a thread
// when a job arrives and no thread is free, up to `max_threads`; a thread that has waited
// `idle` with nothing to do ends. Jobs beyond `max_threads` wait, first come first served.
//
// Thread-safe. Shutdown() (or the destructor) runs the jobs already queued, then joins every
// thread; Submit() after Shutdown() drops the job. A job must not call Shutdown().
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

namespace tandem {

class ElasticThreadPool {
 public:
  // REQUIRES: max_threads >= 1.
  ElasticThreadPool(size_t max_threads, std::chrono::milliseconds idle);
  ~ElasticThreadPool();
  ElasticThreadPool(const ElasticThreadPool&) = delete;
  ElasticThreadPool& operator=(const ElasticThreadPool&) = delete;

  void Submit(std::function<void()> job);
  void Shutdown();

  // Threads alive now, busy or idle, and those of them waiting for a job: what tests read.
  size_t Threads() const;
  size_t Idle() const;

 private:
  void Loop();

  // Constant after construction.
  const size_t max_threads_;
  const std::chrono::milliseconds idle_timeout_;

  mutable std::mutex mu_;
  std::condition_variable work_cv_;               // a job arrived, or shutdown
  std::condition_variable gone_cv_;               // a thread ended
  std::deque<std::function<void()>> jobs_;        // guarded by mu_
  std::map<std::thread::id, std::thread> alive_;  // guarded by mu_
  std::vector<std::thread> ended_;  // guarded by mu_: returned from Loop, not yet joined
  size_t idle_ = 0;                 // guarded by mu_: threads waiting for a job
  bool shutdown_ = false;           // guarded by mu_
};

}  // namespace tandem
