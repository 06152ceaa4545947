#include "server/store/pg/pg_shared_schema.h"

namespace retryd::pg {

const char* const kSharedModeMigration = R"sql(
    ALTER TABLE envelopes ADD COLUMN lease_generation bigint NOT NULL DEFAULT 0;
    ALTER TABLE envelopes ADD COLUMN lease_secret_hash bytea NOT NULL DEFAULT ''::bytea;
    CREATE INDEX envelopes_due ON envelopes (service, sort_at, id) WHERE state = 1;
    CREATE INDEX envelopes_lease_expiry ON envelopes (sort_at, id) WHERE state = 2;
    ALTER TABLE circuits ADD COLUMN version bigint NOT NULL DEFAULT 0;
    CREATE TABLE job_claims (
      kind         text NOT NULL,
      job_id       text NOT NULL,
      owner        text NOT NULL,
      epoch        bigint NOT NULL,
      heartbeat_at bigint NOT NULL,
      PRIMARY KEY (kind, job_id)
    );
    )sql";

}  // namespace retryd::pg
