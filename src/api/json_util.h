// Reading request bodies strictly and writing responses, for the resource files of this
// module only (it includes nlohmann/json; keep it out of headers other modules include).
//
// Every reader returns InvalidArgument naming the field, so a bad body becomes a 422 with a
// sentence that says what to fix. Unknown fields are errors, as in Airflow's models
// (additionalProperties: false).
#pragma once

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "api/http.h"
#include "base/status.h"
#include "model/deployment.h"

namespace tandem::api {

using Json = nlohmann::json;

// Bodies and JSON-in-a-string fields are parsed with a nesting limit, since printing and
// redacting JSON recurse and an unbounded depth would exhaust a thread's stack.
inline constexpr int kMaxJsonDepth = 64;
// Any JSON value; InvalidArgument naming `what` when it is not JSON or nests too deep.
Result<Json> ParseJson(const std::string& text, std::string_view what);
Result<Json> ParseObject(const std::string& body);
// The value, or null when there is none: how answers show an optional field.
Json OptJson(const std::optional<std::string>& s);
// Fails on a field not in `allowed`, or a field of `required` missing. `where` prefixes field
// names in messages ("config." for a nested object; "" at the top).
Status CheckFields(const Json& obj, std::initializer_list<std::string_view> allowed,
                   std::initializer_list<std::string_view> required = {},
                   std::string_view where = "");

// Readers: leave `out` unchanged when the field is absent.
Status ReadString(const Json& obj, const char* key, std::string* out, std::string_view where = "");
// null clears the value.
Status ReadOptString(const Json& obj, const char* key, std::optional<std::string>* out,
                     std::string_view where = "");
Status ReadInt(const Json& obj, const char* key, int* out, std::string_view where = "");
Status ReadOptInt(const Json& obj, const char* key, std::optional<int>* out,
                  std::string_view where = "");
Status ReadBool(const Json& obj, const char* key, bool* out, std::string_view where = "");

// Airflow's list parameters: limit (default 50, at most 1000), offset, order_by and the
// resource's `*_pattern` filter.
Result<model::PageRequest> ReadPage(const Request& req, const char* pattern_param);

// update_mask=a,b or repeated update_mask params; empty means "every field in the body".
std::vector<std::string> UpdateMask(const Request& req);
bool InMask(const std::vector<std::string>& mask, std::string_view field);
// Fails (InvalidArgument) when the mask names a field outside `allowed`.
Status CheckMask(const std::vector<std::string>& mask,
                 std::initializer_list<std::string_view> allowed);

Response JsonResponse(int status, const Json& j);
Response NoContent();

}  // namespace tandem::api

namespace tandem::store {
class Store;
}

namespace tandem::api {
// The deployment named (or id'd) by the route's {deployment} parameter.
Result<DeploymentId> ResolveDeployment(store::Store& store, const Request& req);
// "***" when set: how secrets appear in every response (Airflow's mask).
inline constexpr const char* kMask = "***";
}  // namespace tandem::api
