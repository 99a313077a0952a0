#include "api/json_util.h"

#include <algorithm>
#include <charconv>

namespace tandem::api {
namespace {

std::string Field(std::string_view where, const char* key) { return std::string(where) + key; }

Status WrongType(std::string_view where, const char* key, const char* expected, const Json& v) {
  return InvalidArgument("field `" + Field(where, key) + "` must be " + expected + ", got " +
                         std::string(v.type_name()));
}

Result<int64_t> ParseInt(const std::string& text, const char* param) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size()) {
    return InvalidArgument(std::string("query parameter `") + param +
                           "` must be an integer, got \"" + text + "\"");
  }
  return v;
}

}  // namespace

Result<Json> ParseJson(const std::string& text, std::string_view what) {
  bool too_deep = false;
  Json::parser_callback_t limit = [&too_deep](int depth, Json::parse_event_t, Json&) {
    if (depth > kMaxJsonDepth) too_deep = true;
    return !too_deep;
  };
  Json j = Json::parse(text, limit, false);
  if (too_deep) {
    return InvalidArgument(std::string(what) + " nests deeper than " +
                           std::to_string(kMaxJsonDepth) + " levels");
  }
  if (j.is_discarded()) return InvalidArgument(std::string(what) + " is not valid JSON");
  return j;
}

Result<Json> ParseObject(const std::string& body) {
  ASSIGN_OR_RETURN(Json j, ParseJson(body, "request body"));
  if (!j.is_object()) return InvalidArgument("request body must be a JSON object");
  return j;
}

Status CheckFields(const Json& obj, std::initializer_list<std::string_view> allowed,
                   std::initializer_list<std::string_view> required, std::string_view where) {
  if (!obj.is_object()) {
    return InvalidArgument("field `" + std::string(where.substr(0, where.size() - 1)) +
                           "` must be an object");
  }
  for (const auto& [k, v] : obj.items()) {
    if (std::find(allowed.begin(), allowed.end(), k) == allowed.end()) {
      std::string msg = "unknown field `";
      msg.append(where).append(k).append("` (expected: ");
      bool first = true;
      for (auto a : allowed) {
        msg.append(first ? "" : ", ").append(a);
        first = false;
      }
      return InvalidArgument(msg + ")");
    }
  }
  for (auto r : required) {
    if (!obj.contains(r)) {
      return InvalidArgument("field `" + std::string(where) + std::string(r) + "` is required");
    }
  }
  return Status::Ok();
}

Status ReadString(const Json& obj, const char* key, std::string* out, std::string_view where) {
  auto it = obj.find(key);
  if (it == obj.end()) return Status::Ok();
  if (!it->is_string()) return WrongType(where, key, "a string", *it);
  *out = it->get<std::string>();
  return Status::Ok();
}

Status ReadOptString(const Json& obj, const char* key, std::optional<std::string>* out,
                     std::string_view where) {
  auto it = obj.find(key);
  if (it == obj.end()) return Status::Ok();
  if (it->is_null()) {
    out->reset();
    return Status::Ok();
  }
  if (!it->is_string()) return WrongType(where, key, "a string or null", *it);
  *out = it->get<std::string>();
  return Status::Ok();
}

Status ReadInt(const Json& obj, const char* key, int* out, std::string_view where) {
  auto it = obj.find(key);
  if (it == obj.end()) return Status::Ok();
  if (!it->is_number_integer()) return WrongType(where, key, "an integer", *it);
  int64_t v = it->get<int64_t>();
  if (v < INT32_MIN || v > INT32_MAX) {
    return InvalidArgument("field `" + Field(where, key) + "` is out of range");
  }
  *out = static_cast<int>(v);
  return Status::Ok();
}

Status ReadOptInt(const Json& obj, const char* key, std::optional<int>* out,
                  std::string_view where) {
  auto it = obj.find(key);
  if (it == obj.end()) return Status::Ok();
  if (it->is_null()) {
    out->reset();
    return Status::Ok();
  }
  int v = 0;
  RETURN_IF_ERROR(ReadInt(obj, key, &v, where));
  *out = v;
  return Status::Ok();
}

Status ReadBool(const Json& obj, const char* key, bool* out, std::string_view where) {
  auto it = obj.find(key);
  if (it == obj.end()) return Status::Ok();
  if (!it->is_boolean()) return WrongType(where, key, "true or false", *it);
  *out = it->get<bool>();
  return Status::Ok();
}

Result<model::PageRequest> ReadPage(const Request& req, const char* pattern_param) {
  model::PageRequest p;
  if (const std::string* v = req.Query("limit")) {
    ASSIGN_OR_RETURN(p.limit, ParseInt(*v, "limit"));
    if (p.limit < 0) return InvalidArgument("query parameter `limit` must not be negative");
    p.limit = std::min<int64_t>(p.limit, 1000);
  }
  if (const std::string* v = req.Query("offset")) {
    ASSIGN_OR_RETURN(p.offset, ParseInt(*v, "offset"));
    if (p.offset < 0) return InvalidArgument("query parameter `offset` must not be negative");
  }
  if (const std::string* v = req.Query("order_by")) p.order_by = *v;
  if (pattern_param != nullptr) {
    if (const std::string* v = req.Query(pattern_param)) p.pattern = *v;
  }
  return p;
}

std::vector<std::string> UpdateMask(const Request& req) {
  std::vector<std::string> mask;
  auto [b, e] = req.query.equal_range("update_mask");
  for (auto it = b; it != e; ++it) {
    size_t i = 0;
    const std::string& s = it->second;
    while (i <= s.size()) {
      size_t j = s.find(',', i);
      if (j == std::string::npos) j = s.size();
      if (j > i) mask.push_back(s.substr(i, j - i));
      i = j + 1;
    }
  }
  return mask;
}

bool InMask(const std::vector<std::string>& mask, std::string_view field) {
  return mask.empty() || std::find(mask.begin(), mask.end(), field) != mask.end();
}

Status CheckMask(const std::vector<std::string>& mask,
                 std::initializer_list<std::string_view> allowed) {
  for (const auto& f : mask) {
    if (std::find(allowed.begin(), allowed.end(), f) == allowed.end()) {
      return InvalidArgument("update_mask names a field that cannot be updated: `" + f + "`");
    }
  }
  return Status::Ok();
}

Response JsonResponse(int status, const Json& j) {
  return {status, j.dump(-1, ' ', false, Json::error_handler_t::replace)};
}

Response NoContent() { return {204, "", "application/json"}; }

}  // namespace tandem::api

#include "store/store.h"

namespace tandem::api {

Result<DeploymentId> ResolveDeployment(store::Store& store, const Request& req) {
  auto it = req.params.find("deployment");
  if (it == req.params.end()) return Internal("route has no {deployment} parameter");
  ASSIGN_OR_RETURN(model::Deployment d, store.GetDeployment(it->second));
  return d.id;
}

Json OptJson(const std::optional<std::string>& s) { return s ? Json(*s) : Json(nullptr); }

}  // namespace tandem::api
