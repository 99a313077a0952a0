// Layout (schema version 3, kept in PRAGMA user_version; 2 added dns_records, 3 the
// operations' started_by):
//   pair        one row (id = 1): epoch, active, standby, original_primary, promised
//   operations  one row per failover or failback; a partial unique index on state = 'running'
//               makes "at most one running" hold even if a caller skips BeginOperation's check
//   events      the audit log, ids increasing
//   dns_records the A records last published in the platform zone (name -> address), from
//               which a restarted DNS server's zone is rebuilt
// Every statement runs under mu_ on the one connection; multi-statement changes run in a
// BEGIN IMMEDIATE transaction so they are all-or-nothing.
#include "control/control_store.h"

#include <sqlite3.h>

#include <cerrno>
#include <cstring>
#include <string_view>
#include <utility>

namespace tandem::control {
namespace {

constexpr int kSchemaVersion = 3;
constexpr int kBusyTimeoutMs = 5000;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS pair (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  epoch INTEGER NOT NULL,
  active TEXT NOT NULL,
  standby TEXT NOT NULL,
  original_primary TEXT NOT NULL,
  promised INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS operations (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  kind TEXT NOT NULL,
  mode TEXT NOT NULL,
  from_region TEXT NOT NULL,
  to_region TEXT NOT NULL,
  epoch_from INTEGER NOT NULL,
  epoch_to INTEGER NOT NULL,
  fall_through INTEGER NOT NULL,
  declare_dead INTEGER NOT NULL,
  state TEXT NOT NULL,
  step TEXT NOT NULL,
  started_ms INTEGER NOT NULL,
  finished_ms INTEGER NOT NULL,
  detail TEXT NOT NULL,
  loss_bytes INTEGER NOT NULL,
  loss_seconds REAL NOT NULL,
  rto_seconds REAL NOT NULL,
  started_by TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX IF NOT EXISTS operations_one_running ON operations (state)
  WHERE state = 'running';
CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at_ms INTEGER NOT NULL,
  kind TEXT NOT NULL,
  region TEXT NOT NULL,
  epoch INTEGER NOT NULL,
  operation INTEGER NOT NULL,
  message TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS dns_records (
  name TEXT PRIMARY KEY,
  address TEXT NOT NULL
);
)sql";

constexpr const char* kOperationColumns =
    "id, kind, mode, from_region, to_region, epoch_from, epoch_to, fall_through, declare_dead, "
    "state, step, started_ms, finished_ms, detail, loss_bytes, loss_seconds, rto_seconds, "
    "started_by";

// The Status for SQLite result code `rc` while doing `what` on the database at `path`.
Status SqliteError(sqlite3* db, int rc, const std::string& path, const std::string& what) {
  std::string msg =
      "control store " + path + ": " + what + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Unavailable(msg + " (another process holds the database)");
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
      return PermissionDenied(msg);
    case SQLITE_CONSTRAINT:
      return FailedPrecondition(msg);
    case SQLITE_FULL:
      return Internal(msg + " (the disk is full)");
    case SQLITE_CANTOPEN:
    case SQLITE_IOERR:
      return Unavailable(msg);
    default:
      return Internal(msg);
  }
}

// One prepared statement, finalized on destruction. Bind errors surface at Step.
class Stmt {
 public:
  Stmt(sqlite3* db, const std::string& path, const char* sql) : db_(db), path_(path) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& Bind(int i, int64_t v) { return Check(sqlite3_bind_int64(stmt_, i, v)); }
  Stmt& Bind(int i, double v) { return Check(sqlite3_bind_double(stmt_, i, v)); }
  Stmt& Bind(int i, bool v) { return Bind(i, int64_t{v ? 1 : 0}); }
  Stmt& Bind(int i, const std::string& v) {
    return Check(
        sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
  }

  // True when a row is ready to read, false when the statement is done.
  Result<bool> Step() {
    if (rc_ != SQLITE_OK) return SqliteError(db_, rc_, path_, "preparing a statement");
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return SqliteError(db_, rc, path_, "running a statement");
  }
  // Runs a statement that returns no rows.
  Status Run() {
    auto r = Step();
    return r.ok() ? Status::Ok() : r.status();
  }

  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  double Real(int col) const { return sqlite3_column_double(stmt_, col); }
  std::string Text(int col) const {
    const auto* p = sqlite3_column_text(stmt_, col);
    return p ? std::string(reinterpret_cast<const char*>(p),
                           static_cast<size_t>(sqlite3_column_bytes(stmt_, col)))
             : std::string();
  }

 private:
  Stmt& Check(int rc) {
    if (rc_ == SQLITE_OK && rc != SQLITE_OK) rc_ = rc;
    return *this;
  }

  sqlite3* db_;
  const std::string& path_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_ = SQLITE_OK;
};

// Runs `sql` (one or more statements that return no rows).
Status Exec(sqlite3* db, const std::string& path, const char* sql) {
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
  if (rc == SQLITE_OK) return Status::Ok();
  std::string_view head(sql);
  head = head.substr(0, head.find_first_of("(\n"));
  return SqliteError(db, rc, path, "running " + std::string(head));
}

// BEGIN IMMEDIATE ... COMMIT; rolls back on destruction unless committed.
class Txn {
 public:
  Txn(sqlite3* db, const std::string& path) : db_(db), path_(path) {}
  ~Txn() {
    if (open_) (void)Exec(db_, path_, "ROLLBACK");
  }
  Txn(const Txn&) = delete;
  Txn& operator=(const Txn&) = delete;

