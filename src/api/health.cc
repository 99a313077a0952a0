// /healthz (the process answers), /readyz (PostgreSQL reachable, migrations applied) and
// /metrics (Prometheus text, every series labelled with the region).
#include "api/context.h"
#include "api/errors.h"
#include "api/json_util.h"

namespace tandem::api {

void RegisterHealthRoutes(Router& r, const ApiContext& ctx) {
  r.Add("GET", "/healthz", [region = ctx.region](const Request&) {
    return JsonResponse(200, {{"status", "ok"}, {"region", region}});
  });
  r.Add("GET", "/readyz", [ctx](const Request&) {
    Readiness rd = ctx.readiness ? ctx.readiness() : Readiness{false, "not wired"};
    if (!rd.ready) return ErrorResponse(503, rd.detail);
    return JsonResponse(200, {{"status", "ready"}, {"region", ctx.region}, {"detail", rd.detail}});
  });
  r.Add("GET", "/metrics", [metrics = ctx.metrics](const Request&) {
    return Response{200, metrics->Render(), "text/plain; version=0.0.4; charset=utf-8"};
  });
}

}  // namespace tandem::api
