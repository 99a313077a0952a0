#include "control/control_plane.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <future>
#include <nlohmann/json.hpp>
#include <set>

#include "api/audit.h"
#include "api/errors.h"
#include "api/http.h"
#include "api/json_util.h"
#include "base/fs.h"
#include "control/control_store.h"
#include "control/failover.h"
#include "control/http_link.h"
#include "control/remote_authorizer.h"
#include "dr/lease.h"
#include "rpc/client.h"

namespace tandem::control {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

double Seconds(Duration d) { return std::chrono::duration<double>(d).count(); }

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             RealClock().Wall().time_since_epoch())
      .count();
}

std::string IsoMs(int64_t ms) {
  if (ms <= 0) return "";
  time_t secs = static_cast<time_t>(ms / 1000);
  tm t{};
  gmtime_r(&secs, &t);
  char buf[40];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &t);
  char out[48];
  snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(ms % 1000));
  return out;
}

// Who an operation the control plane starts by itself is recorded as started by.
constexpr const char* kControlPlane = "control plane";

// The principal a request to start an operation came from, as the trail names it.
std::string PrincipalOf(const api::Request& req) {
  return req.principal ? req.principal->name : kControlPlane;
}

Json OperationJson(const OperationRow& op) {
  Json j = {{"id", op.id},
            {"kind", op.kind},
            {"mode", op.mode},
            {"from", op.from},
            {"to", op.to},
            {"epoch_from", op.epoch_from},
            {"epoch_to", op.epoch_to},
            {"fall_through", op.fall_through},
            {"declare_dead", op.declare_dead},
            {"state", op.state},
            {"step", op.step},
            {"started_at", IsoMs(op.started_ms)},
            {"finished_at", op.finished_ms > 0 ? Json(IsoMs(op.finished_ms)) : Json(nullptr)},
            {"detail", op.detail},
            {"started_by", op.started_by}};
  j["loss_bytes"] = op.loss_bytes >= 0 ? Json(op.loss_bytes) : Json(nullptr);
  j["loss_seconds"] = op.loss_seconds >= 0 ? Json(op.loss_seconds) : Json(nullptr);
  j["rto_seconds"] = op.rto_seconds >= 0 ? Json(op.rto_seconds) : Json(nullptr);
  return j;
}

Json EventJson(const EventRow& e) {
  return {{"id", e.id},          {"at", IsoMs(e.at_ms)},
          {"kind", e.kind},      {"region", e.region},
          {"epoch", e.epoch},    {"operation", e.operation > 0 ? Json(e.operation) : Json(nullptr)},
          {"message", e.message}};
}

Result<Json> BodyObject(const std::string& body) {
  // Depth-limited, as every server's bodies are (api::kMaxJsonDepth).
  ASSIGN_OR_RETURN(Json j, api::ParseJson(body.empty() ? "{}" : body, "the request body"));
  if (!j.is_object()) return InvalidArgument("the request body must be a JSON object");
  return j;
}

Result<bool> BoolField(const Json& j, const std::string& key) {
  if (!j.contains(key)) return false;
  if (!j[key].is_boolean()) return InvalidArgument(key + ": expected true or false");
  return j[key].get<bool>();
}

}  // namespace

ControlPlane::ControlPlane(ControlSettings s)
    : s_(std::move(s)), metrics_(Labels{{"pair", s_.pair}}) {}

ControlPlane::~ControlPlane() { Stop(); }

int ControlPlane::http_port() const { return http_ ? http_->port() : 0; }

Result<std::unique_ptr<ControlPlane>> ControlPlane::Start(ControlSettings s) {
  if (s.regions.size() != 2) return InvalidArgument("a pair has exactly two regions");
  std::unique_ptr<ControlPlane> c(new ControlPlane(std::move(s)));
  Status st = c->StartAll();
  if (!st.ok()) {
    c->Stop();
    return st;
  }
  return c;
}

