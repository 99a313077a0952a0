#include "store/sql.h"

namespace tandem::store::sql {

std::string Ts(const std::string& col) {
  return "to_char(" + col + " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')";
}

std::string B(bool b) { return b ? "true" : "false"; }
std::string N(int64_t n) { return std::to_string(n); }

pg::Param Opt(const std::optional<std::string>& s) { return s; }
pg::Param OptInt(const std::optional<int>& n) {
  return n ? pg::Param(std::to_string(*n)) : std::nullopt;
}

Result<pg::Rows> ListPage(pg::Conn& c, const ListSpec& spec, const std::string& scope,
                          pg::Params params, const model::PageRequest& page, int64_t* total) {
  std::string order = page.order_by.empty() ? spec.default_order : page.order_by;
  bool desc = order[0] == '-';
  if (desc) order = order.substr(1);
  auto col = spec.orders.find(order);
  if (col == spec.orders.end()) {
    std::string allowed;
    for (const auto& [k, v] : spec.orders) allowed += (allowed.empty() ? "" : ", ") + k;
    return InvalidArgument("Ordering with '" + order +
                           "' is disallowed or the attribute does "
                           "not exist on the model (allowed: " +
                           allowed + ")");
  }
  if (page.limit < 0 || page.offset < 0) {
    return InvalidArgument("limit and offset must not be negative");
  }
  auto next = [&] { return "$" + std::to_string(params.size() + 1); };
  std::string p = next();
  params.push_back(page.pattern);
  std::string where = " FROM " + spec.table + " WHERE " + scope + " AND (" + p + " = '' OR " +
                      spec.key_column + " ILIKE '%' || " + p + " || '%')";
  ASSIGN_OR_RETURN(pg::Rows count, c.Exec("SELECT count(*)" + where, params));
  *total = count.Int(0, 0);
  std::string limit = next();
  params.push_back(N(page.limit));
  std::string offset = next();
  params.push_back(N(page.offset));
  return c.Exec("SELECT " + spec.columns + where + " ORDER BY " + col->second +
                    (desc ? " DESC" : "") + ", " + spec.tiebreak + " LIMIT " + limit + " OFFSET " +
                    offset,
                params);
}

Result<pg::Rows> ListPage(pg::Conn& c, const ListSpec& spec, const DeploymentId& d,
                          const model::PageRequest& page, int64_t* total) {
  return ListPage(c, spec, "deployment_id = $1", {d.value()}, page, total);
}

}  // namespace tandem::store::sql
