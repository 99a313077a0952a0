#include "api/errors.h"

#include <nlohmann/json.hpp>

namespace tandem::api {

int HttpStatusFor(Code code) {
  switch (code) {
    case Code::kOk: return 200;
    case Code::kInvalidArgument: return 422;
    case Code::kNotFound: return 404;
    case Code::kAlreadyExists: return 409;
    case Code::kFailedPrecondition: return 400;
    case Code::kTooLarge: return 413;
    case Code::kPermissionDenied: return 403;
    case Code::kUnauthenticated: return 401;
    case Code::kUnavailable: return 503;
    case Code::kMisdirected: return 421;
    case Code::kInternal: return 500;
  }
  return 500;
}

Response ErrorResponse(int http_status, const std::string& detail) {
  nlohmann::json j = {{"detail", detail}};
  return {http_status, j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)};
}

Response ErrorResponse(const Status& s) { return ErrorResponse(HttpStatusFor(s.code()), s.message()); }

}  // namespace tandem::api

namespace tandem::api {

Handler Wrap(std::function<Result<Response>(const Request&)> fn) {
  return [fn = std::move(fn)](const Request& req) -> Response {
    Result<Response> r = fn(req);
    if (!r.ok()) return ErrorResponse(r.status());
    return std::move(r).value();
  };
}

}  // namespace tandem::api