Status ControlPlane::StartAll() {
  Status dir = EnsureWritableDir(s_.state_dir);
  if (!dir.ok()) {
    return {dir.code(), "state directory " + s_.state_dir + " is not usable: " + dir.message()};
  }
  ASSIGN_OR_RETURN(credential_, rpc::InternalCredential(s_.secret_key));
  ASSIGN_OR_RETURN(store_, ControlStore::Open(s_.state_dir + "/control.sqlite"));
  PairRow initial;
  for (const RegionEndpoint& r : s_.regions) {
    if (r.original_primary) {
      initial.active = r.name;
      initial.original_primary = r.name;
    } else {
      initial.standby = r.name;
    }
  }
  ASSIGN_OR_RETURN(PairRow pair, store_->InitPair(initial));
  for (const RegionEndpoint& r : s_.regions) {
    Duration timeout = std::max<Duration>(100ms, s_.health_interval * 4 / 5);
    links_[r.name] =
        std::make_unique<HttpRegionLink>(r.name, r.url, credential_, timeout, s_.address, s_.trust);
    health_[r.name];
  }
  // A restarted voter cannot know which grants it made before: it counts one whole lease as
  // possibly outstanding (a failover right after a restart waits for it).
  voter_ = std::make_unique<dr::Voter>(
      &RealClock(), "control", pair.promised,
      [this](int64_t promised) { return store_->SetPromised(promised); }, s_.lease);
  FailoverOptions fo;
  fo.drain_timeout = s_.drain_timeout;
  fo.planned_timeout = s_.planned_timeout;
  fo.lease = s_.lease;
  std::function<Status(const std::string&)> publish;
  if (s_.dns.enabled) {
    ASSIGN_OR_RETURN(dns_, DnsZone::Create(s_.dns, store_.get()));
    // The zone is rebuilt from what the control plane knows: the active region and the names
    // it published last.
    const auto records = DesiredRecords(pair.active);
    if (s_.dns.managed) {
      RETURN_IF_ERROR(dns_->StartServer(records));
      RETURN_IF_ERROR(store_->SetDnsRecords(records));
    } else {
      (void)PublishDns(pair.active);  // a failure is recorded; the monitor retries
    }
    publish = [this](const std::string& active) { return PublishDns(active); };
  }
  failover_ = std::make_unique<Failover>(
      store_.get(), voter_.get(), &RealClock(), fo,
      [this](const std::string& name) { return Link(name); },
      [this](const std::string& name) { return LastView(name); },
      [this](const OperationRow& op, const std::string& message) { OnStep(op, message); }, publish);

  metrics_.Describe("tandem_dr_epoch", "gauge", "The pair's current epoch.");
  metrics_.Describe("tandem_dr_lag_bytes", "gauge",
                    "WAL the standby has not replayed yet (-1 unknown).");
  metrics_.Describe("tandem_dr_lag_seconds", "gauge",
                    "Age of the newest change the standby has not replayed (-1 unknown).");
  metrics_.Describe("tandem_dr_rpo_seconds", "gauge",
                    "What a forced failover would lose now, in seconds (-1 unknown).");
  metrics_.Describe("tandem_dr_commit_seconds", "gauge",
                    "Median commit time on the active region (what synchronous mode costs).");
  metrics_.Describe("tandem_dr_rpo_metadata_seconds", "gauge",
                    "What a forced failover would lose of the metadata now, in seconds.");
  metrics_.Describe("tandem_dr_rpo_logs_seconds", "gauge",
                    "Age of the oldest task log chunk the standby does not hold.");
  metrics_.Describe("tandem_dr_log_lag_bytes", "gauge",
                    "Task log bytes the standby does not hold yet.");
  metrics_.Describe("tandem_dr_log_lag_chunks", "gauge",
                    "Task log chunks the standby does not hold yet.");
  metrics_.Describe("tandem_dr_images_unreplicated", "gauge",
                    "Deployed images the standby's registry does not hold yet.");
  metrics_.Describe("tandem_dr_sync_state", "gauge", "1 for the pair's replication state.");
  metrics_.Describe("tandem_dr_synchronous", "gauge", "1 when the pair runs synchronously.");
  metrics_.Describe("tandem_dr_region_up", "gauge", "1 when the region answers health checks.");
  metrics_.Describe("tandem_dr_lease_held", "gauge", "1 when the region holds a lease.");
  metrics_.Describe("tandem_dr_active", "gauge", "1 for the active region.");
  metrics_.OnScrape("tandem_dr_epoch", [this] {
    PairStatus st = ComputeStatus();
    metrics_.Set("tandem_dr_lag_bytes", {}, static_cast<double>(st.lag_bytes));
    metrics_.Set("tandem_dr_lag_seconds", {}, st.lag_seconds);
    metrics_.Set("tandem_dr_rpo_seconds", {}, st.rpo_seconds);
    metrics_.Set("tandem_dr_rpo_metadata_seconds", {}, st.rpo_metadata_seconds);
    metrics_.Set("tandem_dr_rpo_logs_seconds", {}, st.rpo_logs_seconds);
    metrics_.Set("tandem_dr_log_lag_bytes", {}, static_cast<double>(st.log_bytes_behind));
    metrics_.Set("tandem_dr_log_lag_chunks", {}, static_cast<double>(st.log_chunks_behind));
    metrics_.Set("tandem_dr_images_unreplicated", {}, static_cast<double>(st.images_unreplicated));
    metrics_.Set("tandem_dr_commit_seconds", {}, st.commit_ms / 1000);
    metrics_.Set("tandem_dr_synchronous", {}, s_.mode == "synchronous" ? 1 : 0);
    for (const char* state : {"syncing", "resyncing", "degraded", "broken"}) {
      metrics_.Set("tandem_dr_sync_state", {{"state", state}}, st.state == state ? 1 : 0);
    }
    std::lock_guard lock(mu_);
    for (const auto& [name, h] : health_) {
      metrics_.Set("tandem_dr_region_up", {{"region", name}}, h.lost || !h.view ? 0 : 1);
      metrics_.Set("tandem_dr_lease_held", {{"region", name}},
                   h.view && !h.lost && h.view->lease_held ? 1 : 0);
      metrics_.Set("tandem_dr_active", {{"region", name}}, name == st.active ? 1 : 0);
    }
    return std::vector<std::pair<Labels, double>>{{{}, static_cast<double>(st.epoch)}};
  });

  router_ = std::make_unique<api::Router>();
  {
    std::vector<std::string> urls;
    for (const RegionEndpoint& r : s_.regions) urls.push_back(r.url);
    authorizer_ = std::make_unique<RemoteAuthorizer>(std::move(urls), &RealClock(),
                                                     std::chrono::seconds(2), s_.trust);
    router_->set_authorizer(
        [this](api::Request& req, auth::Need need) { return authorizer_->Check(req, need); });
  }
  RegisterRoutes();
  audit_ = std::make_unique<AuditForwarder>(
      [this](const std::string& event) { return SendAudit(event); });
  api::ServerOptions so{s_.address, s_.http_port, s_.http_threads, 1 << 20};
  so.tls_cert_file = s_.tls_cert_file;
  so.tls_key_file = s_.tls_key_file;
  so.after = [this](const api::Request& req, const api::Response& res) { AuditRequest(req, res); };
  ASSIGN_OR_RETURN(http_, api::HttpServer::Start(so, router_.get(), &metrics_));
  Event("started", "",
        "control plane started (epoch " + std::to_string(pair.epoch) + ", " + pair.active +
            " active)");

  // An operation that was running when the control plane stopped resumes or rolls back.
  ASSIGN_OR_RETURN(std::optional<OperationRow> running, store_->RunningOperation());
  if (running) {
    Event("operation_resumed", running->to,
          "resuming " + running->kind + " #" + std::to_string(running->id) + " after a restart",
          running->id);
    std::lock_guard lock(mu_);
    op_running_ = true;
    op_thread_ = std::thread([this, op = *running] { RunOperation(op, true); });
  }
  monitor_ = std::thread([this] { MonitorLoop(); });
  spdlog::info("control plane for pair {} on http://{}:{}", s_.pair, s_.address, http_->port());
  return Status::Ok();
}

