#include "pg/replication.h"

#include <cstdio>

namespace tandem::pg {
namespace {

bool ParseHex32(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 8) return false;
  uint64_t v = 0;
  for (char c : s) {
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else {
      return false;
    }
    v = v * 16 + static_cast<uint64_t>(d);
  }
  *out = v;
  return true;
}

}  // namespace

std::string FormatLsn(uint64_t lsn) {
  char buf[24];
  snprintf(buf, sizeof buf, "%X/%X", static_cast<unsigned>(lsn >> 32),
           static_cast<unsigned>(lsn & 0xFFFFFFFFu));
  return buf;
}

Result<uint64_t> ParseLsn(std::string_view text) {
  size_t slash = text.find('/');
  uint64_t hi = 0, lo = 0;
  if (slash == std::string_view::npos || !ParseHex32(text.substr(0, slash), &hi) ||
      !ParseHex32(text.substr(slash + 1), &lo)) {
    return InvalidArgument("not a WAL location (expected two hex numbers as in 16/B374D848): '" +
                           std::string(text.substr(0, 40)) + "'");
  }
  return hi << 32 | lo;
}

Status ValidateUpstream(const Upstream& up) {
  if (up.host.empty()) return InvalidArgument("the upstream PostgreSQL has no host");
  if (up.port <= 0 || up.port > 65535) {
    return InvalidArgument("the upstream PostgreSQL port is out of range: " +
                           std::to_string(up.port));
  }
  // PostgreSQL's own rule for slot names.
  if (up.slot.empty() || up.slot.size() > 63) {
    return InvalidArgument("a replication slot name has 1 to 63 characters: '" + up.slot + "'");
  }
  for (char c : up.slot) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
      return InvalidArgument(
          "a replication slot name has only lower-case letters, digits and "
          "underscores: '" +
          up.slot + "'");
    }
  }
  // It travels in primary_conninfo and in synchronous_standby_names; PostgreSQL keeps only
  // printable ASCII of it, and cuts it at 63 bytes.
  if (up.application_name.empty() || up.application_name.size() > 63) {
    return InvalidArgument("a replica's application name has 1 to 63 characters: '" +
                           up.application_name + "'");
  }
  for (char c : up.application_name) {
    if (c < 0x20 || c > 0x7e) {
      return InvalidArgument("a replica's application name has only printable ASCII characters");
    }
  }
  return Status::Ok();
}

}  // namespace tandem::pg
