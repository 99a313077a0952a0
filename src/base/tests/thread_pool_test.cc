#include "base/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace tandem {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// A gate that holds jobs until it is opened, and counts the jobs it holds.
class Gate {
 public:
  void Wait() {
    std::unique_lock lock(mu_);
    ++waiting_;
    changed_.notify_all();
    changed_.wait(lock, [this] { return open_; });
  }
  void Open() {
    std::lock_guard lock(mu_);
    open_ = true;
    changed_.notify_all();
  }
  // Whether `n` jobs are held within a few seconds.
  bool Holds(int n) {
    std::unique_lock lock(mu_);
    return changed_.wait_for(lock, seconds(10), [&] { return waiting_ == n; });
  }

 private:
  std::mutex mu_;
  std::condition_variable changed_;
  int waiting_ = 0;
  bool open_ = false;
};

TEST(ElasticThreadPoolTest, StartsAThreadForEachBusyJobUpToItsMaximum) {
  ElasticThreadPool pool(4, seconds(60));
  EXPECT_EQ(pool.Threads(), 0U);
  Gate gate;
  std::atomic<int> done{0};
  for (int i = 0; i < 6; ++i) {
    pool.Submit([&] {
      gate.Wait();
      ++done;
    });
  }
  // Four run at once, each on its own thread; the other two wait for one of them.
  ASSERT_TRUE(gate.Holds(4));
  EXPECT_EQ(pool.Threads(), 4U);
  gate.Open();
  pool.Shutdown();
  EXPECT_EQ(done.load(), 6);
  EXPECT_EQ(pool.Threads(), 0U);
}

TEST(ElasticThreadPoolTest, AJobThatHoldsItsThreadDoesNotHoldUpTheNext) {
  // A fixed pool of one would run the second job only after the first: here it gets a thread.
  ElasticThreadPool pool(8, seconds(60));
  Gate gate;
  std::atomic<bool> second_ran{false};
  pool.Submit([&] { gate.Wait(); });
  ASSERT_TRUE(gate.Holds(1));
  std::mutex mu;
  std::condition_variable cv;
  pool.Submit([&] {
    std::lock_guard lock(mu);
    second_ran = true;
    cv.notify_all();
  });
  {
    std::unique_lock lock(mu);
    EXPECT_TRUE(cv.wait_for(lock, seconds(10), [&] { return second_ran.load(); }));
  }
  gate.Open();
}

// Whether `pred` holds within 10 s, looked at every 5 ms.
template <typename Pred>
bool Eventually(Pred pred) {
  auto deadline = std::chrono::steady_clock::now() + seconds(10);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(5));
  }
  return true;
}

TEST(ElasticThreadPoolTest, AnIdleThreadIsReusedAndThenEnds) {
  ElasticThreadPool pool(8, seconds(1));
  for (int i = 0; i < 20; ++i) {
    // The thread that ran the last job waits for the next one.
    if (i > 0) {
      ASSERT_TRUE(Eventually([&] { return pool.Idle() == 1; }));
    }
    std::mutex mu;
    std::condition_variable cv;
    bool ran = false;
    pool.Submit([&] {
      std::lock_guard lock(mu);
      ran = true;
      cv.notify_all();
    });
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, seconds(10), [&] { return ran; }));
  }
  // One job at a time: the thread that ran the first ran them all.
  EXPECT_EQ(pool.Threads(), 1U);
  EXPECT_TRUE(Eventually([&] { return pool.Threads() == 0; }));
  // And a new job after that starts a new thread.
  std::atomic<bool> ran{false};
  pool.Submit([&] { ran = true; });
  pool.Shutdown();
  EXPECT_TRUE(ran.load());
}

TEST(ElasticThreadPoolTest, ShutdownRunsWhatIsQueuedAndThenDropsNewJobs) {
  ElasticThreadPool pool(1, seconds(60));
  Gate gate;
  std::atomic<int> done{0};
  pool.Submit([&] { gate.Wait(); });
  ASSERT_TRUE(gate.Holds(1));
  for (int i = 0; i < 3; ++i) pool.Submit([&] { ++done; });
  std::thread opener([&] {
    std::this_thread::sleep_for(milliseconds(50));
    gate.Open();
  });
  pool.Shutdown();
  opener.join();
  EXPECT_EQ(done.load(), 3);
  pool.Submit([&] { ++done; });
  EXPECT_EQ(done.load(), 3);
  EXPECT_EQ(pool.Threads(), 0U);
}

}  // namespace
}  // namespace tandem