void ControlPlane::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (monitor_.joinable()) monitor_.join();
  // An operation in progress is left where it stands: it is durable and resumes at the next
  // start. Its thread ends when its current step returns.
  if (op_thread_.joinable()) op_thread_.join();
  if (http_) http_->Stop();
  http_.reset();
  audit_.reset();  // gives up on what no region took: logged
  if (dns_) dns_->StopServer();
}

RegionLink* ControlPlane::Link(const std::string& name) {
  auto it = links_.find(name);
  return it == links_.end() ? nullptr : it->second.get();
}

std::optional<RegionView> ControlPlane::LastView(const std::string& name) {
  std::lock_guard lock(mu_);
  auto it = health_.find(name);
  if (it == health_.end()) return std::nullopt;
  return it->second.view;
}

void ControlPlane::Event(const std::string& kind, const std::string& region,
                         const std::string& message, int64_t operation) {
  EventRow e;
  e.at_ms = NowMs();
  e.kind = kind;
  e.region = region;
  e.operation = operation;
  e.message = message;
  if (auto p = store_->Pair(); p.ok()) e.epoch = p->epoch;
  if (auto r = store_->AddEvent(e); !r.ok()) {
    spdlog::error("recording an event: {}", r.status().ToString());
  }
  spdlog::info("[{}] {}{}", kind, region.empty() ? "" : region + ": ", message);
}

void ControlPlane::OnStep(const OperationRow& op, const std::string& message) {
  Event("step", op.to, message, op.id);
  if (!s_.failpoint.empty() && op.step == s_.failpoint) {
    spdlog::error("failpoint {} reached: exiting now", s_.failpoint);
    _exit(70);
  }
}

// ---------------------------------------------------------------------------------------------
// Health checks.

void ControlPlane::MonitorLoop() {
  while (true) {
    {
      std::unique_lock lock(mu_);
      if (cv_.wait_for(lock, s_.health_interval, [this] { return stopping_; })) return;
    }
    CheckOnce();
    Converge();
    MaybeAutomaticFailover();
    if (dns_) SyncDns();
  }
}

void ControlPlane::CheckOnce() {
  std::map<std::string, std::future<Result<RegionView>>> asks;
  for (auto& [name, link] : links_) {
    asks[name] = std::async(std::launch::async, [l = link.get()] { return l->State(); });
  }
  const MonoTime now = RealClock().Now();
  std::vector<std::pair<std::string, std::string>> events;
  for (auto& [name, f] : asks) {
    Result<RegionView> v = f.get();
    std::lock_guard lock(mu_);
    Health& h = health_[name];
    if (v.ok()) {
      if (h.lost) events.emplace_back(name, "region_back");
      h.view = *v;
      h.last_seen = now;
      h.misses = 0;
      h.lost = false;
      h.last_error.clear();
      if (!v->resync_detail.empty() && v->resync_detail != h.last_resync_detail &&
          v->resync_state == "streaming") {
        events.emplace_back(name, "resync:" + v->resync_detail);
      }
      h.last_resync_detail = v->resync_detail;
    } else {
      ++h.misses;
      h.last_error = v.status().message();
      if (!h.lost && h.misses >= s_.detection_misses) {
        h.lost = true;
        events.emplace_back(name, "region_lost");
      }
    }
  }
  for (const auto& [name, what] : events) {
    if (what == "region_back") {
      Event("region_back", name, "answers health checks again");
    } else if (what == "region_lost") {
      std::string err;
      {
        std::lock_guard lock(mu_);
        err = health_[name].last_error;
      }
      Event("region_lost", name,
            "missed " + std::to_string(s_.detection_misses) + " health checks in a row (" +
                std::to_string(static_cast<int>(Seconds(s_.health_interval) * 1000)) +
                " ms apart): " + err);
    } else {
      Event("resync_done", name, what.substr(7));
    }
  }
  PairStatus st = ComputeStatus();
  std::string state_line = st.state;
  bool changed;
  {
    std::lock_guard lock(mu_);
    changed = state_line != last_state_;
    last_state_ = state_line;
  }
  if (changed) Event("sync_state", st.standby, st.state + ": " + st.detail);
}

