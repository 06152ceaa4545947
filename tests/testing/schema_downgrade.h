// SQL that turns a database written by the current schema back into an older one, for tests of
// the migrations. Each undoes the migrations after its version, newest first; a new migration
// adds its undo to every string here.
#ifndef RETRYD_TESTS_TESTING_SCHEMA_DOWNGRADE_H_
#define RETRYD_TESTS_TESTING_SCHEMA_DOWNGRADE_H_

namespace retryd::testing {

// 9 -> 8: no dead-letter histogram index.
#define RETRYD_UNDO_SCHEMA_9 "DROP INDEX envelopes_dead_histogram; "

// 8 -> 7: the schema is the same; 8 recomputed the stored fingerprints. A test that wants a
// version-7 database with fingerprints of the old normaliser writes them into the column.
inline constexpr char kDowngradeToSchemaSeven[] = RETRYD_UNDO_SCHEMA_9 "PRAGMA user_version = 7";

// 7 -> 6: no guard windows in the circuits' rows.
#define RETRYD_UNDO_SCHEMA_7 "ALTER TABLE circuits DROP COLUMN windows; "

inline constexpr char kDowngradeToSchemaSix[] =
    RETRYD_UNDO_SCHEMA_9 RETRYD_UNDO_SCHEMA_7 "PRAGMA user_version = 6";

// 6 -> 5: the unique key index on envelopes instead of envelope_keys and the watermark.
#define RETRYD_UNDO_SCHEMA_6                                                               \
  "DROP TRIGGER envelopes_drop_key; DROP TABLE key_merge; DROP TABLE envelope_keys; "      \
  "CREATE UNIQUE INDEX envelopes_by_key ON envelopes(service_id, message_id); "

inline constexpr char kDowngradeToSchemaFive[] =
    RETRYD_UNDO_SCHEMA_9 RETRYD_UNDO_SCHEMA_7 RETRYD_UNDO_SCHEMA_6 "PRAGMA user_version = 5";

// 5 -> 4: one (state, service_id, sort_at) index over every row, no scheduled index.
#define RETRYD_UNDO_SCHEMA_5                                                               \
  "DROP INDEX envelopes_scheduled; DROP INDEX envelopes_by_state; "                        \
  "CREATE INDEX envelopes_by_state ON envelopes(state, service_id, sort_at); "

inline constexpr char kDowngradeToSchemaFour[] = RETRYD_UNDO_SCHEMA_9 RETRYD_UNDO_SCHEMA_7
    RETRYD_UNDO_SCHEMA_6 RETRYD_UNDO_SCHEMA_5 "PRAGMA user_version = 4";

// 9 -> 1: also no fingerprints, DLQ indexes, audit log, replays or circuits.
inline constexpr char kDowngradeToSchemaOne[] =
    RETRYD_UNDO_SCHEMA_9 RETRYD_UNDO_SCHEMA_7 RETRYD_UNDO_SCHEMA_6 RETRYD_UNDO_SCHEMA_5
    "DROP TABLE audit_events; DROP TABLE replays; "
    "DROP INDEX envelopes_dead_by_time; DROP INDEX envelopes_dead_by_fingerprint; "
    "DROP INDEX envelopes_dead_by_code; ALTER TABLE envelopes DROP COLUMN fingerprint; "
    "DROP TABLE circuits; PRAGMA user_version = 1";

#undef RETRYD_UNDO_SCHEMA_5
#undef RETRYD_UNDO_SCHEMA_6
#undef RETRYD_UNDO_SCHEMA_7
#undef RETRYD_UNDO_SCHEMA_9

}  // namespace retryd::testing

#endif  // RETRYD_TESTS_TESTING_SCHEMA_DOWNGRADE_H_
