// Task tokens for the Execution API: a claimed task instance gets a token that lets its worker
// act on that task instance, at that try, until it expires — nothing else.
//
// Format: base64url(claims) "." base64url(HMAC-SHA256(key, claims)), where claims are the
// fields below joined by '\n' after a version tag. The region checks a token without reading
// the database; a token for an earlier try is valid as a token but no longer matches the task
// instance, which the store checks. The key is derived from the region pair's secret key, so
// both regions accept each other's tokens.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"

namespace tandem {

struct TaskClaims {
  std::string ti_id;  // task instance uuid
  int try_number = 0;
  std::string deployment_id;
  std::string dag_id, run_id, task_id;
  int64_t expires_at = 0;  // Unix seconds
};

class TokenSigner {
 public:
  // REQUIRES: key.size() >= 32.
  explicit TokenSigner(std::string key) : key_(std::move(key)) {}

  std::string Sign(const TaskClaims& claims) const;
  // Unauthenticated (the API's 401) when the token is malformed, forged or expired at `now`.
  Result<TaskClaims> Verify(std::string_view token, int64_t now) const;

 private:
  std::string Mac(std::string_view data) const;
  const std::string key_;
};

// HMAC-SHA256(key, message), raw bytes.
std::string HmacSha256(std::string_view key, std::string_view message);
// Lowercase hex SHA-256.
std::string Sha256Hex(std::string_view data);

}  // namespace tandem