PairStatus ControlPlane::ComputeStatus() {
  PairStatus st;
  if (dns_) {
    // Outside mu_: DesiredRecords takes it.
    auto active = store_->Pair();
    const auto published = dns_->Published();
    st.dns_records = static_cast<int64_t>(published.size());
    st.dns_current = active.ok() && DesiredRecords(active->active) == published;
  }
  auto pair = store_->Pair();
  if (!pair.ok()) {
    st.state = "broken";
    st.detail = pair.status().message();
    return st;
  }
  st.active = pair->active;
  st.standby = pair->standby;
  st.original_primary = pair->original_primary;
  st.epoch = pair->epoch;
  st.summary =
      "Active: " + st.active +
      (st.active == st.original_primary ? " (primary)" : " (failed over from " + st.standby + ")");
  std::lock_guard lock(mu_);
  const Health& a = health_[st.active];
  const Health& b = health_[st.standby];
  const bool a_up = a.view && !a.lost && a.misses == 0;
  const bool b_up = b.view && !b.lost && b.misses == 0;
  if (a.view) {
    st.commit_ms = a.view->commit_ms;
    st.synchronous_degraded = a.view->sync_degraded;
    st.log_chunks_behind = a.view->log_chunks_behind;
    st.log_bytes_behind = a.view->log_bytes_behind;
    st.log_lag_p50_s = a.view->log_lag_p50_s;
    st.log_lag_p99_s = a.view->log_lag_p99_s;
    st.log_error = a.view->log_error;
    st.images_unreplicated = a.view->images_unreplicated;
    st.images_error = a.view->images_error;
  }
  if (a.view && b.view) {
    uint64_t primary_lsn = a.view->current_lsn;
    uint64_t replayed = b.view->replay_lsn;
    st.lag_bytes = primary_lsn > replayed ? static_cast<int64_t>(primary_lsn - replayed) : 0;
    st.lag_seconds = b.view->replay_age_s;
  }
  const bool sync = s_.mode == "synchronous";
  if (!a_up) {
    st.state = "broken";
    st.detail = "the active region " + st.active + " does not answer" +
                (a.last_error.empty() ? "" : ": " + a.last_error);
  } else if (!b_up) {
    st.state = "broken";
    st.detail = "the standby " + st.standby + " does not answer" +
                (b.last_error.empty() ? "" : ": " + b.last_error) +
                (sync ? "; synchronous mode degrades to asynchronous after its timeout" : "");
  } else if (b.view->role == "rejoining" || b.view->role == "fenced") {
    st.state = "resyncing";
    st.detail = st.standby + " is rejoining as a replica of " + st.active +
                (b.view->resync_detail.empty() ? "" : ": " + b.view->resync_detail);
  } else if (b.view->role != "standby") {
    st.state = "degraded";
    st.detail = st.standby + " is " + b.view->role + ", not a standby";
  } else {
    bool streaming = false;
    for (const ReplicaView& r : a.view->replicas) {
      if (r.name == st.standby && r.state == "streaming") streaming = true;
    }
    if (!streaming || !b.view->streaming) {
      st.state = "degraded";
      st.detail = st.standby + " is not streaming from " + st.active;
    } else if (sync && a.view->sync_degraded) {
      st.state = "degraded";
      st.detail = "synchronous mode is degraded: " + st.active + " commits asynchronously";
    } else {
      st.state = "syncing";
      st.detail = st.active + " → " + st.standby + (sync ? ", synchronous" : ", asynchronous");
    }
  }
  if (st.state == "syncing" && sync) {
    st.rpo_metadata_seconds = 0;
  } else if (st.state == "syncing" || st.state == "degraded" ||
             (st.state == "broken" && b_up && a.last_seen)) {
    // Broken with the primary gone: what the standby lacks is what it had not replayed when
    // the primary was last seen.
    st.rpo_metadata_seconds = std::max(0.0, st.lag_seconds);
  }
  if (dns_) {
    st.dns_enabled = true;
    st.dns_error = dns_error_;
  }
  if (st.rpo_metadata_seconds >= 0 && a.view) {
    // Task logs are shipped apart from the metadata, synchronous mode or not.
    st.rpo_logs_seconds = std::max(0.0, a.view->log_oldest_s);
    st.rpo_seconds = std::max(st.rpo_metadata_seconds, st.rpo_logs_seconds);
  }
  return st;
}

// ---------------------------------------------------------------------------------------------
// DNS.

std::map<std::string, std::string> ControlPlane::DesiredRecords(const std::string& active) {
  std::optional<std::vector<std::string>> listed;
  {
    std::lock_guard lock(mu_);
    const Health& h = health_[active];
    if (h.view && h.view->role == "active") listed = h.view->namespaces;
  }
  std::set<std::string> namespaces;
  if (listed) {
    namespaces.insert(listed->begin(), listed->end());
  } else {
    namespaces = dns_->PublishedNamespaces();
  }
  return dns_->Desired(active, namespaces);
}

Status ControlPlane::PublishDns(const std::string& active) {
  Status s = dns_->Publish(DesiredRecords(active));
  std::string previous;
  {
    std::lock_guard lock(mu_);
    previous = dns_error_;
    dns_error_ = s.ok() ? "" : s.message();
    if (s.ok()) {
      dns_failures_ = 0;
      dns_retry_at_.reset();
    } else {
      ++dns_failures_;
      dns_retry_at_ =
          RealClock().Now() + std::min<Duration>(10s, 250ms * (1 << std::min(dns_failures_, 6)));
    }
  }
  if (!s.ok() && s.message() != previous) Event("dns_error", active, s.message());
  if (s.ok() && !previous.empty()) Event("dns_published", active, "the DNS update went through");
  return s;
}

void ControlPlane::SyncDns() {
  auto pair = store_->Pair();
  if (!pair.ok()) return;
  if (dns_->ServerDied()) {
    const auto records = DesiredRecords(pair->active);
    Status s = dns_->StartServer(records);
    if (s.ok()) s = store_->SetDnsRecords(records);
    Event(s.ok() ? "dns_restarted" : "dns_error", "",
          s.ok()
              ? "the DNS server had stopped; started again with " + std::to_string(records.size()) +
                    " records rebuilt from the control "
                    "plane's state"
              : "the DNS server had stopped and did not start again: " + s.message());
  }
  {
    std::lock_guard lock(mu_);
    // The operation thread publishes during a failover; the monitor retries after it.
    if (op_running_) return;
    if (dns_retry_at_ && RealClock().Now() < *dns_retry_at_) return;
  }
  if (DesiredRecords(pair->active) == dns_->Published()) return;
  (void)PublishDns(pair->active);
}

