// KeyIndex: the idempotency-key index of envelopes ((service, message_id) -> envelope id), written
// lazily so that random message ids do not cost a random B-tree page per new envelope.
//
// A B-tree index on random keys dirties one leaf per insert: at 1 M keys, a batch of a dozen new
// envelopes wrote a dozen 4 KB leaves to the WAL (and the checkpoint copied them again), more than
// half of all the bytes a first failure wrote. Here the index has two parts:
//
//   - `envelope_keys`, a table in key order, holds the keys of every envelope whose id is at most
//     a watermark (`key_merge.merged_through`). Deleting an envelope deletes its key there (a
//     trigger, so that no delete path can forget it).
//   - The keys of newer envelopes live in memory ("pending"). They are rebuilt at open from the
//     rows above the watermark, so nothing but the rows themselves has to be written for them.
//
// When enough keys are pending, a merge copies them into `envelope_keys` in key order, a slice per
// writer transaction (just before its COMMIT), so that each leaf of the table is written about once
// per merge rather than once per key; the last slice moves the watermark. A crash mid-merge loses
// nothing: the keys above the old watermark are read again at open and merged again (the copy
// replaces what an earlier slice wrote).
//
// New envelopes get ids from NextId(), always above the watermark (SQLite alone could hand out an
// id below it again after the newest rows were deleted, and the open would then miss its key).
//
// Pending keys are a superset: a key stays in memory after its insert was rolled back or its
// envelope deleted, until the next merge. Every lookup therefore checks the row. The merge copies
// keys from memory without reading their rows (rows older than the page cache would cost a read
// each), except for envelopes deleted since they were added: a temporary trigger on the writer
// connection tells the index of every deleted id, and those keys are copied only if their row is
// still there (the delete may have been rolled back).
//
// Threading: the write side (Find, Add, NextId, the merge) runs on the store's writer thread;
// PendingId may be called from any thread.
#ifndef RETRYD_SERVER_STORE_KEY_INDEX_H_
#define RETRYD_SERVER_STORE_KEY_INDEX_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "server/store/sqlite_db.h"

namespace retryd {

class KeyIndex {
 public:
  struct Options {
    // A merge starts once this many keys are pending. Larger: fewer leaf writes per key, more
    // memory and a longer scan at open.
    int64_t merge_at = 32768;
    // Keys copied per writer transaction while a merge runs (at least; more when keys arrive
    // faster than that). Each slice adds the leaves it touches to its commit's fsync: at 1 M
    // keys, slices of 128 took the submit p99 from 7.9 ms (slices of 32) to 10-12 ms.
    int64_t slice = 32;
  };

  // Reads the watermark and the keys above it, on the writer connection (`db` must outlive the
  // index).
  static absl::StatusOr<std::unique_ptr<KeyIndex>> Load(sqlite::Database* db, Options options);

  // ---- Writer thread ----

  // The id of the stored envelope with this key, if any.
  absl::StatusOr<std::optional<int64_t>> Find(int64_t service_id, absl::string_view message_id);
  // The id for a new envelope; never handed out twice.
  int64_t NextId() { return next_id_++; }
  // Records the key of an envelope just inserted (in the open transaction).
  void Add(int64_t service_id, absl::string_view message_id, int64_t id);

  // Whether the next commit should carry a merge slice (one is running, or enough keys wait).
  bool SliceDue() const { return !merge_.empty() || pending_count() >= options_.merge_at; }
  // Inside the writer's transaction, before its COMMIT: copies the next slice of a merge (starting
  // one if enough keys are pending).
  [[nodiscard]] absl::Status BeforeCommit();
  // The transaction that BeforeCommit wrote into committed, or was abandoned.
  void Committed();
  void RolledBack();

  // ---- Any thread ----

  // The id of the newest envelope inserted with this key since the last merge, if any. The row
  // may be gone, or not yet committed: the caller checks it.
  std::optional<int64_t> PendingId(int64_t service_id, absl::string_view message_id) const;

  // How many keys are in memory (for tests and logs).
  int64_t pending_count() const;
  int64_t merged_through() const { return merged_through_; }

 private:
  KeyIndex(sqlite::Database* db, Options options) : db_(db), options_(options) {}
  absl::Status Prepare();
  // Called by the trigger for each deleted envelope.
  void Dropped(int64_t id);
  // Starts a merge of every pending key, in key order.
  void StartMerge() ABSL_LOCKS_EXCLUDED(mu_);

  sqlite::Database* const db_;
  const Options options_;
  sqlite::Statement find_merged_, check_row_, copy_key_, copy_row_key_, set_watermark_;
  // Ids above the watermark whose envelope was deleted (perhaps in a transaction later rolled
  // back); writer thread only.
  absl::flat_hash_set<int64_t> dropped_;

  // Every envelope with an id at most this has its key in envelope_keys (as committed).
  int64_t merged_through_ = 0;
  int64_t next_id_ = 1;

  // The merge in progress: pending keys as they were when it started, in key order, and how far
  // committed slices (done_) and the slice of the open transaction (written_) got.
  struct MergeKey {
    int64_t service_id;
    std::string message_id;
    int64_t id;
  };
  std::vector<MergeKey> merge_;
  int64_t merge_through_ = 0;  // The watermark once this merge is complete.
  size_t done_ = 0;
  size_t written_ = 0;

  mutable absl::Mutex mu_;
  // Pending keys: service id -> message id -> envelope id.
  absl::flat_hash_map<int64_t, absl::flat_hash_map<std::string, int64_t>> pending_
      ABSL_GUARDED_BY(mu_);
  int64_t pending_count_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace retryd

#endif  // RETRYD_SERVER_STORE_KEY_INDEX_H_
