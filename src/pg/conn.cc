#include "pg/conn.h"

#include <libpq-fe.h>
#include <poll.h>

#include <cstring>

#include "base/random.h"

namespace tandem::pg {
namespace {

Status StatusFromResult(PGresult* r, PGconn* c) {
  const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  std::string msg = r ? PQresultErrorMessage(r) : PQerrorMessage(c);
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  if (msg.rfind("ERROR:  ", 0) == 0) msg = msg.substr(8);
  std::string s = state ? state : "";
  if (PQstatus(c) != CONNECTION_OK || s.rfind("08", 0) == 0 || s.rfind("57P", 0) == 0) {
    return Unavailable("PostgreSQL: " + msg);
  }
  if (s == "23505") return AlreadyExists(msg);
  if (s.rfind("22", 0) == 0 || s.rfind("23", 0) == 0) return InvalidArgument(msg);
  if (s == "40001" || s == "40P01") return Unavailable("PostgreSQL: " + msg);
  if (s == "25006") return FailedPrecondition(msg);  // read-only transaction (a standby)
  return Internal("PostgreSQL: " + msg + (s.empty() ? "" : " (SQLSTATE " + s + ")"));
}

int HexVal(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string ByteaParam(const std::string& bytes) { return "\\x" + HexEncode(bytes); }

Result<std::string> DecodeBytea(const std::string& text) {
  if (text.size() < 2 || text[0] != '\\' || text[1] != 'x' || text.size() % 2 != 0) {
    return Internal("unexpected bytea text from PostgreSQL");
  }
  std::string out;
  out.reserve(text.size() / 2 - 1);
  for (size_t i = 2; i < text.size(); i += 2) {
    int hi = HexVal(text[i]), lo = HexVal(text[i + 1]);
    if (hi < 0 || lo < 0) return Internal("bad hex in bytea");
    out.push_back(static_cast<char>(hi * 16 + lo));
  }
  return out;
}

Rows::Rows(pg_result* r) : r_(r) {}
Rows::Rows(Rows&& o) noexcept : r_(o.r_) { o.r_ = nullptr; }
Rows& Rows::operator=(Rows&& o) noexcept {
  if (this != &o) {
    if (r_) PQclear(r_);
    r_ = o.r_;
    o.r_ = nullptr;
  }
  return *this;
}
Rows::~Rows() {
  if (r_) PQclear(r_);
}
int Rows::size() const { return r_ ? PQntuples(r_) : 0; }
int Rows::affected() const {
  const char* n = r_ ? PQcmdTuples(r_) : "";
  return *n ? atoi(n) : 0;
}
bool Rows::IsNull(int row, int col) const { return PQgetisnull(r_, row, col) != 0; }
std::string Rows::Text(int row, int col) const {
  return std::string(PQgetvalue(r_, row, col), static_cast<size_t>(PQgetlength(r_, row, col)));
}
std::optional<std::string> Rows::Opt(int row, int col) const {
  if (IsNull(row, col)) return std::nullopt;
  return Text(row, col);
}
int64_t Rows::Int(int row, int col) const {
  return IsNull(row, col) ? 0 : std::stoll(PQgetvalue(r_, row, col));
}
bool Rows::Bool(int row, int col) const { return PQgetvalue(r_, row, col)[0] == 't'; }

namespace {
// Keyword and value arrays for the *Params calls: the string first (expanded), then options.
struct KeywordArrays {
  std::vector<const char*> keys, values;
  KeywordArrays(const std::string& dsn, const ConnOptions& options) {
    keys.push_back("dbname");
    values.push_back(dsn.c_str());
    for (const auto& [k, v] : options) {
      keys.push_back(k.c_str());
      values.push_back(v.c_str());
    }
    keys.push_back(nullptr);
    values.push_back(nullptr);
  }
};
}  // namespace

ConnOptions ServingOptions() {
  return {{"connect_timeout", "5"},
          {"keepalives", "1"},
          {"keepalives_idle", "10"},
          {"keepalives_interval", "5"},
          {"keepalives_count", "3"},
          {"tcp_user_timeout", "30000"},
          {"options", "-c statement_timeout=60000"}};
}

bool Ping(const std::string& dsn, int timeout_seconds) {
  KeywordArrays kw(dsn, {{"connect_timeout", std::to_string(timeout_seconds)}});
  return PQpingParams(kw.keys.data(), kw.values.data(), 1) == PQPING_OK;
}

Result<ConnPtr> Conn::Connect(const std::string& dsn, const ConnOptions& options) {
  KeywordArrays kw(dsn, options);
  PGconn* c = PQconnectdbParams(kw.keys.data(), kw.values.data(), 1);
  if (PQstatus(c) != CONNECTION_OK) {
    std::string msg = PQerrorMessage(c);
    PQfinish(c);
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    return Unavailable("cannot connect to PostgreSQL: " + msg);
  }
  return ConnPtr(new Conn(c));
}

Conn::~Conn() { PQfinish(c_); }

bool Conn::Healthy() const { return PQstatus(c_) == CONNECTION_OK; }

bool Conn::Idle() const { return PQtransactionStatus(c_) == PQTRANS_IDLE; }

bool Conn::CheckAlive() {
  if (!Healthy()) return false;
  // An idle pooled connection expects nothing from the server: anything readable is a
  // termination message or the end of the stream (a server that stopped or restarted).
  pollfd p{PQsocket(c_), POLLIN | POLLRDHUP, 0};
  return poll(&p, 1, 0) == 0;
}

Result<Rows> Conn::Exec(const std::string& sql, const Params& params) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) {
    if (p && p->find('\0') != std::string::npos) {
      return InvalidArgument("text may not contain a NUL character");
    }
    values.push_back(p ? p->c_str() : nullptr);
  }
  Count();
  PGresult* r = PQexecParams(c_, sql.c_str(), static_cast<int>(params.size()), nullptr,
                             values.data(), nullptr, nullptr, 0);
  ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    Status s = StatusFromResult(r, c_);
    if (r) PQclear(r);
    return s;
  }
  return Rows(r);
}