// A region left behind by a failover (it was away, or the control plane restarted before it
// could tell it) is asked to rejoin the active region as a replica.
void ControlPlane::Converge() {
  auto pair = store_->Pair();
  if (!pair.ok()) return;
  std::string target;
  int64_t epoch = pair->epoch;
  {
    std::lock_guard lock(mu_);
    if (op_running_) return;
    Health& h = health_[pair->standby];
    if (!h.view || h.lost || h.misses > 0) return;
    const RegionView& v = *h.view;
    // It still thinks it is (or was about to stay) the primary, or it was fenced and waits.
    if (v.role != "active" && v.role != "stepped_down" && v.role != "fenced") return;
    const MonoTime now = RealClock().Now();
    if (h.last_rejoin_ask && now - *h.last_rejoin_ask < 5s) return;
    h.last_rejoin_ask = now;
    target = pair->standby;
  }
  Event("rejoin_requested", target,
        "asked to rejoin " + pair->active + " as a replica (epoch " + std::to_string(epoch) + ")");
  if (RegionLink* l = Link(target)) {
    if (Status s = l->Rejoin(epoch, pair->active); !s.ok()) {
      spdlog::warn("rejoin request to {}: {}", target, s.ToString());
    }
  }
}

void ControlPlane::MaybeAutomaticFailover() {
  if (!s_.automatic_failover) return;
  auto pair = store_->Pair();
  if (!pair.ok()) return;
  const Duration window = s_.health_interval * s_.detection_misses;
  {
    std::lock_guard lock(mu_);
    if (op_running_) return;
    const Health& a = health_[pair->active];
    const Health& b = health_[pair->standby];
    if (!a.lost) return;
    // The standby must agree: it has not heard the primary's lease renewals for the window.
    if (!b.view || b.misses > 0 || b.view->role != "standby") return;
    if (b.view->peer_silent_s >= 0 && b.view->peer_silent_s < Seconds(window)) return;
  }
  Event("automatic_failover", pair->standby,
        "both the control plane and " + pair->standby + " lost " + pair->active + " for " +
            std::to_string(Seconds(window)) + " s: failing over");
  auto op = StartOperation("failover", "forced", false, false, kControlPlane);
  if (!op.ok()) spdlog::error("automatic failover: {}", op.status().ToString());
}

// ---------------------------------------------------------------------------------------------
// Operations.

Result<OperationRow> ControlPlane::StartOperation(const std::string& kind, const std::string& mode,
                                                  bool fall_through, bool declare_dead,
                                                  const std::string& started_by) {
  std::unique_lock lock(mu_);
  if (op_running_) {
    ASSIGN_OR_RETURN(std::optional<OperationRow> running, store_->RunningOperation());
    return FailedPrecondition("a " +
                              (running ? running->kind + " (#" + std::to_string(running->id) +
                                             ", step " + running->step + ")"
                                       : std::string("failover")) +
                              " is already running; wait for it to finish (tandem dr events)");
  }
  std::string effective = mode;
  if (kind == "failover" && mode == "planned" && fall_through) {
    // --forced with a primary that is already gone: the planned steps could only time out.
    const Health& a = health_[store_->Pair().ok() ? store_->Pair()->active : ""];
    if (a.lost) effective = "forced";
  }
  lock.unlock();
  ASSIGN_OR_RETURN(OperationRow op,
                   failover_->Begin(kind, effective, fall_through, declare_dead, started_by));
  lock.lock();
  op_running_ = true;
  if (op_thread_.joinable()) op_thread_.join();  // the previous one has ended
  op_thread_ = std::thread([this, op] { RunOperation(op, false); });
  lock.unlock();
  Event(kind + "_started", op.to,
        op.mode + " " + kind + " #" + std::to_string(op.id) + " from " + op.from + " to " + op.to +
            " (epoch " + std::to_string(op.epoch_from) + " → " + std::to_string(op.epoch_to) + ")",
        op.id);
  return op;
}

void ControlPlane::RunOperation(const OperationRow& op, bool resume) {
  Result<FailoverOutcome> out = resume ? failover_->Resume(op) : failover_->Run(op);
  if (out.ok()) {
    std::string msg = op.kind + " #" + std::to_string(op.id) + " " + out->state;
    if (!out->detail.empty()) msg += ": " + out->detail;
    if (out->state == "succeeded") {
      char buf[200];
      snprintf(buf, sizeof buf, "; %s active at epoch %lld", out->active.c_str(),
               static_cast<long long>(out->epoch));
      msg += buf;
      if (out->rto_seconds >= 0) {
        snprintf(buf, sizeof buf, "; took %.2f s", out->rto_seconds);
        msg += buf;
      }
      if (out->loss_bytes >= 0) {
        snprintf(buf, sizeof buf, "; estimated loss %lld bytes of WAL (%.3f s)",
                 static_cast<long long>(out->loss_bytes), std::max(0.0, out->loss_seconds));
        msg += buf;
      }
    }
    Event(op.kind + "_" + out->state, out->active, msg, op.id);
    Json detail = {{"operation", op.id},    {"mode", op.mode},     {"from", op.from}, {"to", op.to},
                   {"active", out->active}, {"epoch", out->epoch}, {"message", msg}};
    if (out->rto_seconds >= 0) detail["rto_seconds"] = out->rto_seconds;
    if (out->loss_bytes >= 0) {
      detail["loss_bytes"] = out->loss_bytes;
      detail["loss_seconds"] = std::max(0.0, out->loss_seconds);
    }
    const int status = out->state == "succeeded" ? 200 : out->state == "rolled_back" ? 409 : 500;
    AuditOperation(op, out->state, status, detail.dump());
  } else {
    Event(op.kind + "_error", op.to, out.status().message(), op.id);
    AuditOperation(op, "error", 500,
                   Json{{"operation", op.id}, {"message", out.status().message()}}.dump());
  }
  std::lock_guard lock(mu_);
  op_running_ = false;
}

