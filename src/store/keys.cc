// The store's keyring: sealing and opening secrets under data keys kept in the `keyring` table,
// and rotating them (docs/security.md, "Keys").
//
// Why a rotation is safe while secrets are written: a write reads the active key under a share
// lock on its row (ActiveKey) in the transaction that stores the value, and a rotation's first
// transaction updates that row, so it waits for every write that sealed under the old key to
// commit, and every write after it seals under the new one. The reseal then finds every value
// not under the active key, in batches of short transactions, and a key is retired only in a
// transaction that finds no value left under it.
#include <algorithm>

#include "base/random.h"
#include "store/sql.h"
#include "store/store.h"

namespace tandem::store {
namespace {

using pg::Conn;
using pg::Rows;

constexpr int kResealBatch = 200;

// The wrapping of data key `id` is bound to its id.
std::string WrapAad(KeyId id) { return "keyring/" + std::to_string(id.value()); }

// Every sealed column, with the associated data its values were sealed with (as the store's
// writers build it: "env/<deployment>/<key>", "conn/<deployment>/<conn id>/<field>",
// "var/<deployment>/<key>").
struct SealedColumn {
  const char* table;
  const char* column;
  const char* aad_sql;
};
constexpr SealedColumn kSealedColumns[] = {
    {"env_vars", "value_enc", "'env/' || deployment_id::text || '/' || key"},
    {"connections", "password_enc",
     "'conn/' || deployment_id::text || '/' || conn_id || '/password'"},
    {"connections", "extra_enc", "'conn/' || deployment_id::text || '/' || conn_id || '/extra'"},
    {"variables", "value_enc", "'var/' || deployment_id::text || '/' || key"},
};

// How many values each key seals: key id 0 for values sealed before the keyring.
Result<std::map<int64_t, int64_t>> CountValues(Conn& c) {
  std::string all;
  for (const SealedColumn& s : kSealedColumns) {
    all += std::string(all.empty() ? "" : " UNION ALL ") + "SELECT " + s.column + " AS v FROM " +
           s.table;
  }
  ASSIGN_OR_RETURN(Rows r, c.Exec("SELECT CASE WHEN get_byte(v, 0) = 2 THEN "
                                  "(get_byte(v, 1)::bigint << 24) | (get_byte(v, 2) << 16) | "
                                  "(get_byte(v, 3) << 8) | get_byte(v, 4) ELSE 0 END, count(*) "
                                  "FROM (" +
                                  all + ") s WHERE v IS NOT NULL GROUP BY 1"));
  std::map<int64_t, int64_t> out;
  for (int i = 0; i < r.size(); ++i) out[r.Int(i, 0)] = r.Int(i, 1);
  return out;
}

DataKey DataKeyFromRow(const Rows& r, int i) {
  return DataKey{KeyId(static_cast<uint32_t>(r.Int(i, 0))), r.Text(i, 1), r.Text(i, 2), r.Opt(i, 3),
                 0};
}

const std::string kKeyColumns =
    "id, state, " + sql::Ts("created_at") + ", " + sql::Ts("retired_at");

}  // namespace

Store::Store(pg::Pool* pool, SecretBox box)
    : pool_(pool),
      box_(box),
      wrap_(*SecretBox::Create(box.DeriveKey("tandem keyring wrap v1"))),
      keys_(std::move(box)) {}

Result<KeyId> Store::ActiveKey(Conn& c) const {
  for (int attempt = 0; attempt < 2; ++attempt) {
    ASSIGN_OR_RETURN(Rows r,
                     c.Exec("SELECT id, wrapped FROM keyring WHERE state = 'active' FOR SHARE"));
    if (r.size() == 1) {
      // Taken from the row every time (an unwrap of 32 bytes), never from memory alone: a key
      // this process made in a transaction that rolled back may hold the same id.
      KeyId id(static_cast<uint32_t>(r.Int(0, 0)));
      RETURN_IF_ERROR(AddWrappedKey(id, r.Text(0, 1)));
      return id;
    }
    // None yet: the first. A concurrent first insert wins (the unique index), and this one
    // reads it on the second pass.
    RETURN_IF_ERROR(InsertActiveKey(c).status());
  }
  return Internal("the keyring has no active key");
}

Result<std::optional<DataKey>> Store::InsertActiveKey(Conn& c) const {
  ASSIGN_OR_RETURN(Rows next, c.Exec("SELECT coalesce(max(id), 0) + 1 FROM keyring"));
  const KeyId id(static_cast<uint32_t>(next.Int(0, 0)));
  ASSIGN_OR_RETURN(
      Rows r, c.Exec("INSERT INTO keyring (id, state, wrapped) VALUES ($1, "
                     "'active', $2) ON CONFLICT DO NOTHING RETURNING " +
                         kKeyColumns,
                     {std::to_string(id.value()),
                      pg::ByteaParam(wrap_.Seal(RandomBytes(SecretBox::kKeySize), WrapAad(id)))}));
  if (r.size() == 0) return std::optional<DataKey>();
  return std::optional<DataKey>(DataKeyFromRow(r, 0));
}

Status Store::LoadKey(Conn& c, KeyId id) const {
  ASSIGN_OR_RETURN(Rows r, c.Exec("SELECT state, wrapped FROM keyring WHERE id = $1",
                                  {std::to_string(id.value())}));
  const std::string name = "data key " + std::to_string(id.value());
  if (r.size() == 0) return Internal("a stored secret names " + name + ", which does not exist");
  if (r.IsNull(0, 1)) return Internal("a stored secret names " + name + ", which is retired");
  return AddWrappedKey(id, r.Text(0, 1));
}

Status Store::AddWrappedKey(KeyId id, const std::string& wrapped_text) const {
  ASSIGN_OR_RETURN(std::string wrapped, pg::DecodeBytea(wrapped_text));
  auto raw = wrap_.Open(wrapped, WrapAad(id));
  if (!raw.ok()) {
    return Internal("data key " + std::to_string(id.value()) +
                    " does not unwrap: " + raw.status().message());
  }
  ASSIGN_OR_RETURN(SecretBox key, SecretBox::Create(std::move(raw).value()));
  keys_.Add(id, std::move(key));
  return Status::Ok();
}

Result<std::string> Store::Seal(Conn& c, std::string_view plain, const std::string& aad) const {
  ASSIGN_OR_RETURN(KeyId id, ActiveKey(c));
  ASSIGN_OR_RETURN(std::string sealed, keys_.Seal(id, plain, aad));
  return pg::ByteaParam(sealed);
}

Result<std::string> Store::Unseal(Conn& c, const std::string& bytea_text,
                                  const std::string& aad) const {
  ASSIGN_OR_RETURN(std::string sealed, pg::DecodeBytea(bytea_text));
  auto plain = keys_.Open(sealed, aad);
  if (!plain.ok()) {
    // Sealed under a key this process has not loaded yet (a rotation in the other region, or
    // since this one started), or whose id it remembers from a transaction that rolled back
    // while the other region made that id since: the stored key decides.
    Result<std::optional<KeyId>> id = Keyring::KeyOf(sealed);
    if (id.ok() && *id) {
      RETURN_IF_ERROR(LoadKey(c, **id));
      plain = keys_.Open(sealed, aad);
    }
  }
  if (!plain.ok()) {
    // A fault of the server's data or key, never of the request that read it.
    return Internal("a stored secret (" + aad + ") does not decrypt: " + plain.status().message());
  }
  return plain;
}

Result<KeyringView> Store::ListKeys() {
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  ASSIGN_OR_RETURN(Rows r, c->Exec("SELECT " + kKeyColumns + " FROM keyring ORDER BY id DESC"));
  ASSIGN_OR_RETURN(auto counts, CountValues(*c));
  KeyringView out;
  for (int i = 0; i < r.size(); ++i) {
    DataKey k = DataKeyFromRow(r, i);
    k.values = counts[k.id.value()];
    out.keys.push_back(std::move(k));
  }
  out.unkeyed_values = counts[0];
  return out;
}

Result<KeyRotation> Store::RotateKey() {
  KeyRotation out;
  Status st = pool_->WithTx([&](Conn& c) -> Status {
    // Waits for every write holding the active key (ActiveKey's share lock).
    RETURN_IF_ERROR(c.Exec("SELECT id FROM keyring WHERE state = 'active' FOR UPDATE").status());
    RETURN_IF_ERROR(
        c.Exec("UPDATE keyring SET state = 'retiring' WHERE state = 'active'").status());
    ASSIGN_OR_RETURN(std::optional<DataKey> made, InsertActiveKey(c));
    if (!made) return Internal("another key became active during the rotation");
    out.key = std::move(*made);
    return Status::Ok();
  });
  RETURN_IF_ERROR(st);
  for (;;) {
    ASSIGN_OR_RETURN(int64_t n, ResealBatch());
    if (n == 0) break;
    out.resealed += n;
  }
  ASSIGN_OR_RETURN(out.retired, RetireUnusedKeys());
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  ASSIGN_OR_RETURN(auto counts, CountValues(*c));
  out.key.values = counts[out.key.id.value()];
  return out;
}

Result<int64_t> Store::ResealBatch() {
  int64_t done = 0;
  Status st = pool_->WithTx([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(KeyId active, ActiveKey(c));
    const std::string header = pg::ByteaParam(Keyring::Header(active));
    for (const SealedColumn& s : kSealedColumns) {
      const std::string col = s.column;
      std::string select = "SELECT ctid::text, ";
      select.append(s.aad_sql).append(", ").append(col).append(" FROM ").append(s.table);
      select.append(" WHERE ").append(col).append(" IS NOT NULL AND substring(").append(col);
      select.append(" from 1 for 5) <> $1::bytea LIMIT ")
          .append(std::to_string(kResealBatch - done))
          .append(" FOR UPDATE");
      ASSIGN_OR_RETURN(Rows r, c.Exec(select, {header}));
      for (int i = 0; i < r.size(); ++i) {
        ASSIGN_OR_RETURN(std::string plain, Unseal(c, r.Text(i, 2), r.Text(i, 1)));
        ASSIGN_OR_RETURN(std::string sealed, keys_.Seal(active, plain, r.Text(i, 1)));
        RETURN_IF_ERROR(
            c.Exec("UPDATE " + std::string(s.table) + " SET " + col + " = $1 WHERE ctid = $2::tid",
                   {pg::ByteaParam(sealed), r.Text(i, 0)})
                .status());
        ++done;
      }
      if (done >= kResealBatch) break;
    }
    return Status::Ok();
  });
  if (!st.ok()) return st;
  return done;
}

Result<std::vector<KeyId>> Store::RetireUnusedKeys() {
  std::vector<KeyId> retired;
  Status st = pool_->WithTx([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(Rows r, c.Exec("SELECT id FROM keyring WHERE state = 'retiring' FOR UPDATE"));
    ASSIGN_OR_RETURN(auto counts, CountValues(c));
    for (int i = 0; i < r.size(); ++i) {
      const int64_t id = r.Int(i, 0);
      if (counts[id] > 0) continue;
      RETURN_IF_ERROR(c.Exec("UPDATE keyring SET state = 'retired', wrapped = NULL, retired_at = "
                             "now() WHERE id = $1",
                             {std::to_string(id)})
                          .status());
      retired.emplace_back(static_cast<uint32_t>(id));
    }
    return Status::Ok();
  });
  if (!st.ok()) return st;
  for (KeyId id : retired) keys_.Remove(id);
  return retired;
}

}  // namespace tandem::store
