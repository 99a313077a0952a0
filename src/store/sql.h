// SQL helpers shared by the store's files. Internal to the store module.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "base/status.h"
#include "base/strong_id.h"
#include "model/deployment.h"
#include "pg/conn.h"

namespace tandem::store::sql {

// An RFC 3339 UTC text expression for a timestamptz column ("" when NULL via coalesce by the
// caller).
std::string Ts(const std::string& col);

std::string B(bool b);
std::string N(int64_t n);
pg::Param Opt(const std::optional<std::string>& s);
pg::Param OptInt(const std::optional<int>& n);

// One resource kind that is listed with Airflow's paging, ordering and filtering.
struct ListSpec {
  std::string table;
  std::string columns;
  std::string key_column;                     // filtered by the pattern
  std::map<std::string, std::string> orders;  // order_by value -> column
  std::string noun;                           // for error messages
  std::string key_name;                       // how messages name the key
  std::string default_order = "id";
  std::string tiebreak = "id";
};

// The rows of one page of `spec` within `scope` (an SQL condition over `params`), and the
// number of rows in all pages in *total.
Result<pg::Rows> ListPage(pg::Conn& c, const ListSpec& spec, const std::string& scope,
                          pg::Params params, const model::PageRequest& page, int64_t* total);
// Within one deployment.
Result<pg::Rows> ListPage(pg::Conn& c, const ListSpec& spec, const DeploymentId& d,
                          const model::PageRequest& page, int64_t* total);

}  // namespace tandem::store::sql
