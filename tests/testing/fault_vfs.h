// FaultVfs: a SQLite VFS for tests that wraps the real one ("unix") and injects storage faults,
// in the spirit of LevelDB's fault-injection Env. It remembers, for every database, log and
// journal file, what was written since the file's last successful sync (the pre-image of each
// write, and the size at that sync), so that it can
//   * fail the Nth write, sync or read with an I/O error (a failed write writes nothing; a failed
//     sync also drops what was written since the last good one, as the kernel drops the dirty
//     pages of a file whose writeback failed, and every other handle open at that moment fails
//     its next sync too, as Linux reports a writeback error to each open file description);
//   * report a full disk once the files would grow past a byte budget (SQLITE_FULL);
//   * cut the power at the Nth write or sync: every tracked file goes back to its state at its
//     last successful sync, and the process ends at once with kPowerCutExitCode, as a machine
//     that lost power would (nothing more is written, answered or logged by the process).
//
// Every I/O call that changes a file, and every sync, runs under one lock, so a power cut sees a
// consistent set of files and no other thread writes after it. Files' existence (creation and
// deletion) is treated as durable; the -shm file is not tracked (SQLite rebuilds it from the log
// when the first connection opens the database).
//
// Configuration is a string of comma-separated key=value pairs (Parse), e.g.
//   "powercut_at=1234"               cut the power at the 1234th write-or-sync event
//   "fail=sync,at=40"                the 40th sync fails (SQLITE_IOERR_FSYNC)
//   "fail=write,at=300"              the 300th write fails (SQLITE_IOERR_WRITE)
//   "fail=read,at=500"               the 500th read fails (SQLITE_IOERR_READ)
//   "full_after_bytes=1048576"       writes that would grow the files by more than 1 MiB since
//                                    the VFS was installed fail with SQLITE_FULL
// Events are counted from Install(); writes and syncs of untracked files (temporary files) do
// not count.
#ifndef RETRYD_TESTS_TESTING_FAULT_VFS_H_
#define RETRYD_TESTS_TESTING_FAULT_VFS_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace retryd::testing {

// The exit code of a process whose power FaultVfs cut.
inline constexpr int kPowerCutExitCode = 86;

struct FaultConfig {
  enum class Fail { kNone, kWrite, kSync, kRead };
  Fail fail = Fail::kNone;
  int64_t fail_at = 0;           // The 1-based event of kind `fail` that fails; 0: none.
  int64_t powercut_at = 0;       // The 1-based write-or-sync event at which the power is cut.
  int64_t full_after_bytes = -1;  // Growth budget of the tracked files; -1: unlimited.

  static absl::StatusOr<FaultConfig> Parse(absl::string_view text);
};

// Registers the fault-injecting VFS as SQLite's default, wrapping the current default. Call once,
// before any database is opened. Thread-safe afterwards.
absl::Status InstallFaultVfs(const FaultConfig& config);

// Counts since Install (for tests of the VFS itself and for logs).
struct FaultCounts {
  int64_t writes = 0;
  int64_t syncs = 0;
  int64_t reads = 0;
  int64_t faults = 0;  // Injected failures so far.
};
FaultCounts GetFaultCounts();

// Cuts the power now: restores every tracked file to its last synced state. With `exit`, ends the
// process with kPowerCutExitCode while still holding the VFS lock (so nothing else writes);
// without, returns with every later write and sync failing (for in-process tests of the VFS).
void CutPowerNow(bool exit);

}  // namespace retryd::testing

#endif  // RETRYD_TESTS_TESTING_FAULT_VFS_H_
