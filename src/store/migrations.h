// Versioned schema migrations, applied at region start.
//
// Each migration has a version (1, 2, ...) and SQL. Migrate() takes an advisory lock, applies
// the missing ones in one transaction and records them in schema_migrations, so running it
// again (or from two processes at once) changes nothing. A database whose schema is newer than
// this binary knows is refused: an older tandem must not write to it.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"
#include "pg/conn.h"

namespace tandem::store {

struct Migration {
  int version;
  std::string name;
  std::string sql;
};

// All migrations this binary knows, in order.
const std::vector<Migration>& Migrations();
int LatestSchemaVersion();

// Returns the schema version after migrating.
Result<int> Migrate(pg::Conn& conn);
// The version recorded in the database (0 for an empty database).
Result<int> SchemaVersion(pg::Conn& conn);

}  // namespace tandem::store
