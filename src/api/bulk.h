// Airflow's bulk PATCH on a collection (variables, connections, pools):
//
//   {"actions": [{"action": "create", "entities": [BODY, ...], "action_on_existence": "fail"},
//                {"action": "update", "entities": [BODY, ...], "action_on_non_existence": "fail"},
//                {"action": "delete", "entities": ["key", ...], "action_on_non_existence":
//                "fail"}]}
//
// answered with a BulkResponse: per kind of action, the keys that succeeded and the errors
// ({"error": "...", "status_code": N}); a kind not asked for is null. As in Airflow, an action
// whose "fail" policy is hit does nothing and reports one error; "skip" leaves those keys out;
// "overwrite" (create only) updates the ones that exist.
//
// Every entity of every action is checked (as a POST would check it) before anything is
// written, so a malformed request changes nothing and answers 422. For the resource files of
// this module only.
#pragma once

#include <functional>
#include <string>

#include "api/errors.h"
#include "api/json_util.h"

namespace tandem::api {

struct BulkResource {
  std::string plural;     // in messages: "variables"
  std::string key_label;  // in messages: "keys", "connection_ids", "pool names"
  // Checks one create/update entity as the single-item endpoints would; returns its key.
  std::function<Result<std::string>(const Json&)> check;
  std::function<Result<bool>(const std::string& key)> exists;
  std::function<Status(const Json&)> create;
  std::function<Status(const Json&)> update;  // the entity's fields replace the stored ones
  std::function<Status(const std::string& key)> remove;
};

Result<Response> HandleBulk(const Request& req, const BulkResource& r);

// BulkResource::exists from a getter that answers NotFound for a missing key.
template <typename Get>
std::function<Result<bool>(const std::string&)> ExistsBy(Get get) {
  return [get](const std::string& key) -> Result<bool> {
    auto found = get(key);
    if (found.status().code() == Code::kNotFound) return false;
    if (!found.ok()) return found.status();
    return true;
  };
}

}  // namespace tandem::api