// ---------------------------------------------------------------------------------------------
// HTTP.

void ControlPlane::AuditRequest(const api::Request& req, const api::Response& res) {
  std::optional<store::AuditEvent> e = api::AuditEventOf(req, res);
  if (!e || !audit_) return;
  if (res.status == 202) {
    // A failover or failback begun: the trail links the request to its operation (whose row
    // keeps who asked, for the event of its end).
    Json body = Json::parse(res.body, nullptr, false);
    if (body.is_object() && body.contains("operation") && body["operation"].is_object()) {
      const int64_t id = body["operation"].value("id", int64_t{0});
      Json detail = Json::parse(e->detail, nullptr, false);
      if (detail.is_object()) {
        detail["operation"] = id;
        e->detail = detail.dump();
      }
    }
  }
  audit_->Add(api::AuditEventToWire(*e));
}

void ControlPlane::AuditOperation(const OperationRow& op, const std::string& state, int status,
                                  const std::string& detail_json) {
  store::AuditEvent e;
  e.principal = op.started_by.empty() ? kControlPlane : op.started_by;
  e.source = s_.address;
  e.event = op.kind + "_" + state;  // failover_succeeded, failback_rolled_back, ...
  e.route = "/api/v1/dr/" + op.kind;
  e.path = "/api/v1/dr/operations/" + std::to_string(op.id);
  e.status = status;
  e.outcome = status < 400 ? "ok" : "failed";
  e.detail = detail_json;
  if (audit_) audit_->Add(api::AuditEventToWire(e));
}

Status ControlPlane::SendAudit(const std::string& event) {
  // The region the pair says is active first, then the other: a promotion the control plane
  // has not recorded yet still finds its writer.
  std::vector<const RegionEndpoint*> order;
  Result<PairRow> pair = store_->Pair();
  for (const RegionEndpoint& r : s_.regions) {
    if (pair.ok() && r.name == pair->active) {
      order.insert(order.begin(), &r);
    } else {
      order.push_back(&r);
    }
  }
  Status last = Unavailable("no region");
  for (const RegionEndpoint* r : order) {
    rpc::Client c(r->url, credential_, std::chrono::seconds(2), s_.address, s_.trust);
    Result<rpc::Reply> reply = c.Call("POST", "/internal/v1/audit", event);
    if (!reply.ok()) {
      last = reply.status();
      continue;
    }
    if (reply->status == 204) return Status::Ok();
    if (reply->status == 422) return InvalidArgument(r->name + " refused it: " + reply->body);
    last = Unavailable(r->name + " answered " + std::to_string(reply->status));
  }
  return last;
}

Status ControlPlane::CheckCredential(const api::Request& req) const {
  auto it = req.headers.find("authorization");
  if (it == req.headers.end() || it->second != "Bearer " + credential_) {
    return Unauthenticated("the internal DR API needs the pair's credential");
  }
  return Status::Ok();
}

namespace {

// What a failover carries to the standby, item by item, with each item's lag: the seed's list,
// and the items other systems leave to the operator, with what tandem does about each.
Json FailoverItems(const PairStatus& st) {
  auto opt = [](double v) { return v >= 0 ? Json(v) : Json(nullptr); };
  const Json meta_lag = {{"seconds", opt(st.lag_seconds)},
                         {"bytes", st.lag_bytes >= 0 ? Json(st.lag_bytes) : Json(nullptr)}};
  const std::string streaming = "the metadata database's streaming replication";
  Json items = Json::array();
  auto item = [&](const std::string& name, const std::string& how, const Json& lag) {
    items.push_back({{"item", name}, {"carried_by", how}, {"lag", lag}});
  };
  for (const char* name : {"deployments and pipelines", "DAG run history", "task-instance metadata",
                           "XComs", "deployment config", "environment variables", "connections",
                           "variables", "pools", "metrics-export settings"}) {
    item(name, streaming, meta_lag);
  }
  item("secrets (connection passwords, secret environment variables)",
       streaming + ", sealed with AES-256-GCM; both regions hold the key", meta_lag);
  item("task logs", "the log replicator, chunk by chunk while tasks run (checksummed)",
       {{"seconds", opt(st.rpo_logs_seconds)},
        {"bytes", st.log_bytes_behind},
        {"chunks", st.log_chunks_behind}});
  item("images (DAG bundles as OCI images)",
       "the image replicator, registry to registry with digests checked; a deploy completes "
       "only once the standby holds its image unless it allowed otherwise",
       {{"images", st.images_unreplicated}});
  item("network settings (addresses, ports)",
       "declared per region in the pair config; each region listens on its own", nullptr);
  item("image-pull secrets",
       "none needed: each region's workers read bundles from their own region's registry", nullptr);
  item("workload identities",
       "workers and the pair's processes authenticate with credentials derived from the shared "
       "key, valid in both regions; per-deployment identity mappings are data, replicated with "
       "the metadata",
       nullptr);
  if (st.dns_enabled) {
    item("transit routing (host names)",
         "the platform zone's records, moved to the new active region in one signed DNS update "
         "before a failover reports success (TTL 5 s; clients re-resolve at once on a "
         "connection error or a 421)",
         {{"current", st.dns_current}, {"records", st.dns_records}});
  } else {
    item("transit routing (host names)",
         "not configured (no dns section in the pair config): clients address a region "
         "directly",
         nullptr);
  }
  return items;
}

// Fails loudly when the standby lacks something a failover would need.
Json Readiness(const PairStatus& st) {
  Json checks = Json::array();
  auto check = [&](const std::string& name, bool ok, const std::string& detail) {
    checks.push_back({{"check", name}, {"ok", ok}, {"detail", detail}});
  };
  check("standby replicating", st.state == "syncing" || st.state == "degraded",
        st.standby + ": " + st.state + (st.detail.empty() ? "" : " — " + st.detail));
  check("images on the standby", st.images_unreplicated == 0 && st.images_error.empty(),
        st.images_unreplicated == 0
            ? "the standby's registry holds every deployed image"
            : std::to_string(st.images_unreplicated) + " deployed images are missing there" +
                  (st.images_error.empty() ? "" : ": " + st.images_error));
  check("task logs shipping", st.log_error.empty(),
        st.log_error.empty() ? std::to_string(st.log_chunks_behind) + " chunks behind"
                             : st.log_error);
  if (st.dns_enabled) {
    check("host names", st.dns_current && st.dns_error.empty(),
          st.dns_error.empty()
              ? (st.dns_current ? std::to_string(st.dns_records) + " names point at " + st.active
                                : "a DNS update is pending")
              : "the last DNS update failed: " + st.dns_error);
  }
  return checks;
}

}  // namespace

