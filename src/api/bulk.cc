#include "api/bulk.h"

#include <set>

namespace tandem::api {
namespace {

struct Action {
  std::string kind;    // create | update | delete
  std::string policy;  // fail | skip | overwrite
  std::vector<std::string> keys;
  std::vector<const Json*> entities;  // create and update
};

// Python's repr of a set of strings, as Airflow's messages print it: {'a', 'b'}
std::string SetText(const std::vector<std::string>& keys) {
  std::string out = "{";
  for (size_t i = 0; i < keys.size(); ++i) out += (i ? ", '" : "'") + keys[i] + "'";
  return out + "}";
}

Result<std::vector<Action>> ParseActions(const Json& body, const BulkResource& r) {
  RETURN_IF_ERROR(CheckFields(body, {"actions"}, {"actions"}));
  if (!body["actions"].is_array()) return InvalidArgument("field `actions` must be a list");
  std::vector<Action> out;
  for (size_t i = 0; i < body["actions"].size(); ++i) {
    const Json& a = body["actions"][i];
    std::string where = "actions[" + std::to_string(i) + "].";
    if (!a.is_object()) return InvalidArgument("field `" + where + "` must be an object");
    Action act;
    RETURN_IF_ERROR(ReadString(a, "action", &act.kind, where));
    if (act.kind != "create" && act.kind != "update" && act.kind != "delete") {
      return InvalidArgument("field `" + where + "action` must be create, update or delete");
    }
    const char* policy_field =
        act.kind == "create" ? "action_on_existence" : "action_on_non_existence";
    RETURN_IF_ERROR(
        CheckFields(a, {"action", "entities", policy_field}, {"action", "entities"}, where));
    act.policy = "fail";
    RETURN_IF_ERROR(ReadString(a, policy_field, &act.policy, where));
    bool policy_ok = act.policy == "fail" || act.policy == "skip" ||
                     (act.kind == "create" && act.policy == "overwrite");
    if (!policy_ok) {
      return InvalidArgument("field `" + where + policy_field + "` must be " +
                             (act.kind == "create" ? "fail, skip or overwrite" : "fail or skip"));
    }
    if (!a["entities"].is_array()) {
      return InvalidArgument("field `" + where + "entities` must be a list");
    }
    for (size_t k = 0; k < a["entities"].size(); ++k) {
      const Json& e = a["entities"][k];
      std::string at = where + "entities[" + std::to_string(k) + "]";
      if (act.kind == "delete") {
        if (!e.is_string()) return InvalidArgument("field `" + at + "` must be a string key");
        act.keys.push_back(e.get<std::string>());
        continue;
      }
      if (!e.is_object()) return InvalidArgument("field `" + at + "` must be an object");
      auto key = r.check(e);
      if (!key.ok()) return Status(key.status().code(), at + ": " + key.status().message());
      act.keys.push_back(*key);
      act.entities.push_back(&e);
    }
    std::set<std::string> seen(act.keys.begin(), act.keys.end());
    if (seen.size() != act.keys.size()) {
      return InvalidArgument("field `" + where + "entities` names the same key twice");
    }
    out.push_back(std::move(act));
  }
  return out;
}

Json ErrorEntry(const Status& s) {
  return {{"error", s.message()}, {"status_code", HttpStatusFor(s.code())}};
}

}  // namespace

Result<Response> HandleBulk(const Request& req, const BulkResource& r) {
  ASSIGN_OR_RETURN(Json body, ParseObject(req.body));
  ASSIGN_OR_RETURN(std::vector<Action> actions, ParseActions(body, r));
  Json result = {{"create", nullptr}, {"update", nullptr}, {"delete", nullptr}};
  for (const Action& act : actions) {
    Json& slot = result[act.kind];
    if (slot.is_null()) slot = {{"success", Json::array()}, {"errors", Json::array()}};
    std::vector<std::string> present, absent;
    for (const std::string& key : act.keys) {
      auto e = r.exists(key);
      if (!e.ok()) {
        slot["errors"].push_back(ErrorEntry(e.status()));
        present.clear();
        absent.clear();
        break;
      }
      (*e ? present : absent).push_back(key);
    }
    if (present.size() + absent.size() != act.keys.size()) continue;
    if (act.kind == "create" && act.policy == "fail" && !present.empty()) {
      slot["errors"].push_back(
          ErrorEntry(AlreadyExists("The " + r.plural + " with these " + r.key_label + ": " +
                                   SetText(present) + " already exist.")));
      continue;
    }
    if (act.kind != "create" && act.policy == "fail" && !absent.empty()) {
      slot["errors"].push_back(
          ErrorEntry(NotFound("The " + r.plural + " with these " + r.key_label + ": " +
                              SetText(absent) + " were not found.")));
      continue;
    }
    std::set<std::string> exists(present.begin(), present.end());
    for (size_t i = 0; i < act.keys.size(); ++i) {
      const std::string& key = act.keys[i];
      bool there = exists.count(key) > 0;
      Status s;
      if (act.kind == "create") {
        if (there && act.policy == "skip") continue;
        s = there ? r.update(*act.entities[i]) : r.create(*act.entities[i]);
      } else if (!there) {
        continue;  // skip
      } else if (act.kind == "update") {
        s = r.update(*act.entities[i]);
      } else {
        s = r.remove(key);
      }
      if (s.ok()) {
        slot["success"].push_back(key);
      } else {
        slot["errors"].push_back(ErrorEntry(s));
      }
    }
  }
  return JsonResponse(200, result);
}

}  // namespace tandem::api
