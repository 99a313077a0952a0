// The one place where a Status becomes an HTTP status and a {"detail": ...} body.
//
//   kInvalidArgument    422 (the request was understood; its content is invalid)
//   kNotFound           404        kAlreadyExists       409
//   kFailedPrecondition 400        kTooLarge            413
//   kPermissionDenied   403        kUnavailable         503
//   kUnauthenticated    401        kMisdirected         421
//   kInternal           500
#pragma once

#include "api/http.h"
#include "base/status.h"

namespace tandem::api {

int HttpStatusFor(Code code);
Response ErrorResponse(const Status& s);
Response ErrorResponse(int http_status, const std::string& detail);

}  // namespace tandem::api

namespace tandem::api {

// A handler written with Result: its error becomes the response through ErrorResponse.
Handler Wrap(std::function<Result<Response>(const Request&)> fn);

}  // namespace tandem::api
