#include "pg/tools.h"

#include <algorithm>
#include <cctype>

#include "base/text.h"
#include "pg/replication.h"

namespace tandem::pg {
namespace {

// The lines of `s`, without their line ends.
std::vector<std::string_view> Lines(std::string_view s) {
  std::vector<std::string_view> out;
  while (!s.empty()) {
    size_t nl = s.find('\n');
    std::string_view line = s.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    out.push_back(line);
    if (nl == std::string_view::npos) break;
    s.remove_prefix(nl + 1);
  }
  return out;
}

// The value after "key:" on a line of pg_controldata ("Latest checkpoint location:   0/2000060").
bool ControlField(std::string_view line, std::string_view key, std::string_view* value) {
  if (line.substr(0, key.size()) != key || line.size() <= key.size() || line[key.size()] != ':') {
    return false;
  }
  *value = TrimSpace(line.substr(key.size() + 1));
  return true;
}

bool ParseUint(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 19) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  *out = v;
  return true;
}

// The LSN that starts `s` (up to a space, comma, colon or semicolon).
bool LsnPrefix(std::string_view s, uint64_t* out) {
  size_t end = s.find_first_of(" ,:;");
  auto lsn = ParseLsn(s.substr(0, end));
  if (!lsn.ok()) return false;
  *out = *lsn;
  return true;
}

}  // namespace

Result<ControlData> ParseControlData(std::string_view output) {
  ControlData d;
  bool state = false, ckpt = false, tli = false;
  for (std::string_view line : Lines(output)) {
    std::string_view v;
    uint64_t n = 0;
    if (ControlField(line, "Database cluster state", &v)) {
      d.state = std::string(v);
      state = true;
    } else if (ControlField(line, "Latest checkpoint location", &v)) {
      ckpt = LsnPrefix(v, &d.checkpoint_lsn);
    } else if (ControlField(line, "Latest checkpoint's TimeLineID", &v)) {
      tli = ParseUint(v, &n) && n > 0 && n <= 0x7FFFFFFFu;
      d.checkpoint_timeline = static_cast<int>(n);
    } else if (ControlField(line, "Minimum recovery ending location", &v)) {
      if (!LsnPrefix(v, &d.min_recovery_lsn)) {
        return Internal("pg_controldata: bad line: " + std::string(line));
      }
    }
  }
  if (!state || !ckpt || !tli) {
    return Internal("pg_controldata printed no cluster state, checkpoint location or timeline: " +
                    std::string(output.substr(0, 300)));
  }
  return d;
}

Result<RewindReport> ParseRewindOutput(std::string_view output) {
  RewindReport r;
  bool decided = false;
  constexpr std::string_view kDiverged = "servers diverged at WAL location ";
  for (std::string_view line : Lines(output)) {
    if (size_t p = line.find(kDiverged); p != std::string_view::npos) {
      std::string_view rest = line.substr(p + kDiverged.size());
      if (!LsnPrefix(rest, &r.diverged_lsn)) {
        return Internal("pg_rewind: cannot read the divergence point in: " + std::string(line));
      }
      constexpr std::string_view kTimeline = " on timeline ";
      if (size_t t = rest.find(kTimeline); t != std::string_view::npos) {
        uint64_t n = 0;
        if (ParseUint(TrimSpace(rest.substr(t + kTimeline.size())), &n)) {
          r.diverged_timeline = static_cast<int>(n);
        }
      }
    } else if (line.find("source and target cluster are on the same timeline") !=
               std::string_view::npos) {
      r.same_timeline = true;
    } else if (line.find("no rewind required") != std::string_view::npos) {
      decided = true;
      r.rewind_required = false;
    } else if (line.find("rewinding from last common checkpoint") != std::string_view::npos) {
      decided = true;
      r.rewind_required = true;
    }
  }
  if (!decided) {
    return Internal("pg_rewind said neither that a rewind is needed nor that none is: " +
                    std::string(output.substr(0, 500)));
  }
  return r;
}

WalStats ParseWaldumpStats(std::string_view output) {
  WalStats s;
  constexpr std::string_view kHeader = "WAL statistics between ";
  for (std::string_view line : Lines(output)) {
    if (line.substr(0, kHeader.size()) == kHeader) {
      std::string_view rest = line.substr(kHeader.size());
      size_t and_pos = rest.find(" and ");
      if (and_pos != std::string_view::npos && LsnPrefix(rest.substr(and_pos + 5), &s.end_lsn)) {
        s.found = true;
      }
      continue;
    }
    for (std::string_view type : {"Transaction/COMMIT ", "Transaction/COMMIT_PREPARED "}) {
      if (line.substr(0, type.size()) != type) continue;
      std::string_view n = TrimSpace(line.substr(type.size()));
      n = n.substr(0, n.find(' '));
      uint64_t v = 0;
      if (ParseUint(n, &v)) s.commits += static_cast<int64_t>(v);
    }
  }
  return s;
}

bool WalReceiverCannotContinue(std::string_view log) {
  for (std::string_view s : {"has already been removed", "is not in this server's history",
                             "is ahead of the WAL flush position", "is behind recovery timeline",
                             "can no longer get changes from replication slot",
                             "is not a child of this server's history"}) {
    if (log.find(s) != std::string_view::npos) return true;
  }
  return false;
}

std::string ConfQuote(std::string_view value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\'') {
      out += "''";
    } else if (c == '\\') {
      out += "\\\\";
    } else {
      out += c;
    }
  }
  return out + "'";
}

std::string SqlLiteral(std::string_view value) {
  std::string out = "'";
  for (char c : value) {
    out += c;
    if (c == '\'') out += '\'';
  }
  return out + "'";
}

std::string SynchronousStandbyNames(const std::vector<std::string>& names) {
  if (names.empty()) return "";
  std::string out = "FIRST 1 (";
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += ", ";
    out += '"';
    for (char c : names[i]) {
      out += c;
      if (c == '"') out += '"';
    }
    out += '"';
  }
  return out + ")";
}

std::string RemoveSettings(std::string_view conf, const std::vector<std::string>& keys,
                           bool* changed) {
  *changed = false;
  std::string out;
  for (std::string_view line : Lines(conf)) {
    std::string_view t = TrimSpace(line);
    size_t end = 0;
    while (end < t.size() &&
           (std::isalnum(static_cast<unsigned char>(t[end])) || t[end] == '_' || t[end] == '.')) {
      ++end;
    }
    std::string key(t.substr(0, end));
    std::transform(key.begin(), key.end(), key.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (!key.empty() && std::find(keys.begin(), keys.end(), key) != keys.end()) {
      *changed = true;
      continue;
    }
    out.append(line);
    out += '\n';
  }
  return out;
}

}  // namespace tandem::pg