Status Conn::ExecScript(const std::string& sql) {
  Count();
  PGresult* r = PQexec(c_, sql.c_str());
  ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  Status s =
      (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) ? Status::Ok() : StatusFromResult(r, c_);
  if (r) PQclear(r);
  return s;
}

Pool::Lease::~Lease() {
  if (pool_ && conn_) pool_->Release(std::move(conn_));
}

Result<Pool::Lease> Pool::Acquire(std::chrono::milliseconds wait) {
  std::unique_lock lock(mu_);
  if (!cv_.wait_for(lock, wait, [&] { return !idle_.empty() || open_ < max_; })) {
    return Unavailable("no free PostgreSQL connection within " + std::to_string(wait.count()) +
                       " ms");
  }
  if (!idle_.empty()) {
    ConnPtr c = std::move(idle_.back());
    idle_.pop_back();
    if (c->CheckAlive()) return Lease(this, std::move(c));
    --open_;  // broken: drop it and open a new one below
  }
  ++open_;
  lock.unlock();
  auto c = Conn::Connect(dsn_, options_);
  if (!c.ok()) {
    std::lock_guard relock(mu_);
    --open_;
    cv_.notify_one();
    return c.status();
  }
  (*c)->CountInto(&statements_);
  return Lease(this, std::move(c).value());
}

void Pool::Release(ConnPtr c) {
  std::lock_guard lock(mu_);
  // A connection left inside a transaction (a caller that returned early or threw) is closed,
  // which rolls the transaction back, rather than handed to the next caller.
  if (c->Healthy() && c->Idle()) {
    idle_.push_back(std::move(c));
  } else {
    --open_;
  }
  cv_.notify_one();
}

Status Pool::WithTx(const std::function<Status(Conn&)>& fn) {
  ASSIGN_OR_RETURN(Lease lease, Acquire());
  RETURN_IF_ERROR(lease->ExecScript("BEGIN"));
  Status s = fn(*lease);
  if (!s.ok()) {
    (void)lease->ExecScript("ROLLBACK");
    return s;
  }
  return lease->ExecScript("COMMIT");
}

std::string DsnQuote(const std::string& v) {
  std::string out = "'";
  for (char c : v) {
    if (c == '\'' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out + "'";
}

}  // namespace tandem::pg