  Status Begin() {
    RETURN_IF_ERROR(Exec(db_, path_, "BEGIN IMMEDIATE"));
    open_ = true;
    return Status::Ok();
  }
  Status Commit() {
    RETURN_IF_ERROR(Exec(db_, path_, "COMMIT"));
    open_ = false;
    return Status::Ok();
  }

 private:
  sqlite3* db_;
  const std::string& path_;
  bool open_ = false;
};

OperationRow ReadOperation(const Stmt& s) {
  OperationRow op;
  op.id = s.Int(0);
  op.kind = s.Text(1);
  op.mode = s.Text(2);
  op.from = s.Text(3);
  op.to = s.Text(4);
  op.epoch_from = s.Int(5);
  op.epoch_to = s.Int(6);
  op.fall_through = s.Int(7) != 0;
  op.declare_dead = s.Int(8) != 0;
  op.state = s.Text(9);
  op.step = s.Text(10);
  op.started_ms = s.Int(11);
  op.finished_ms = s.Int(12);
  op.detail = s.Text(13);
  op.loss_bytes = s.Int(14);
  op.loss_seconds = s.Real(15);
  op.rto_seconds = s.Real(16);
  op.started_by = s.Text(17);
  return op;
}

// Binds every field but the id, from parameter 1 on, in kOperationColumns order.
void BindOperation(Stmt& s, const OperationRow& op) {
  s.Bind(1, op.kind)
      .Bind(2, op.mode)
      .Bind(3, op.from)
      .Bind(4, op.to)
      .Bind(5, op.epoch_from)
      .Bind(6, op.epoch_to)
      .Bind(7, op.fall_through)
      .Bind(8, op.declare_dead)
      .Bind(9, op.state)
      .Bind(10, op.step)
      .Bind(11, op.started_ms)
      .Bind(12, op.finished_ms)
      .Bind(13, op.detail)
      .Bind(14, op.loss_bytes)
      .Bind(15, op.loss_seconds)
      .Bind(16, op.rto_seconds)
      .Bind(17, op.started_by);
}

EventRow ReadEvent(const Stmt& s) {
  EventRow e;
  e.id = s.Int(0);
  e.at_ms = s.Int(1);
  e.kind = s.Text(2);
  e.region = s.Text(3);
  e.epoch = s.Int(4);
  e.operation = s.Int(5);
  e.message = s.Text(6);
  return e;
}

Status CheckLimit(int limit) {
  if (limit <= 0) return InvalidArgument("limit must be positive, not " + std::to_string(limit));
  return Status::Ok();
}

Status NotInitialised() {
  return FailedPrecondition("the pair has not been initialised in the control store");
}

}  // namespace

Result<std::unique_ptr<ControlStore>> ControlStore::Open(const std::string& path) {
  if (path.empty()) return InvalidArgument("the control store needs a file path");
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = "cannot open the control store " + path + ": " +
                      (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    int err = db ? sqlite3_system_errno(db) : 0;
    if (err != 0) msg += " (" + std::string(strerror(err)) + ")";
    sqlite3_close(db);
    if (err == EACCES || err == EPERM || err == EROFS) return PermissionDenied(msg);
    if (err == ENOENT || err == ENOTDIR) return NotFound(msg);
    return Unavailable(msg);
  }
  // Owned by `store` from here on, so every error path below closes it.
  std::unique_ptr<ControlStore> store(new ControlStore(db, path));
  sqlite3_busy_timeout(db, kBusyTimeoutMs);

  {
    Stmt wal(db, path, "PRAGMA journal_mode=WAL");
    ASSIGN_OR_RETURN(bool row, wal.Step());
    if (!row || wal.Text(0) != "wal") {
      return Unavailable("control store " + path + ": cannot switch to write-ahead logging");
    }
  }
  RETURN_IF_ERROR(Exec(db, path, "PRAGMA synchronous=FULL"));

  Txn txn(db, path);
  RETURN_IF_ERROR(txn.Begin());
  int64_t version = 0;
  {
    Stmt v(db, path, "PRAGMA user_version");
    ASSIGN_OR_RETURN(bool row, v.Step());
    if (row) version = v.Int(0);
  }
  if (version > kSchemaVersion) {
    return FailedPrecondition("control store " + path + " has schema version " +
                              std::to_string(version) + ", newer than this build knows (" +
                              std::to_string(kSchemaVersion) + ")");
  }
  RETURN_IF_ERROR(Exec(db, path, kSchema));
  if (version >= 1 && version < 3) {
    // The operations table of an older store lacks started_by (CREATE ... IF NOT EXISTS kept it).
    RETURN_IF_ERROR(
        Exec(db, path, "ALTER TABLE operations ADD COLUMN started_by TEXT NOT NULL DEFAULT ''"));
  }
  RETURN_IF_ERROR(
      Exec(db, path, ("PRAGMA user_version=" + std::to_string(kSchemaVersion)).c_str()));
  RETURN_IF_ERROR(txn.Commit());
  return store;
}

ControlStore::~ControlStore() { sqlite3_close(db_); }

Result<std::optional<PairRow>> ControlStore::PairLocked() {
  Stmt s(db_, path_,
         "SELECT epoch, active, standby, original_primary, promised FROM pair WHERE id = 1");
  ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return std::optional<PairRow>();
  PairRow p;
  p.epoch = s.Int(0);
  p.active = s.Text(1);
  p.standby = s.Text(2);
  p.original_primary = s.Text(3);
  p.promised = s.Int(4);
  return std::optional<PairRow>(std::move(p));
}

Result<PairRow> ControlStore::InitPair(const PairRow& initial) {
  if (initial.active.empty() || initial.standby.empty() || initial.active == initial.standby) {
    return InvalidArgument("a pair needs two distinct region names");
  }
  if (initial.original_primary != initial.active && initial.original_primary != initial.standby) {
    return InvalidArgument("the original primary \"" + initial.original_primary +
                           "\" is neither region of the pair");
  }
  std::lock_guard lock(mu_);
  Txn txn(db_, path_);
  RETURN_IF_ERROR(txn.Begin());
  ASSIGN_OR_RETURN(std::optional<PairRow> stored, PairLocked());
  if (stored) return *stored;
  Stmt s(db_, path_,
         "INSERT INTO pair (id, epoch, active, standby, original_primary, promised) "
         "VALUES (1, ?, ?, ?, ?, ?)");
  s.Bind(1, initial.epoch)
      .Bind(2, initial.active)
      .Bind(3, initial.standby)
      .Bind(4, initial.original_primary)
      .Bind(5, initial.promised);
  RETURN_IF_ERROR(s.Run());
  RETURN_IF_ERROR(txn.Commit());
  return initial;
}

Result<PairRow> ControlStore::Pair() {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(std::optional<PairRow> stored, PairLocked());
  if (!stored) return NotInitialised();
  return *stored;
}

Status ControlStore::SetPair(const PairRow& p) {
  std::lock_guard lock(mu_);
  Txn txn(db_, path_);
  RETURN_IF_ERROR(txn.Begin());
  ASSIGN_OR_RETURN(std::optional<PairRow> stored, PairLocked());
  if (!stored) return NotInitialised();
  if (p.epoch < stored->epoch) {
    return FailedPrecondition("the pair is at epoch " + std::to_string(stored->epoch) +
                              "; it cannot go back to epoch " + std::to_string(p.epoch));
  }
  Stmt s(db_, path_,
         "UPDATE pair SET epoch = ?, active = ?, standby = ?, original_primary = ?, "
         "promised = MAX(promised, ?) WHERE id = 1");
  s.Bind(1, p.epoch).Bind(2, p.active).Bind(3, p.standby).Bind(4, p.original_primary);
  s.Bind(5, p.promised);
  RETURN_IF_ERROR(s.Run());
  return txn.Commit();
}

Status ControlStore::SetPromised(int64_t promised) {
  std::lock_guard lock(mu_);
  Stmt s(db_, path_, "UPDATE pair SET promised = MAX(promised, ?) WHERE id = 1");
  s.Bind(1, promised);
  RETURN_IF_ERROR(s.Run());
  if (sqlite3_changes(db_) == 0) return NotInitialised();
  return Status::Ok();
}

Result<std::optional<OperationRow>> ControlStore::RunningLocked() {
  Stmt s(db_, path_,
         (std::string("SELECT ") + kOperationColumns +
          " FROM operations WHERE state = 'running' ORDER BY id LIMIT 1")
             .c_str());
  ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return std::optional<OperationRow>();
  return std::optional<OperationRow>(ReadOperation(s));
}

Result<OperationRow> ControlStore::BeginOperation(OperationRow op) {
  std::lock_guard lock(mu_);
  Txn txn(db_, path_);
  RETURN_IF_ERROR(txn.Begin());
  ASSIGN_OR_RETURN(std::optional<OperationRow> running, RunningLocked());
  if (running) {
    return FailedPrecondition("operation " + std::to_string(running->id) + " (" + running->mode +
                              " " + running->kind + " from " + running->from + " to " +
                              running->to + ") is still running, at step \"" + running->step +
                              "\"; wait for it to end");
  }
  op.state = "running";
  Stmt s(db_, path_,
         "INSERT INTO operations (kind, mode, from_region, to_region, epoch_from, epoch_to, "
         "fall_through, declare_dead, state, step, started_ms, finished_ms, detail, loss_bytes, "
         "loss_seconds, rto_seconds, started_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
         "?, ?, ?, ?)");
  BindOperation(s, op);
  RETURN_IF_ERROR(s.Run());
  op.id = sqlite3_last_insert_rowid(db_);
  RETURN_IF_ERROR(txn.Commit());
  return op;
}

Status ControlStore::UpdateOperation(const OperationRow& op) {
  std::lock_guard lock(mu_);
  Stmt s(db_, path_,
         "UPDATE operations SET kind = ?, mode = ?, from_region = ?, to_region = ?, "
         "epoch_from = ?, epoch_to = ?, fall_through = ?, declare_dead = ?, state = ?, step = ?, "
         "started_ms = ?, finished_ms = ?, detail = ?, loss_bytes = ?, loss_seconds = ?, "
         "rto_seconds = ?, started_by = ? WHERE id = ?");
  BindOperation(s, op);
  s.Bind(18, op.id);
  RETURN_IF_ERROR(s.Run());
  if (sqlite3_changes(db_) == 0) {
    return NotFound("no operation " + std::to_string(op.id) + " in the control store");
  }
  return Status::Ok();
}

Result<std::optional<OperationRow>> ControlStore::RunningOperation() {
  std::lock_guard lock(mu_);
  return RunningLocked();
}

Result<OperationRow> ControlStore::Operation(int64_t id) {
  std::lock_guard lock(mu_);
  Stmt s(db_, path_,
         (std::string("SELECT ") + kOperationColumns + " FROM operations WHERE id = ?").c_str());
  s.Bind(1, id);
  ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return NotFound("no operation " + std::to_string(id) + " in the control store");
  return ReadOperation(s);
}

Result<std::vector<OperationRow>> ControlStore::Operations(int limit) {
  RETURN_IF_ERROR(CheckLimit(limit));
  std::lock_guard lock(mu_);
  Stmt s(db_, path_,
         (std::string("SELECT ") + kOperationColumns + " FROM operations ORDER BY id DESC LIMIT ?")
             .c_str());
  s.Bind(1, int64_t{limit});
  std::vector<OperationRow> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.push_back(ReadOperation(s));
  }
  return out;
}

Result<EventRow> ControlStore::AddEvent(EventRow e) {
  std::lock_guard lock(mu_);
  Stmt s(db_, path_,
         "INSERT INTO events (at_ms, kind, region, epoch, operation, message) "
         "VALUES (?, ?, ?, ?, ?, ?)");
  s.Bind(1, e.at_ms).Bind(2, e.kind).Bind(3, e.region).Bind(4, e.epoch).Bind(5, e.operation);
  s.Bind(6, e.message);
  RETURN_IF_ERROR(s.Run());
  e.id = sqlite3_last_insert_rowid(db_);
  return e;
}

Result<std::vector<EventRow>> ControlStore::Events(int limit, int64_t after_id) {
  RETURN_IF_ERROR(CheckLimit(limit));
  std::lock_guard lock(mu_);
  const bool follow = after_id > 0;
  Stmt s(db_, path_,
         follow ? "SELECT id, at_ms, kind, region, epoch, operation, message FROM events "
                  "WHERE id > ? ORDER BY id ASC LIMIT ?"
                : "SELECT id, at_ms, kind, region, epoch, operation, message FROM events "
                  "ORDER BY id DESC LIMIT ?");
  if (follow) {
    s.Bind(1, after_id).Bind(2, int64_t{limit});
  } else {
    s.Bind(1, int64_t{limit});
  }
  std::vector<EventRow> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.push_back(ReadEvent(s));
  }
  return out;
}

Result<std::map<std::string, std::string>> ControlStore::DnsRecords() {
  std::lock_guard lock(mu_);
  Stmt s(db_, path_, "SELECT name, address FROM dns_records ORDER BY name");
  std::map<std::string, std::string> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out[s.Text(0)] = s.Text(1);
  }
  return out;
}

Status ControlStore::SetDnsRecords(const std::map<std::string, std::string>& records) {
  std::lock_guard lock(mu_);
  Txn txn(db_, path_);
  RETURN_IF_ERROR(txn.Begin());
  RETURN_IF_ERROR(Exec(db_, path_, "DELETE FROM dns_records"));
  for (const auto& [name, address] : records) {
    Stmt s(db_, path_, "INSERT INTO dns_records (name, address) VALUES (?, ?)");
    s.Bind(1, name).Bind(2, address);
    RETURN_IF_ERROR(s.Run());
  }
  return txn.Commit();
}

}  // namespace tandem::control
