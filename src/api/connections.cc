// Airflow REST API v2 connections, per deployment: {kAirflowRoot}/connections[/{connection_id}].
//
// Shapes follow the Airflow spec (ConnectionBody, ConnectionResponse, ...). Passwords and
// extras are sealed at rest. Responses show a set password as "***" and, in `extra`, the value
// of every key with a sensitive name at any depth (Airflow's redaction); an extra that is not a
// JSON object is shown as "***" whole. A PATCH that sends a mask back keeps the stored value.
#include "api/bulk.h"
#include "api/context.h"
#include "api/errors.h"
#include "api/json_util.h"
#include "model/validate.h"
#include "store/store.h"

namespace tandem::api {
namespace {

using model::Connection;

// Masks the value of every sensitive key, at any depth.
void Redact(Json& j) {
  if (j.is_object()) {
    for (auto& [k, v] : j.items()) {
      if (model::IsSensitiveName(k)) {
        v = kMask;
      } else {
        Redact(v);
      }
    }
  } else if (j.is_array()) {
    for (auto& v : j) Redact(v);
  }
}

// Where `incoming` holds "***" for a key `stored` has, puts the stored value back: clients
// that write back what they read must not overwrite secrets with the mask.
void Unmask(Json& incoming, const Json& stored) {
  if (incoming.is_array() && stored.is_array() && incoming.size() == stored.size()) {
    for (size_t i = 0; i < incoming.size(); ++i) Unmask(incoming[i], stored[i]);
    return;
  }
  if (!incoming.is_object() || !stored.is_object()) return;
  for (auto& [k, v] : incoming.items()) {
    auto s = stored.find(k);
    if (s == stored.end()) continue;
    if (v == kMask) {
      v = *s;
    } else {
      Unmask(v, *s);
    }
  }
}

Json RedactedExtra(const std::optional<std::string>& extra) {
  if (!extra) return nullptr;
  auto j = ParseJson(*extra, "extra");
  if (!j.ok() || !j->is_object()) return extra->empty() ? Json("") : Json(kMask);
  Redact(*j);
  return j->dump();
}

Json ToJson(const Connection& c) {
  return {{"connection_id", c.conn_id},
          {"conn_type", c.conn_type},
          {"description", OptJson(c.description)},
          {"host", OptJson(c.host)},
          {"login", OptJson(c.login)},
          {"schema", OptJson(c.schema)},
          {"port", c.port ? Json(*c.port) : Json(nullptr)},
          {"password", c.password ? Json(kMask) : Json(nullptr)},
          {"extra", RedactedExtra(c.extra)}};
}

const std::initializer_list<std::string_view> kFields = {
    "connection_id", "conn_type", "description", "host", "login",
    "schema",        "port",      "password",    "extra"};

// Reads the fields of `j` named by `mask` (all when empty) into `c`.
Status Read(const Json& j, const std::vector<std::string>& mask, Connection& c) {
  if (InMask(mask, "conn_type")) RETURN_IF_ERROR(ReadString(j, "conn_type", &c.conn_type));
  if (InMask(mask, "description")) RETURN_IF_ERROR(ReadOptString(j, "description", &c.description));
  if (InMask(mask, "host")) RETURN_IF_ERROR(ReadOptString(j, "host", &c.host));
  if (InMask(mask, "login")) RETURN_IF_ERROR(ReadOptString(j, "login", &c.login));
  if (InMask(mask, "schema")) RETURN_IF_ERROR(ReadOptString(j, "schema", &c.schema));
  if (InMask(mask, "port")) RETURN_IF_ERROR(ReadOptInt(j, "port", &c.port));
  if (InMask(mask, "password")) RETURN_IF_ERROR(ReadOptString(j, "password", &c.password));
  if (InMask(mask, "extra")) RETURN_IF_ERROR(ReadOptString(j, "extra", &c.extra));
  return Status::Ok();
}

Status Validate(const Connection& c, size_t max_value) {
  RETURN_IF_ERROR(model::ValidateConnId(c.conn_id));
  if (c.conn_type.empty()) return InvalidArgument("field `conn_type` must not be empty");
  RETURN_IF_ERROR(model::ValidateSize("conn_type", c.conn_type.size(), max_value));
  for (const auto& [name, v] : {std::pair{"description", &c.description},
                                {"host", &c.host},
                                {"login", &c.login},
                                {"schema", &c.schema},
                                {"password", &c.password},
                                {"extra", &c.extra}}) {
    RETURN_IF_ERROR(model::ValidateSize(name, v->has_value() ? (*v)->size() : 0, max_value));
  }
  if (c.port && (*c.port < 0 || *c.port > 65535)) {
    return InvalidArgument("field `port` must be from 0 to 65535");
  }
  if (c.extra && !c.extra->empty()) {
    auto extra = ParseJson(*c.extra, "The `extra` field");
    if (!extra.ok() || !extra->is_object()) {
      bool too_deep = !extra.ok() && extra.status().message().find("nests") != std::string::npos;
      return too_deep ? extra.status()
                      : InvalidArgument("The `extra` field must be a valid JSON object");
    }
  }
  return Status::Ok();
}

// A new connection from a ConnectionBody (POST, bulk create).
Result<Connection> ParseConnection(const Json& j, size_t max_value) {
  RETURN_IF_ERROR(CheckFields(j, kFields, {"connection_id", "conn_type"}));
  Connection c;
  RETURN_IF_ERROR(ReadString(j, "connection_id", &c.conn_id));
  RETURN_IF_ERROR(Read(j, {}, c));
  RETURN_IF_ERROR(Validate(c, max_value));
  return c;
}

// Applies the fields of a ConnectionBody named by `mask` (all when empty) to a stored
// connection (PATCH, bulk update); masks sent back keep the stored secrets.
Status ApplyConnection(const Json& j, const std::vector<std::string>& mask, Connection& x,
                       size_t max_value) {
  const Connection stored = x;
  RETURN_IF_ERROR(Read(j, mask, x));
  if (x.password == kMask) x.password = stored.password;
  if (x.extra == kMask) x.extra = stored.extra;
  RETURN_IF_ERROR(Validate(x, max_value));  // bounds the depth before Unmask recurses
  if (x.extra && stored.extra && !x.extra->empty()) {
    auto in = ParseJson(*x.extra, "extra");
    auto was = ParseJson(*stored.extra, "extra");
    if (in.ok() && was.ok() && in->is_object() && was->is_object()) {
      Unmask(*in, *was);
      x.extra = in->dump();
    }
  }
  return Validate(x, max_value);
}

}  // namespace

void RegisterConnectionRoutes(Router& r, const ApiContext& ctx) {
  store::Store* store = ctx.store;
  size_t max_value = ctx.max_value_bytes;
  const std::string base = std::string(kAirflowRoot) + "/connections";

  r.Add("GET", base, Wrap([store](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(DeploymentId d, ResolveDeployment(*store, req));
          ASSIGN_OR_RETURN(model::PageRequest page, ReadPage(req, "connection_id_pattern"));
          ASSIGN_OR_RETURN(model::Page<Connection> p, store->ListConnections(d, page));
          Json items = Json::array();
          for (const auto& c : p.items) items.push_back(ToJson(c));
          return JsonResponse(200, {{"connections", items}, {"total_entries", p.total}});
        }));

  r.Add("POST", base, Wrap([store, max_value](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(DeploymentId d, ResolveDeployment(*store, req));
          ASSIGN_OR_RETURN(Json j, ParseObject(req.body));
          ASSIGN_OR_RETURN(Connection c, ParseConnection(j, max_value));
          RETURN_IF_ERROR(store->CreateConnection(d, c));
          return JsonResponse(201, ToJson(c));
        }));

  r.Add("PATCH", base, Wrap([store, max_value](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(DeploymentId d, ResolveDeployment(*store, req));
          BulkResource bulk{
              "connections",
              "connection_ids",
              [max_value](const Json& e) -> Result<std::string> {
                ASSIGN_OR_RETURN(Connection c, ParseConnection(e, max_value));
                return c.conn_id;
              },
              ExistsBy([store, d](const std::string& key) { return store->GetConnection(d, key); }),
              [store, d, max_value](const Json& e) -> Status {
                ASSIGN_OR_RETURN(Connection c, ParseConnection(e, max_value));
                return store->CreateConnection(d, c);
              },
              [store, d, max_value](const Json& e) -> Status {
                return store
                    ->UpdateConnection(
                        d, e["connection_id"].get<std::string>(),
                        [&](Connection& x) { return ApplyConnection(e, {}, x, max_value); })
                    .status();
              },
              [store, d](const std::string& id) { return store->DeleteConnection(d, id); }};
          return HandleBulk(req, bulk);
        }));

  r.Add("GET", base + "/{connection_id}", Wrap([store](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(DeploymentId d, ResolveDeployment(*store, req));
          ASSIGN_OR_RETURN(Connection c, store->GetConnection(d, req.params.at("connection_id")));
          return JsonResponse(200, ToJson(c));
        }));

  r.Add("PATCH", base + "/{connection_id}",
        Wrap([store, max_value](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(DeploymentId d, ResolveDeployment(*store, req));
          ASSIGN_OR_RETURN(Json j, ParseObject(req.body));
          RETURN_IF_ERROR(CheckFields(j, kFields, {"connection_id", "conn_type"}));
          const std::string& id = req.params.at("connection_id");
          if (j["connection_id"] != id) {
            return FailedPrecondition(
                "The connection_id in the request body does not match "
                "the URL parameter");
          }
          std::vector<std::string> mask = UpdateMask(req);
          RETURN_IF_ERROR(CheckMask(mask, {"conn_type", "description", "host", "login", "schema",
                                           "port", "password", "extra"}));
          ASSIGN_OR_RETURN(Connection c, store->UpdateConnection(d, id, [&](Connection& x) {
            return ApplyConnection(j, mask, x, max_value);
          }));
          return JsonResponse(200, ToJson(c));
        }));

  r.Add("DELETE", base + "/{connection_id}", Wrap([store](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(DeploymentId d, ResolveDeployment(*store, req));
          RETURN_IF_ERROR(store->DeleteConnection(d, req.params.at("connection_id")));
          return NoContent();
        }));
}

}  // namespace tandem::api
