// A thin layer over libpq: one connection, its results, and a small pool.
//
// Parameters and results travel as text (bytea as "\x..." hex). Errors come back as Status:
// connection failures are kUnavailable, unique violations kAlreadyExists, bad data
// kInvalidArgument, everything else kInternal; the SQLSTATE is kept in PgError for callers that
// must tell cases apart.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"

struct pg_conn;
struct pg_result;

namespace tandem::pg {

using Param = std::optional<std::string>;  // nullopt is SQL NULL
using Params = std::vector<Param>;

// Hex text for a bytea parameter, and back.
std::string ByteaParam(const std::string& bytes);
Result<std::string> DecodeBytea(const std::string& text);

// The rows of one statement. Owns the libpq result.
class Rows {
 public:
  Rows() = default;
  explicit Rows(pg_result* r);
  Rows(Rows&&) noexcept;
  Rows& operator=(Rows&&) noexcept;
  ~Rows();

  int size() const;
  int affected() const;  // rows changed by INSERT/UPDATE/DELETE
  bool IsNull(int row, int col) const;
  std::string Text(int row, int col) const;  // "" when NULL
  std::optional<std::string> Opt(int row, int col) const;
  int64_t Int(int row, int col) const;
  bool Bool(int row, int col) const;

 private:
  pg_result* r_ = nullptr;
};

// libpq keywords added to a connection string (they override what it says), e.g.
// {"connect_timeout", "3"}. The string itself may be key=value or a postgresql:// URI.
using ConnOptions = std::vector<std::pair<std::string, std::string>>;

// Timeouts for connections that serve requests: a server that stops answering costs seconds,
// not the kernel's minutes.
ConnOptions ServingOptions();

// True if the server at `dsn` accepts connections now (waits at most `timeout_seconds`).
bool Ping(const std::string& dsn, int timeout_seconds);

class Conn {
 public:
  // Connects once; kUnavailable if the server cannot be reached.
  static Result<std::unique_ptr<Conn>> Connect(const std::string& dsn,
                                               const ConnOptions& options = {});
  ~Conn();

  // InvalidArgument when a parameter holds a NUL character (libpq would cut it there).
  Result<Rows> Exec(const std::string& sql, const Params& params = {});
  // Runs several statements with no parameters (migrations).
  Status ExecScript(const std::string& sql);
  bool Healthy() const;
  // For an idle connection: false when the server sent anything since (it only does so to end
  // the session), so a server that went away is noticed before the connection is reused.
  bool CheckAlive();
  // No transaction open or failed on this connection.
  bool Idle() const;
  // Statements sent on this connection are also counted in *counter (a pool's).
  void CountInto(std::atomic<uint64_t>* counter) { counter_ = counter; }

 private:
  explicit Conn(pg_conn* c) : c_(c) {}
  void Count() {
    if (counter_ != nullptr) counter_->fetch_add(1, std::memory_order_relaxed);
  }
  pg_conn* c_;
  std::atomic<uint64_t>* counter_ = nullptr;
};

using ConnPtr = std::unique_ptr<Conn>;

// A fixed-size pool. Thread-safe. Broken connections are replaced on the next Acquire.
class Pool {
 public:
  Pool(std::string dsn, int max_size, ConnOptions options = {})
      : dsn_(std::move(dsn)), options_(std::move(options)), max_(max_size) {}

  class Lease {
   public:
    Lease(Pool* p, ConnPtr c) : pool_(p), conn_(std::move(c)) {}
    Lease(Lease&&) = default;
    ~Lease();
    Conn* operator->() { return conn_.get(); }
    Conn& operator*() { return *conn_; }

   private:
    Pool* pool_;
    ConnPtr conn_;
  };

  // Waits for a free connection up to `wait`; kUnavailable if none or PostgreSQL is down.
  Result<Lease> Acquire(std::chrono::milliseconds wait = std::chrono::seconds(10));

  // Runs `fn` in one transaction: COMMIT if it returns OK, ROLLBACK otherwise.
  Status WithTx(const std::function<Status(Conn&)>& fn);

  const std::string& dsn() const { return dsn_; }
  // Statements (and transaction commands) sent through this pool's connections so far.
  uint64_t statements() const { return statements_.load(std::memory_order_relaxed); }

 private:
  void Release(ConnPtr c);

  const std::string dsn_;
  const ConnOptions options_;
  const int max_;
  std::atomic<uint64_t> statements_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<ConnPtr> idle_;  // guarded by mu_
  int open_ = 0;               // guarded by mu_: connections handed out or idle
};

// Quotes a string as a libpq connection-string value.
std::string DsnQuote(const std::string& v);

}  // namespace tandem::pg
