#include "app/output.h"

#include <cstdio>

#include <nlohmann/json.hpp>

namespace tandem::app {

int ExitCodeFor(Code code) {
  switch (code) {
    case Code::kOk: return 0;
    case Code::kInvalidArgument:
    case Code::kTooLarge:
    case Code::kFailedPrecondition: return 2;
    case Code::kUnavailable:
    case Code::kMisdirected: return 3;
    case Code::kNotFound: return 4;
    case Code::kAlreadyExists: return 5;
    case Code::kPermissionDenied:
    case Code::kUnauthenticated:
    case Code::kInternal: return 1;
  }
  return 1;
}

int ExitCodeForHttp(int status) {
  if (status < 400) return 0;
  if (status == 404) return 4;
  if (status == 409) return 5;
  if (status == 503 || status == 421) return 3;
  if (status == 401 || status == 403) return 1;  // as Unauthenticated, PermissionDenied
  if (status < 500) return 2;
  return 1;
}

int Fail(const Status& s) {
  fprintf(stderr, "error: %s\n", s.message().c_str());
  return ExitCodeFor(s.code());
}

int FailHttp(const HttpResult& r) {
  std::string detail = r.body;
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (!j.is_discarded() && j.is_object() && j.contains("detail")) {
    detail = j["detail"].is_string() ? j["detail"].get<std::string>() : j["detail"].dump();
  }
  fprintf(stderr, "error: %s (HTTP %d)\n", detail.c_str(), r.status);
  return ExitCodeForHttp(r.status);
}

void PrintTable(const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(header.size());
  for (size_t i = 0; i < header.size(); ++i) width[i] = header[i].size();
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size() && i < width.size(); ++i) {
      width[i] = std::max(width[i], std::min<size_t>(r[i].size(), 60));
    }
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (size_t i = 0; i < width.size(); ++i) {
      std::string c = i < cells.size() ? cells[i] : "";
      if (c.size() > 60) c = c.substr(0, 57) + "...";
      out += c;
      if (i + 1 < width.size()) out += std::string(width[i] - c.size() + 2, ' ');
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    printf("%s\n", out.c_str());
  };
  line(header);
  for (const auto& r : rows) line(r);
}

}  // namespace tandem::app
