// Store failures: errors of the storage itself (I/O, a full disk, corruption, SQLite refusing a
// statement for a reason other than the data) as opposed to answers about the data (a key that
// is taken, a row that is absent). The engine is crash-only on store failures: one that happens
// after a batch began writing stops the process, and start-up recovery rebuilds from what is on
// disk (see server/engine/engine.h). The distinction travels with the status as a payload, so it
// survives being returned through any number of layers without a parallel error type.
#ifndef RETRYD_SERVER_STORE_STORE_FAILURE_H_
#define RETRYD_SERVER_STORE_STORE_FAILURE_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace retryd {

// Marks `status` (not OK) as a failure of the storage and returns it.
absl::Status MarkStoreFailure(absl::Status status);
// True when `status` carries the mark of MarkStoreFailure.
bool IsStoreFailure(const absl::Status& status);

// Marks `status` (not OK) as fencing: this process no longer owns its store (another replica took
// it over), so it must stop before it writes anything more; also a store failure.
absl::Status MarkFenced(absl::Status status);
// True when `status` carries the mark of MarkFenced.
bool IsFenced(const absl::Status& status);

}  // namespace retryd

#endif  // RETRYD_SERVER_STORE_STORE_FAILURE_H_
