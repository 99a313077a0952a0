// What a region pair carries besides its database, end to end: task logs and deployed images.
//
// Task logs are journaled and shipped chunk by chunk to the standby while a region is active.
// After a planned failover every log reads back whole on the new active region; after a forced
// one each log there is a prefix of what the lost region wrote (the tail lost is the log lag),
// and the lost region, when it returns, discards what the new primary never received.
// Every bundle version is an OCI image in the active region's registry, copied to the
// standby's before the deploy completes (or later, when the caller allows it); `skopeo
// inspect` against either registry shows the same digest. And the keyring that seals the
// secrets in that database: rotated on either side, it stays one ring.
//
// Each test starts its own pair (tests/harness/pair_harness.h) and waits by polling with
// generous deadlines: the machine may be loaded.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>

#include "base/fs.h"
#include "base/process.h"
#include "crypto/secret_box.h"
#include "harness/pair_harness.h"
#include "logs/log_store.h"
#include "rpc/client.h"

namespace tandem::testing {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;
using Headers = std::vector<std::pair<std::string, std::string>>;

Json Body(const HttpReply& r) {
  Json j = Json::parse(r.body, nullptr, false);
  return j.is_discarded() ? Json(nullptr) : j;
}

std::string Root(const std::string& d) { return "/deployments/" + d + "/api/v2"; }
std::string BundlePath(const std::string& d) { return "/api/v1/deployments/" + d + "/bundle"; }

// A string field, "" when absent or not a string.
std::string Str(const Json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : "";
}

// Calls `done` every 100 ms until it returns true or `timeout` passes; true when it did.
bool Eventually(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  while (true) {
    if (done()) return true;
    if (SteadyClock::now() >= deadline) return false;
    std::this_thread::sleep_for(100ms);
  }
}

// The whole text of one try's log from the region at `url` (Accept: text/plain), or nullopt
// when the region does not answer 200.
std::optional<std::string> ReadLog(const std::string& url, const std::string& log_path) {
  HttpReply r = Http(url, "GET", log_path + "?full_content=true", "", {{"Accept", "text/plain"}});
  if (r.status != 200) return std::nullopt;
  return r.body;
}

bool IsPrefix(const std::string& prefix, const std::string& of) {
  return prefix.size() <= of.size() && of.compare(0, prefix.size(), prefix) == 0;
}

// How many of "<word>1\n", "<word>2\n", ... appear in `log` in that order, stopping at the
// first one missing.
int InOrder(const std::string& log, const std::string& word) {
  size_t at = 0;
  int n = 0;
  while (true) {
    const std::string line = word + std::to_string(n + 1) + "\n";
    const size_t found = log.find(line, at);
    if (found == std::string::npos) return n;
    at = found + line.size();
    ++n;
  }
}

// How many times `word` appears in `log`.
int Occurrences(const std::string& log, const std::string& word) {
  int n = 0;
  for (size_t at = log.find(word); at != std::string::npos; at = log.find(word, at + 1)) ++n;
  return n;
}

// The end of a log, for failure messages.
std::string Tail(const std::string& log) {
  return log.size() > 400 ? "..." + log.substr(log.size() - 400) : log;
}

// `skopeo inspect --tls-verify=false docker://<host:port>/<repository>@<digest>`: the Digest it
// prints, or the error. Over https, with `token` (from a region's realm) when not empty.
Result<std::string> SkopeoDigest(const std::string& registry_url, const std::string& repository,
                                 const std::string& digest, const std::string& ca_dir = "",
                                 const std::string& token = "", const std::string& creds = "") {
  // Over https the registry's certificate is checked against the pair's CA, alone in its
  // directory (skopeo reads every *.crt there as a CA, and wants a .cert beside every .key).
  const bool https = registry_url.starts_with("https://");
  const std::string host = registry_url.substr(registry_url.find("://") + 3);
  std::vector<std::string> argv = {"/usr/bin/skopeo", "inspect"};
  if (https) {
    argv.push_back("--cert-dir=" + ca_dir);
    if (!token.empty()) argv.push_back("--registry-token=" + token);
    // name:password, which skopeo (as docker after `docker login`) sends to the token realm.
    if (!creds.empty()) argv.push_back("--creds=" + creds);
  } else {
    argv.emplace_back("--tls-verify=false");
  }
  argv.push_back("docker://" + host + "/" + repository + "@" + digest);
  SpawnOptions so{.argv = argv};
  ASSIGN_OR_RETURN(RunOutput out, RunCommand(so, 60s));
  if (!out.exit.exited || out.exit.code != 0) {
    return Internal("skopeo " + out.exit.Describe() + ": " + out.output);
  }
  Json j = Json::parse(out.output.substr(std::min(out.output.find('{'), out.output.size())),
                       nullptr, false);
  if (!j.is_object() || !j.contains("Digest") || !j["Digest"].is_string()) {
    return Internal("skopeo printed no Digest: " + out.output);
  }
  return j["Digest"].get<std::string>();
}

// A DAG of two independent bash tasks: `short` prints line-1..line-200 over about two seconds
// and ends; `long` prints tick-1, tick-2, ... every 100 ms for a minute (it is still running
// when the test fails over).
constexpr const char* kChattyDag = R"(
chatty:
  schedule: null
  tasks:
    short:
      operator: bash
      bash_command: 'for i in $(seq 1 200); do echo line-$i; sleep 0.01; done'
    long:
      operator: bash
      bash_command: 'for i in $(seq 1 600); do echo tick-$i; sleep 0.1; done'
)";

