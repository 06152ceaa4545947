// PgStore: opening the store (the writer's session settings, the migrations, the read side) and
// the writer's cache of the services table.
#include "server/store/pg/pg_store.h"

#include "server/store/pg/pg_schema.h"
#include "server/util/status_macros.h"

namespace retryd {

absl::StatusOr<std::unique_ptr<pg::Connection>> PgStore::OpenWriter(const std::string& dsn) {
  ASSIGN_OR_RETURN(std::unique_ptr<pg::Connection> writer, pg::Connection::Open(dsn));
  // synchronous_commit = on whatever the server's default: COMMIT returns once durable (see
  // pg_store.h). No statement timeout on the writer: a batch is bounded by the engine.
  RETURN_IF_ERROR(writer->ExecScript(
      "SET synchronous_commit = on; SET application_name = 'retryd'; "
      "SET statement_timeout = 0; SET default_transaction_isolation = 'read committed'"));
  return writer;
}

absl::StatusOr<std::unique_ptr<PgStore>> PgStore::Open(const std::string& dsn, Options options) {
  ASSIGN_OR_RETURN(std::unique_ptr<pg::Connection> writer, OpenWriter(dsn));
  RETURN_IF_ERROR(pg::Migrate(*writer));
  std::unique_ptr<pg::StoreOwner> owner;
  if (options.single_owner) {
    ASSIGN_OR_RETURN(owner, pg::StoreOwner::Acquire(dsn, std::move(options.owner)));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<pg::Pool> readers, pg::Pool::Open(dsn, options.readers));
  std::unique_ptr<PgStore> store(
      new PgStore(dsn, std::move(owner), std::move(writer), std::move(readers)));
  ASSIGN_OR_RETURN(pg::Result services, store->writer_->Exec("SELECT name FROM services"));
  for (int i = 0; i < services.rows(); ++i) store->known_services_.insert(services.Text(i, 0));
  return store;
}

PgStore::~PgStore() = default;

absl::Status PgStore::NoteService(absl::string_view service) {
  if (known_services_.contains(service)) return absl::OkStatus();
  RETURN_IF_ERROR(writer_
                      ->Exec("INSERT INTO services (name) VALUES ($1) ON CONFLICT DO NOTHING",
                             pg::Params().Text(service))
                      .status());
  known_services_.emplace(service);
  op_new_services_.emplace_back(service);
  return absl::OkStatus();
}

}  // namespace retryd
