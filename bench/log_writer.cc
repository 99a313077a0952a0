// tandem-bench-log-writer LINES BYTES: the replication benchmark's log-writing task. Writes LINES
// lines a second of BYTES bytes each (newline included) to standard output, one write(2) a line,
// on a schedule that does not drift: when it falls behind it starts again from now, so what it
// wrote is what the machine let it write. Runs until it is killed or its output is closed.
//
// The same lines as the benchmark's bash writer (`--writer bash`), at a fraction of its CPU:
// bash's builtins took about 74 µs of CPU a line, 0.9 of a 2-core machine's cores for 1,250
// writers at 10 lines a second, which left the pair being measured a saturated machine.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>

namespace {

constexpr int64_t kNanos = 1'000'000'000;

bool ParseInt(const char* s, long lo, long hi, long* out) {
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) return false;
  *out = v;
  return true;
}

int64_t Nanos(const timespec& t) { return int64_t{t.tv_sec} * kNanos + t.tv_nsec; }

timespec Timespec(int64_t ns) {
  return timespec{static_cast<time_t>(ns / kNanos), static_cast<long>(ns % kNanos)};
}

int64_t Now(clockid_t clock) {
  timespec t{};
  clock_gettime(clock, &t);
  return Nanos(t);
}

bool WriteAll(const std::string& s) {
  size_t done = 0;
  while (done < s.size()) {
    ssize_t n = write(STDOUT_FILENO, s.data() + done, s.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  long lines = 0;
  long bytes = 0;
  if (argc != 3 || !ParseInt(argv[1], 1, 10'000, &lines) ||
      !ParseInt(argv[2], 2, 1 << 20, &bytes)) {
    std::fprintf(stderr,
                 "usage: %s LINES BYTES\n  LINES lines a second (1 to 10000) of BYTES bytes each "
                 "(2 to 1048576, newline included) on standard output, until killed\n",
                 argc > 0 ? argv[0] : "tandem-bench-log-writer");
    return 2;
  }
  std::signal(SIGPIPE, SIG_DFL);  // a closed output ends the writer
  const int64_t step = kNanos / lines;
  int64_t next = Now(CLOCK_MONOTONIC);
  std::string line;
  char text[96];
  for (uint64_t n = 1;; ++n) {
    const int64_t wall = Now(CLOCK_REALTIME);
    const int len =
        std::snprintf(text, sizeof text, "tandem replication bench line %llu at %lld.%06lld",
                      static_cast<unsigned long long>(n), static_cast<long long>(wall / kNanos),
                      static_cast<long long>(wall % kNanos / 1000));
    line.assign(text, static_cast<size_t>(std::max(0, len)));
    line.resize(static_cast<size_t>(bytes - 1), ' ');
    line.push_back('\n');
    if (!WriteAll(line)) return 1;
    next += step;
    const int64_t now = Now(CLOCK_MONOTONIC);
    if (next <= now) {
      next = now;
      continue;
    }
    const timespec until = Timespec(next);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, nullptr) == EINTR) {
    }
  }
}