class PairDataTest : public ::testing::Test {
 protected:
  void Start(const PairProcess::Options& o = {}) {
    auto p = PairProcess::Create(o);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    pair_ = std::move(p).value();
    Status s = pair_->StartAll();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  std::string Url(const std::string& region) { return pair_->region_url(region); }

  HttpReply Call(const std::string& region, const std::string& method, const std::string& path,
                 const Json& body = {}) {
    return Http(Url(region), method, path, body.is_null() ? "" : body.dump());
  }

  std::string CreateDeployment(const std::string& region, const std::string& name) {
    HttpReply r = Call(region, "POST", "/api/v1/deployments", {{"name", name}});
    EXPECT_EQ(r.status, 201) << r.body;
    return Str(Body(r), "id");
  }

  // POST .../bundle with `body`.
  HttpReply Deploy(const std::string& region, const std::string& id, const Json& body) {
    return Call(region, "POST", BundlePath(id), body);
  }

  Json GetBundle(const std::string& region, const std::string& id) {
    HttpReply r = Call(region, "GET", BundlePath(id));
    EXPECT_EQ(r.status, 200) << r.body;
    return Body(r);
  }

  // Unpauses `dag` and triggers a run of it; returns the run id.
  std::string Trigger(const std::string& region, const std::string& id, const std::string& dag) {
    HttpReply p = Call(region, "PATCH", Root(id) + "/dags/" + dag, {{"is_paused", false}});
    EXPECT_EQ(p.status, 200) << p.body;
    HttpReply t = Call(region, "POST", Root(id) + "/dags/" + dag + "/dagRuns",
                       {{"logical_date", nullptr}, {"conf", Json::object()}});
    EXPECT_EQ(t.status, 200) << t.body;
    return Str(Body(t), "dag_run_id");
  }

  static std::string TiPath(const std::string& id, const std::string& dag, const std::string& run,
                            const std::string& task) {
    return Root(id) + "/dags/" + dag + "/dagRuns/" + run + "/taskInstances/" + task;
  }
  static std::string LogPath(const std::string& id, const std::string& dag, const std::string& run,
                             const std::string& task, int try_number) {
    return TiPath(id, dag, run, task) + "/logs/" + std::to_string(try_number);
  }

  std::string TiState(const std::string& region, const std::string& ti_path) {
    return Str(Body(Call(region, "GET", ti_path)), "state");
  }

  // The file the region keeps the log in, read straight from its state directory.
  std::string LogFile(const std::string& region, const std::string& id, const std::string& dag,
                      const std::string& run, const std::string& task, int try_number) {
    Result<std::string> key = logs::TaskLogKey(id, dag, run, task, try_number);
    EXPECT_TRUE(key.ok()) << key.status().ToString();
    if (!key.ok()) return "";
    Result<std::string> text = ReadFile(pair_->region_dir(region) + "/logs/" + *key);
    EXPECT_TRUE(text.ok()) << text.status().ToString();
    return text.ok() ? *text : "";
  }

  // Starts a failover through the control plane's API and waits for it to end; returns the
  // operation as it ended (null when it did not end in time).
  Json Failover(const Json& body, std::chrono::seconds timeout) {
    HttpReply r = Http(pair_->control_url(), "POST", "/api/v1/dr/failover", body.dump());
    EXPECT_EQ(r.status, 202) << r.body;
    const Json op = Body(r);
    if (!op.is_object() || !op["operation"].is_object()) return nullptr;
    const std::string path =
        "/api/v1/dr/operations/" + std::to_string(op["operation"].value("id", int64_t{0}));
    Json last;
    Eventually(
        [&] {
          last = Body(Http(pair_->control_url(), "GET", path));
          return last.is_object() && Str(last, "state") != "running";
        },
        timeout);
    return Str(last, "state").empty() || Str(last, "state") == "running" ? Json(nullptr) : last;
  }

  // For failure messages: each region's own DR state (its "logs" and "images" parts, read
  // from /internal/v1/dr/state with the pair's credential) and the task log files it holds.
  std::string Diagnose() {
    std::string out;
    Result<std::string> key = ReadFile(pair_->dir() + "/secret.key");
    std::string bearer;
    if (key.ok()) {
      std::string k = *key;
      while (!k.empty() && (k.back() == '\n' || k.back() == ' ')) k.pop_back();
      Result<std::string> c = rpc::InternalCredential(k);
      if (c.ok()) bearer = *c;
    }
    for (const char* region : {"region-a", "region-b"}) {
      out += std::string("\n----- ") + region + " -----\n";
      HttpReply r = Http(Url(region), "GET", "/internal/v1/dr/state", "",
                         {{"Authorization", "Bearer " + bearer}});
      if (r.status == 200) {
        Json j = Json::parse(r.body, nullptr, false);
        Json part = Json::object();
        for (const char* k : {"role", "epoch", "resync_detail", "logs", "images"}) {
          if (j.is_object() && j.contains(k)) part[k] = j[k];
        }
        out += "state: " + part.dump() + "\n";
      } else {
        out += "state: no answer\n";
      }
      std::error_code ec;
      const std::string root = pair_->region_dir(region) + "/logs";
      for (std::filesystem::recursive_directory_iterator it(root, ec), end; !ec && it != end;
           it.increment(ec)) {
        if (!it->is_regular_file()) continue;
        out += it->path().string().substr(root.size()) + ": " + std::to_string(it->file_size()) +
               " bytes\n";
      }
    }
    return out;
  }

  // A registry token from `region`'s realm for `scope`, asked with `bearer` (the harness's owner
  // credential when empty); "" when refused.
  std::string RealmToken(const std::string& region, const std::string& scope,
                         const std::string& bearer = "") {
    Headers h;
    if (!bearer.empty()) h.emplace_back("Authorization", "Bearer " + bearer);
    HttpReply r = Http(Url(region), "GET",
                       "/api/v1/registry/token?service=tandem-registry&scope=" + scope, "", h);
    EXPECT_EQ(r.status, 200) << r.body;
    return Str(Body(r), "token");
  }

  // The actions a registry token grants on its first repository (null when none), read from
  // its claims.
  static Json GrantedActions(const std::string& token) {
    const size_t a = token.find('.'), b = token.rfind('.');
    if (a == std::string::npos || a == b) return "not a token";
    Result<std::string> claims = Base64UrlDecode(token.substr(a + 1, b - a - 1));
    if (!claims.ok()) return "bad claims";
    const Json access = Json::parse(*claims)["access"];
    return access.empty() ? Json(nullptr) : access[0]["actions"];
  }

  // A new API token of deployment `id` with `role`.
  std::string NewToken(const std::string& region, const std::string& id, const std::string& role) {
    HttpReply r = Call(region, "POST", "/api/v1/deployments/" + id + "/tokens",
                       {{"name", "t-" + role}, {"role", role}});
    EXPECT_EQ(r.status, 201) << r.body;
    return Str(Body(r), "token");
  }

  // The control plane's events, oldest first.
  Json Events() {
    return Body(Http(pair_->control_url(), "GET", "/api/v1/dr/events?limit=1000"))["events"];
  }

  std::unique_ptr<PairProcess> pair_;
};

// A switchover carries every task log: a finished task's reads back identical on the new
// active region, and a task running through the step-down holds every line written up to it.
// Over TLS: the logs are shipped to the standby, and the failover is driven, over HTTPS.
TEST_F(PairDataTest, LogsSurviveASwitchover) {
  PairProcess::Options o;
  o.drain_timeout_seconds = 2;  // the long task does not finish; do not wait for it long
  o.tls = true;
  Start(o);
  ASSERT_EQ(Url("region-a").rfind("https://", 0), 0u);
  const std::string id = CreateDeployment("region-a", "logs-planned");
  HttpReply d = Deploy("region-a", id, {{"files", {{"chatty.yaml", kChattyDag}}}});
  ASSERT_EQ(d.status, 200) << d.body;
  const std::string run = Trigger("region-a", id, "chatty");
  ASSERT_FALSE(run.empty());
  const std::string short_log = LogPath(id, "chatty", run, "short", 1);
  const std::string long_log = LogPath(id, "chatty", run, "long", 1);

  ASSERT_TRUE(Eventually(
      [&] { return TiState("region-a", TiPath(id, "chatty", run, "short")) == "success"; }, 60s))
      << "the short task did not succeed" << pair_->Logs();
  const std::optional<std::string> on_a = ReadLog(Url("region-a"), short_log);
  ASSERT_TRUE(on_a.has_value());
  ASSERT_EQ(InOrder(*on_a, "line-"), 200) << *on_a;
  // The standby holds the finished log (reads work there, through the same path).
  std::optional<std::string> on_b;
  ASSERT_TRUE(Eventually(
      [&] {
        on_b = ReadLog(Url("region-b"), short_log);
        return on_b == on_a;
      },
      20s))
      << "the standby's copy of the finished log (" << on_a->size()
      << " bytes on region-a): " << Tail(on_b.value_or("(no answer)")) << Diagnose()
      << pair_->Logs();
  // The standby's acknowledgements are counted by how long each took.
  {
    HttpReply m = Http(Url("region-a"), "GET", "/metrics");
    ASSERT_EQ(m.status, 200);
    const std::string all =
        "tandem_log_replication_acked_within_total{region=\"region-a\",sink=\"peer\","
        "within=\"+Inf\"} ";
    const size_t at = m.body.find(all);
    ASSERT_NE(at, std::string::npos) << m.body;
    EXPECT_GT(std::strtod(m.body.c_str() + at + all.size(), nullptr), 0);
  }
  // The long task is well under way.
  std::optional<std::string> long_before;
  ASSERT_TRUE(Eventually(
      [&] {
        long_before = ReadLog(Url("region-a"), long_log);
        return long_before && InOrder(*long_before, "tick-") >= 10;
      },
      30s))
      << "the long task did not log: " << long_before.value_or("(no answer)") << pair_->Logs();

  const Json op = Failover({{"mode", "planned"}}, 90s);
  ASSERT_TRUE(op.is_object()) << "the failover did not end" << pair_->Logs();
  ASSERT_EQ(Str(op, "state"), "succeeded") << op.dump(2) << pair_->Logs();
  // What region-a holds now: the lines it wrote up to the step-down, and perhaps a few after.
  const std::string long_on_a = LogFile("region-a", id, "chatty", run, "long", 1);
  ASSERT_EQ(Str(pair_->DrStatus(), "active"), "region-b");

  const std::optional<std::string> short_after = ReadLog(Url("region-b"), short_log);
  ASSERT_TRUE(short_after.has_value()) << pair_->Logs();
  EXPECT_EQ(*short_after, *on_a) << "the finished task's log differs on the new active region";
  EXPECT_EQ(InOrder(*short_after, "line-"), 200);

  const std::optional<std::string> long_after = ReadLog(Url("region-b"), long_log);
  ASSERT_TRUE(long_after.has_value()) << pair_->Logs();
  EXPECT_TRUE(IsPrefix(*long_before, *long_after))
      << "the new active region lacks lines written before the failover began: "
      << long_before->size() << " bytes then, " << long_after->size() << " now; its end:\n"
      << Tail(*long_after);
  EXPECT_TRUE(IsPrefix(*long_after, long_on_a))
      << "region-b's copy (" << long_after->size() << " bytes) is not a prefix of region-a's ("
      << long_on_a.size() << " bytes); region-b ends:\n"
      << Tail(*long_after) << "\nregion-a ends:\n"
      << Tail(long_on_a);
  const int ticks = InOrder(*long_after, "tick-");
  EXPECT_GE(ticks, InOrder(*long_before, "tick-"));
  EXPECT_EQ(ticks, Occurrences(*long_after, "tick-")) << "lines missing or out of order";
}

// After a forced failover each log on the new active region is a prefix of what the lost
// region wrote, a task that finished well before the loss has its whole log, and the lost
// region, back, discards the chunks the new primary never received.
// Over TLS too: the parts that keep calling the lost region (the control plane, the survivor's
// log shipping) see their writes fail, and go on.
TEST_F(PairDataTest, LogsAfterAForcedFailover) {
  PairProcess::Options o;
  o.tls = true;
  Start(o);
  const std::string id = CreateDeployment("region-a", "logs-forced");
  HttpReply d = Deploy("region-a", id, {{"files", {{"chatty.yaml", kChattyDag}}}});
  ASSERT_EQ(d.status, 200) << d.body;
  const std::string run = Trigger("region-a", id, "chatty");
  ASSERT_FALSE(run.empty());
  const std::string short_log = LogPath(id, "chatty", run, "short", 1);
  const std::string long_log = LogPath(id, "chatty", run, "long", 1);

  ASSERT_TRUE(Eventually(
      [&] { return TiState("region-a", TiPath(id, "chatty", run, "short")) == "success"; }, 60s))
      << "the short task did not succeed" << pair_->Logs();
  const auto finished = SteadyClock::now();
  ASSERT_TRUE(Eventually(
      [&] {
        std::optional<std::string> l = ReadLog(Url("region-a"), long_log);
        return l && InOrder(*l, "tick-") >= 10;
      },
      30s))
      << "the long task did not log" << pair_->Logs();
  // The short task finished more than two seconds before the loss: far beyond the log lag.
  std::this_thread::sleep_until(finished + 2500ms);

  const std::string before_kill = Diagnose();  // region-a's log lag as it is lost
  pair_->KillRegion("region-a", SIGKILL);
  const std::string short_on_a = LogFile("region-a", id, "chatty", run, "short", 1);
  const std::string long_on_a = LogFile("region-a", id, "chatty", run, "long", 1);
  ASSERT_EQ(InOrder(short_on_a, "line-"), 200) << short_on_a;

  const Json op = Failover({{"mode", "forced"}}, 90s);
  ASSERT_TRUE(op.is_object()) << "the failover did not end" << pair_->Logs();
  ASSERT_EQ(Str(op, "state"), "succeeded") << op.dump(2) << pair_->Logs();
  ASSERT_EQ(Str(pair_->DrStatus(), "active"), "region-b");

  const std::optional<std::string> short_on_b = ReadLog(Url("region-b"), short_log);
  ASSERT_TRUE(short_on_b.has_value()) << pair_->Logs();
  EXPECT_EQ(*short_on_b, short_on_a)
      << "the log of a task that finished 2.5 s before the loss is not whole on region-b; it "
         "ends:\n"
      << Tail(*short_on_b) << "\nbefore the loss:" << before_kill;
  const std::optional<std::string> long_on_b = ReadLog(Url("region-b"), long_log);
  ASSERT_TRUE(long_on_b.has_value()) << pair_->Logs();
  EXPECT_TRUE(IsPrefix(*long_on_b, long_on_a))
      << "region-b's copy (" << long_on_b->size() << " bytes) is not a prefix of what region-a "
      << "wrote (" << long_on_a.size() << " bytes); region-b ends:\n"
      << Tail(*long_on_b) << "\nregion-a ends:\n"
      << Tail(long_on_a);
  EXPECT_GT(InOrder(*long_on_b, "tick-"), 0)
      << "nothing of the running task's log survived; before the loss:" << before_kill;
  EXPECT_EQ(InOrder(*long_on_b, "tick-"), Occurrences(*long_on_b, "tick-"))
      << "lines missing or out of order";

  // region-a returns: it rejoins, and says what it did with the chunks region-b lacks.
  ASSERT_TRUE(pair_->StartRegion("region-a").ok()) << pair_->Logs();
  Status rejoined = pair_->WaitRejoined(90s);
  ASSERT_TRUE(rejoined.ok()) << rejoined.ToString();
  std::string said;
  ASSERT_TRUE(Eventually(
      [&] {
        said = Str(pair_->DrStatus()["regions"][0], "resync_detail");
        for (const Json& e : Events()) {
          if (Str(e, "region") == "region-a") said += "\n" + Str(e, "message");
        }
        return said.find("of task logs the new primary never received") != std::string::npos ||
               said.find("no task log chunks were waiting") != std::string::npos;
      },
      20s))
      << "region-a's rejoin says nothing of its task log chunks:\n"
      << said;
  EXPECT_TRUE(said.find("discarded") != std::string::npos ||
              said.find("no task log chunks were waiting") != std::string::npos)
      << said;
  // Both regions now hold the same bytes for the running task's log.
  std::optional<std::string> back_on_a, now_on_b;
  EXPECT_TRUE(Eventually(
      [&] {
        now_on_b = ReadLog(Url("region-b"), long_log);
        back_on_a = ReadLog(Url("region-a"), long_log);
        return back_on_a.has_value() && back_on_a == now_on_b;
      },
      20s))
      << "region-a's copy after its rejoin (" << back_on_a.value_or("(no answer)").size()
      << " bytes) is not region-b's (" << now_on_b.value_or("(no answer)").size() << " bytes; "
      << long_on_b->size() << " just after the failover, " << long_on_a.size()
      << " on region-a before it was lost); region-a ends:\n"
      << Tail(back_on_a.value_or("")) << "\nregion-b ends:\n"
      << Tail(now_on_b.value_or("")) << Diagnose() << pair_->Logs();
}

// A deploy's image is in both registries before the deploy answers, follows a switchover, and a
// deploy on the new active region is copied to the old one.
// Over TLS: each registry serves HTTPS with its region's certificate, and the replication
// verifies it.
TEST_F(PairDataTest, ImagesFollowThePair) {
  PairProcess::Options o;
  o.tls = true;
  Start(o);
  const std::string ca_dir = pair_->dir() + "/ca";
  const std::string id = CreateDeployment("region-a", "images");
  HttpReply d = Deploy("region-a", id, {{"files", {{"etl.yaml", kChattyDag}}}});
  ASSERT_EQ(d.status, 200) << d.body;
  const Json image = Body(d)["image"];
  ASSERT_TRUE(image.is_object()) << d.body;
  EXPECT_EQ(image["replicated"], true) << d.body;
  const std::string repository = Str(image, "repository");
  const std::string digest = Str(image, "digest");
  ASSERT_EQ(digest.rfind("sha256:", 0), 0u) << d.body;
  // Both registries want a token; region-a's realm gives one for pulling that either takes.
  const std::string pull = RealmToken("region-a", "repository:" + repository + ":pull");
  ASSERT_FALSE(pull.empty());
  const std::string viewer = NewToken("region-a", id, "viewer");
  for (const char* region : {"region-a", "region-b"}) {
    Result<std::string> seen =
        SkopeoDigest(pair_->registry_url(region), repository, digest, ca_dir, pull);
    ASSERT_TRUE(seen.ok()) << region << ": " << seen.status().ToString();
    EXPECT_EQ(*seen, digest) << region;
    Result<std::string> anonymous =
        SkopeoDigest(pair_->registry_url(region), repository, digest, ca_dir);
    EXPECT_FALSE(anonymous.ok()) << region << " let an anonymous client read";
    // As after `docker login -u anyname -p <API token>`: the client asks the realm itself.
    Result<std::string> logged_in =
        SkopeoDigest(pair_->registry_url(region), repository, digest, ca_dir, "", "ci:" + viewer);
    ASSERT_TRUE(logged_in.ok()) << region << ": " << logged_in.status().ToString();
    EXPECT_EQ(*logged_in, digest) << region;
  }
  // The realm grants what the principal's roles allow: a deployment viewer may pull, not push;
  // another deployment's editor, nothing here; nobody, without a credential.
  const std::string other = CreateDeployment("region-a", "images-other");
  const std::string stranger = NewToken("region-a", other, "editor");
  const std::string both = "repository:" + repository + ":pull,push";
  EXPECT_EQ(GrantedActions(RealmToken("region-a", both, viewer)), Json::array({"pull"}));
  EXPECT_EQ(GrantedActions(RealmToken("region-a", both)), Json::array({"pull", "push"}));
  EXPECT_EQ(GrantedActions(RealmToken("region-a", both, stranger)), Json(nullptr));
  HttpReply anonymous =
      Http(Url("region-a"), "GET", "/api/v1/registry/token?service=tandem-registry&scope=" + both,
           "", {{"Authorization", ""}});
  EXPECT_EQ(anonymous.status, 401) << anonymous.body;
  HttpReply bad_scope = Call("region-a", "GET", "/api/v1/registry/token?scope=registry:catalog:*");
  EXPECT_EQ(bad_scope.status, 422) << bad_scope.body;
  const Json before = GetBundle("region-a", id);
  EXPECT_EQ(before["image"]["digest"], digest) << before.dump(2);

  const Json op = Failover({{"mode", "planned"}}, 90s);
  ASSERT_TRUE(op.is_object()) << "the failover did not end" << pair_->Logs();
  ASSERT_EQ(Str(op, "state"), "succeeded") << op.dump(2) << pair_->Logs();
  const Json after = GetBundle("region-b", id);
  EXPECT_EQ(after["bundle_version"], before["bundle_version"]) << after.dump(2);
  EXPECT_EQ(after["image"]["digest"], digest) << after.dump(2);
  EXPECT_EQ(after["image"]["replicated"], true) << after.dump(2);

  // A new version deployed on region-b is copied to region-a, now the standby.
  std::string v2 = kChattyDag;
  v2 += "# version 2\n";
  HttpReply d2 = Deploy("region-b", id, {{"files", {{"etl.yaml", v2}}}});
  ASSERT_EQ(d2.status, 200) << d2.body << pair_->Logs();
  const Json image2 = Body(d2)["image"];
  EXPECT_EQ(image2["replicated"], true) << d2.body;
  const std::string digest2 = Str(image2, "digest");
  EXPECT_NE(digest2, digest);
  EXPECT_EQ(Str(image2, "repository"), repository);
  Result<std::string> on_a =
      SkopeoDigest(pair_->registry_url("region-a"), repository, digest2, ca_dir,
                   RealmToken("region-b", "repository:" + repository + ":pull"));
  ASSERT_TRUE(on_a.ok()) << on_a.status().ToString();
  EXPECT_EQ(*on_a, digest2);
  EXPECT_EQ(GetBundle("region-b", id)["image"]["digest"], digest2);
}

// With the standby down a deploy fails clearly and changes nothing, unless the caller allows an
// unreplicated image; that image reaches the standby once it is back.
TEST_F(PairDataTest, DeployWhileTheStandbyIsDown) {
  PairProcess::Options o;
  o.image_replication_timeout_seconds = 2;
  Start(o);
  const std::string id = CreateDeployment("region-a", "standby-down");
  HttpReply d = Deploy("region-a", id, {{"files", {{"etl.yaml", kChattyDag}}}});
  ASSERT_EQ(d.status, 200) << d.body;
  const Json before = GetBundle("region-a", id);
  EXPECT_EQ(before["image"]["replicated"], true) << before.dump(2);

  pair_->KillRegion("region-b", SIGTERM);
  std::string v2 = kChattyDag;
  v2 += "# version 2\n";
  const auto t0 = SteadyClock::now();
  HttpReply refused = Deploy("region-a", id, {{"files", {{"etl.yaml", v2}}}});
  EXPECT_LT(SteadyClock::now() - t0, 20s) << "the deploy waited far past the 2 s timeout";
  EXPECT_EQ(refused.status, 503) << refused.body;
  const std::string detail = Str(Body(refused), "detail");
  EXPECT_NE(detail.find("standby"), std::string::npos) << refused.body;
  EXPECT_NE(detail.find("region-b"), std::string::npos) << refused.body;
  EXPECT_EQ(GetBundle("region-a", id), before) << "a refused deploy changed the bundle";

  HttpReply allowed =
      Deploy("region-a", id, {{"files", {{"etl.yaml", v2}}}, {"allow_unreplicated", true}});
  ASSERT_EQ(allowed.status, 200) << allowed.body;
  const Json image = Body(allowed)["image"];
  EXPECT_EQ(image["replicated"], false) << allowed.body;
  const std::string digest = Str(image, "digest");
  const std::string repository = Str(image, "repository");
  const Json pending = GetBundle("region-a", id);
  EXPECT_NE(pending["bundle_version"], before["bundle_version"]);
  EXPECT_EQ(pending["image"]["digest"], digest);
  EXPECT_EQ(pending["image"]["replicated"], false) << pending.dump(2);
  // The control plane shows the backlog (a status without it fails, rather than skipping).
  Json status;
  EXPECT_TRUE(Eventually(
      [&] {
        status = pair_->DrStatus();
        return status.is_object() && status.contains("images") && status["images"].is_object() &&
               status["images"].value("unreplicated", 0) >= 1;
      },
      10s))
      << status.dump(2);

  ASSERT_TRUE(pair_->StartRegion("region-b").ok()) << pair_->Logs();
  Json now;
  ASSERT_TRUE(Eventually(
      [&] {
        now = GetBundle("region-a", id);
        return now["image"]["replicated"] == true;
      },
      60s))
      << "the image was not copied once the standby was back: " << now.dump(2) << pair_->Logs();
  EXPECT_EQ(now["image"]["digest"], digest);
  Result<std::string> on_b = SkopeoDigest(pair_->registry_url("region-b"), repository, digest);
  ASSERT_TRUE(on_b.ok()) << on_b.status().ToString();
  EXPECT_EQ(*on_b, digest);
}

// A key rotation reseals every secret while the platform runs, and both regions agree on the
// ring: a task that checks the secrets it is handed succeeds on region-a before and after a
// rotation there, on region-b after a switchover (which never held the new key in memory), and
// on region-a again after a rotation on region-b and a failback.
TEST_F(PairDataTest, SecretsOutliveKeyRotationsOnEitherSideOfAFailover) {
  Start();
  const std::string id = CreateDeployment("region-a", "rotate");
  ASSERT_EQ(Call("region-a", "POST", Root(id) + "/variables",
                 {{"key", "pw"}, {"value", "var-s3cret"}, {"is_secret", true}})
                .status,
            201);
  ASSERT_EQ(Call("region-a", "POST", Root(id) + "/connections",
                 {{"connection_id", "db"}, {"conn_type", "postgres"}, {"password", "conn-s3cret"}})
                .status,
            201);
  ASSERT_EQ(Call("region-a", "PUT", "/api/v1/deployments/" + id + "/env/DB_PASS",
                 {{"value", "env-s3cret"}, {"is_secret", true}})
                .status,
            200);
  HttpReply d = Deploy("region-a", id, {{"files", {{"check.yaml", R"(check:
  schedule: null
  tasks:
    secrets:
      operator: bash
      bash_command: >-
        [ "{{ var.value.pw }}" = var-s3cret ] && [ "{{ conn.db.password }}" = conn-s3cret ] &&
        [ "$DB_PASS" = env-s3cret ]
)"}}}});
  ASSERT_EQ(d.status, 200) << d.body;
  auto run_checks = [&](const std::string& region) {
    const std::string run = Trigger(region, id, "check");
    const std::string ti = TiPath(id, "check", run, "secrets");
    std::string state;
    Eventually(
        [&] {
          state = TiState(region, ti);
          return state == "success" || state == "failed" || state == "up_for_retry";
        },
        60s);
    return state;
  };
  auto keys = [&](const std::string& region) { return Body(Call(region, "GET", "/api/v1/keys")); };
  ASSERT_EQ(run_checks("region-a"), "success") << pair_->Logs();
  Json ring = keys("region-a");
  ASSERT_EQ(ring["keys"].size(), 1u) << ring.dump();
  EXPECT_EQ(ring["keys"][0]["values"], 3);

  CliRun rot = RunCli({"--url", Url("region-a"), "keys", "rotate"});
  ASSERT_EQ(rot.exit_code, 0) << rot.output;
  EXPECT_NE(rot.output.find("key 2 is active; 3 secrets resealed under it; retired: 1"),
            std::string::npos)
      << rot.output;
  ASSERT_EQ(run_checks("region-a"), "success") << pair_->Logs();

  const Json op = Failover({{"mode", "planned"}}, 90s);
  ASSERT_TRUE(op.is_object()) << "the failover did not end" << pair_->Logs();
  ASSERT_EQ(Str(op, "state"), "succeeded") << op.dump(2) << pair_->Logs();
  ring = keys("region-b");
  ASSERT_EQ(ring["keys"].size(), 2u) << ring.dump();
  EXPECT_EQ(ring["keys"][0]["state"], "active");
  EXPECT_EQ(ring["keys"][0]["values"], 3);
  EXPECT_EQ(ring["keys"][1]["state"], "retired");
  ASSERT_EQ(run_checks("region-b"), "success") << pair_->Logs();

  // A rotation on region-b, then back to region-a, whose process last loaded key 2.
  rot = RunCli({"--url", Url("region-b"), "keys", "rotate"});
  ASSERT_EQ(rot.exit_code, 0) << rot.output;
  EXPECT_NE(rot.output.find("key 3 is active"), std::string::npos) << rot.output;
  Status synced = pair_->WaitRejoined(60s);
  ASSERT_TRUE(synced.ok()) << synced.ToString() << pair_->Logs();
  CliRun back = pair_->Cli({"dr", "failback"});
  ASSERT_EQ(back.exit_code, 0) << back.output << pair_->Logs();
  ring = keys("region-a");
  ASSERT_EQ(ring["keys"].size(), 3u) << ring.dump();
  EXPECT_EQ(ring["keys"][0]["values"], 3);
  EXPECT_EQ(ring["keys"][1]["state"], "retired");
  ASSERT_EQ(run_checks("region-a"), "success") << pair_->Logs();
  // The standby refuses a rotation, as it refuses every write.
  HttpReply on_standby = Call("region-b", "POST", "/api/v1/keys/rotate");
  EXPECT_EQ(on_standby.status, 503) << on_standby.body;
  EXPECT_EQ(keys("region-a")["keys"].size(), 3u);
}

// Bad bodies are refused with a detail naming the problem, and change nothing. (Invalid content
// answers 422, the API's status for it throughout: docs/api.md, "Errors".)
TEST_F(PairDataTest, BadBundleRequestsChangeNothing) {
  Start();
  const std::string id = CreateDeployment("region-a", "bad-input");
  HttpReply d = Deploy("region-a", id, {{"files", {{"etl.yaml", kChattyDag}}}});
  ASSERT_EQ(d.status, 200) << d.body;
  const Json before = GetBundle("region-a", id);
  const std::string repository = Str(before["image"], "repository");
  const std::string digest = Str(before["image"], "digest");
  ASSERT_FALSE(digest.empty()) << before.dump(2);
  const Json files = {{"etl.yaml", std::string(kChattyDag) + "# other\n"}};
  const std::string absent = "sha256:" + std::string(64, '0');

  struct Case {
    std::string what;
    Json body;
    std::string detail;
  };
  const Case cases[] = {
      {"files and image",
       {{"files", files}, {"image", {{"repository", repository}, {"digest", digest}}}},
       "exactly one of files or image"},
      {"neither", Json::object(), "exactly one of files or image"},
      {"only allow_unreplicated", {{"allow_unreplicated", true}}, "exactly one of files or image"},
      {"another deployment's repository",
       {{"image", {{"repository", "someone-else/bundle"}, {"digest", digest}}}},
       "image.repository must be this deployment's"},
      {"a digest the registry lacks",
       {{"image", {{"repository", repository}, {"digest", absent}}}},
       "is not in region region-a's registry"},
      {"a malformed digest",
       {{"image", {{"repository", repository}, {"digest", "sha256:abc"}}}},
       "not a sha256 digest"},
      {"allow_unreplicated not a boolean",
       {{"files", files}, {"allow_unreplicated", "yes"}},
       "allow_unreplicated must be true or false"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    HttpReply r = Deploy("region-a", id, c.body);
    EXPECT_EQ(r.status, 422) << r.body;
    const Json j = Body(r);
    ASSERT_TRUE(j.is_object() && j.contains("detail")) << r.body;
    EXPECT_NE(Str(j, "detail").find(c.detail), std::string::npos) << r.body;
    EXPECT_EQ(GetBundle("region-a", id), before);
  }
  // The standby saw nothing either.
  Json on_b;
  EXPECT_TRUE(Eventually(
      [&] {
        on_b = GetBundle("region-b", id);
        return on_b == before;
      },
      20s))
      << on_b.dump(2);
}

}  // namespace
}  // namespace tandem::testing