std::string ControlPlane::StatusJson() {
  PairStatus st = ComputeStatus();
  Json regions = Json::array();
  std::optional<OperationRow> running;
  if (auto r = store_->RunningOperation(); r.ok()) running = *r;
  const MonoTime now = RealClock().Now();
  {
    std::lock_guard lock(mu_);
    for (const RegionEndpoint& e : s_.regions) {
      const Health& h = health_[e.name];
      Json r = {{"name", e.name},
                {"url", e.url},
                {"original_primary", e.original_primary},
                {"reachable", h.view.has_value() && h.misses == 0},
                {"last_seen_seconds_ago",
                 h.last_seen ? Json(Seconds(now - *h.last_seen)) : Json(nullptr)}};
      if (!h.last_error.empty()) r["error"] = h.last_error;
      if (h.view) {
        const RegionView& v = *h.view;
        r["role"] = v.role;
        r["epoch"] = v.epoch;
        r["promised"] = v.promised;
        r["lease"] = v.lease_held ? "holds" : "lacks";
        r["lease_remaining_seconds"] = v.lease_remaining_s;
        r["in_recovery"] = v.in_recovery;
        r["lsn"] = v.in_recovery ? v.replay_lsn : v.current_lsn;
        r["streaming"] = v.streaming;
        r["running_tasks"] = v.running_tasks;
        r["resync_state"] = v.resync_state;
        r["resync_detail"] = v.resync_detail;
        r["commit_ms"] = v.commit_ms;
      }
      regions.push_back(r);
    }
  }
  Json j = {{"pair", s_.pair},
            {"summary", st.summary},
            {"active", st.active},
            {"standby", st.standby},
            {"original_primary", st.original_primary},
            {"epoch", st.epoch},
            {"mode", s_.mode},
            {"automatic_failover", s_.automatic_failover},
            {"sync",
             {{"from", st.active},
              {"to", st.standby},
              {"direction", st.active + " -> " + st.standby},
              {"state", st.state},
              {"detail", st.detail}}},
            {"lag",
             {{"bytes", st.lag_bytes >= 0 ? Json(st.lag_bytes) : Json(nullptr)},
              {"seconds", st.lag_seconds >= 0 ? Json(st.lag_seconds) : Json(nullptr)}}},
            {"rpo_seconds", st.rpo_seconds >= 0 ? Json(st.rpo_seconds) : Json(nullptr)},
            {"commit_ms", st.commit_ms},
            {"synchronous_degraded", st.synchronous_degraded},
            {"detection_window_seconds", Seconds(s_.health_interval * s_.detection_misses)},
            {"lease_seconds", Seconds(s_.lease)},
            {"regions", regions},
            {"operation", running ? OperationJson(*running) : Json(nullptr)}};
  auto opt = [](double v) { return v >= 0 ? Json(v) : Json(nullptr); };
  j["rpo"] = {{"metadata_seconds", opt(st.rpo_metadata_seconds)},
              {"logs_seconds", opt(st.rpo_logs_seconds)}};
  j["logs"] = {{"chunks_behind", st.log_chunks_behind},      {"bytes_behind", st.log_bytes_behind},
               {"oldest_seconds", opt(st.rpo_logs_seconds)}, {"lag_p50_seconds", st.log_lag_p50_s},
               {"lag_p99_seconds", st.log_lag_p99_s},        {"error", st.log_error}};
  j["images"] = {{"unreplicated", st.images_unreplicated}, {"error", st.images_error}};
  if (dns_) {
    j["dns"] = {{"server", s_.dns.server.ToString()}, {"zone", s_.dns.zone},
                {"managed", s_.dns.managed},          {"records", st.dns_records},
                {"current", st.dns_current},          {"error", st.dns_error}};
  } else {
    j["dns"] = nullptr;
  }
  j["items"] = FailoverItems(st);
  j["readiness"] = Readiness(st);
  bool ready = true;
  for (const Json& c : j["readiness"]) ready = ready && c.value("ok", false);
  j["ready_for_failover"] = ready;
  return j.dump();
}

void ControlPlane::RegisterRoutes() {
  api::Router& r = *router_;
  r.Add("GET", "/healthz", [](const api::Request&) {
    return api::Response{200, R"({"status":"ok"})"};
  });
  r.Add("GET", "/metrics", [this](const api::Request&) {
    return api::Response{200, metrics_.Render(), "text/plain; version=0.0.4"};
  });
  r.Add("GET", "/api/v1/dr/status", [this](const api::Request&) {
    return api::Response{200, StatusJson()};
  });
  r.Add("POST", "/api/v1/dr/failover",
        api::Wrap([this](const api::Request& req) -> Result<api::Response> {
          ASSIGN_OR_RETURN(Json j, BodyObject(req.body));
          std::string mode = "planned";
          if (j.contains("mode")) {
            if (!j["mode"].is_string() || (j["mode"] != "planned" && j["mode"] != "forced")) {
              return InvalidArgument("mode: expected \"planned\" or \"forced\"");
            }
            mode = j["mode"].get<std::string>();
          }
          ASSIGN_OR_RETURN(bool fall_through, BoolField(j, "fall_through"));
          ASSIGN_OR_RETURN(bool declare_dead, BoolField(j, "declare_dead"));
          for (const auto& [k, v] : j.items()) {
            if (k != "mode" && k != "fall_through" && k != "declare_dead") {
              return InvalidArgument("unknown field " + k);
            }
          }
          ASSIGN_OR_RETURN(OperationRow op, StartOperation("failover", mode, fall_through,
                                                           declare_dead, PrincipalOf(req)));
          return api::Response{202, Json{{"operation", OperationJson(op)}}.dump()};
        }));
  r.Add("POST", "/api/v1/dr/failback",
        api::Wrap([this](const api::Request& req) -> Result<api::Response> {
          ASSIGN_OR_RETURN(Json j, BodyObject(req.body));
          for (const auto& [k, v] : j.items()) return InvalidArgument("unknown field " + k);
          ASSIGN_OR_RETURN(OperationRow op,
                           StartOperation("failback", "planned", false, false, PrincipalOf(req)));
          return api::Response{202, Json{{"operation", OperationJson(op)}}.dump()};
        }));
  r.Add("GET", "/api/v1/dr/operations",
        api::Wrap([this](const api::Request&) -> Result<api::Response> {
          ASSIGN_OR_RETURN(std::vector<OperationRow> ops, store_->Operations(100));
          Json a = Json::array();
          for (const OperationRow& op : ops) a.push_back(OperationJson(op));
          return api::Response{200, Json{{"operations", a}}.dump()};
        }));
  r.Add("GET", "/api/v1/dr/operations/{id}",
        api::Wrap([this](const api::Request& req) -> Result<api::Response> {
          const std::string& id = req.params.at("id");
          if (id.empty() || id.size() > 18 ||
              id.find_first_not_of("0123456789") != std::string::npos) {
            return InvalidArgument("operation id: expected a positive integer, got " + id);
          }
          ASSIGN_OR_RETURN(OperationRow op, store_->Operation(std::stoll(id)));
          return api::Response{200, OperationJson(op).dump()};
        }));
  r.Add("GET", "/api/v1/dr/events",
        api::Wrap([this](const api::Request& req) -> Result<api::Response> {
          int limit = 100;
          int64_t after = 0;
          auto number = [](const std::string* v, const char* what, int64_t lo,
                           int64_t hi) -> Result<int64_t> {
            if (!v) return lo;
            if (v->empty() || v->size() > 18 ||
                v->find_first_not_of("0123456789") != std::string::npos) {
              return InvalidArgument(std::string(what) + ": expected an integer, got " + *v);
            }
            int64_t n = std::stoll(*v);
            if (n < lo || n > hi) {
              return InvalidArgument(std::string(what) + ": expected " + std::to_string(lo) + ".." +
                                     std::to_string(hi) + ", got " + *v);
            }
            return n;
          };
          if (const std::string* l = req.Query("limit")) {
            ASSIGN_OR_RETURN(int64_t n, number(l, "limit", 1, 1000));
            limit = static_cast<int>(n);
          }
          ASSIGN_OR_RETURN(after, number(req.Query("after"), "after", 0, INT64_MAX / 2));
          ASSIGN_OR_RETURN(std::vector<EventRow> events, store_->Events(limit, after));
          Json a = Json::array();
          for (const EventRow& e : events) a.push_back(EventJson(e));
          return api::Response{200, Json{{"events", a}}.dump()};
        }));
  // The control plane is one of the three lease voters.
  r.Add("POST", "/internal/v1/dr/lease",
        api::Wrap([this](const api::Request& req) -> Result<api::Response> {
          RETURN_IF_ERROR(CheckCredential(req));
          ASSIGN_OR_RETURN(Json j, BodyObject(req.body));
          if (!j.contains("holder") || !j["holder"].is_string() || !j.contains("epoch") ||
              !j["epoch"].is_number_integer() || !j.contains("duration_ms") ||
              !j["duration_ms"].is_number_integer()) {
            return InvalidArgument("a lease request needs holder, epoch and duration_ms");
          }
          ASSIGN_OR_RETURN(
              dr::GrantAnswer a,
              voter_->Grant({j["holder"].get<std::string>(), j["epoch"].get<int64_t>(),
                             std::chrono::milliseconds(j["duration_ms"].get<int64_t>())}));
          Json out = {{"granted", a.granted}, {"promised", a.promised}};
          if (!a.granted) out["detail"] = a.detail;
          return api::Response{a.granted ? 200 : 409, out.dump()};
        }));
  r.Add("POST", "/internal/v1/dr/release",
        api::Wrap([this](const api::Request& req) -> Result<api::Response> {
          RETURN_IF_ERROR(CheckCredential(req));
          ASSIGN_OR_RETURN(Json j, BodyObject(req.body));
          voter_->Release(j.value("holder", std::string()), j.value("epoch", int64_t{0}));
          return api::Response{200, R"({"released":true})"};
        }));
  r.Add("GET", "/internal/v1/dr/promised",
        api::Wrap([this](const api::Request& req) -> Result<api::Response> {
          RETURN_IF_ERROR(CheckCredential(req));
          ASSIGN_OR_RETURN(PairRow p, store_->Pair());
          return api::Response{
              200, Json{{"promised", voter_->promised()}, {"epoch", p.epoch}, {"active", p.active}}
                       .dump()};
        }));
}

}  // namespace tandem::control
