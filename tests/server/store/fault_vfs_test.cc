// FaultVfs (tests/testing/fault_vfs.h), the storage model of the fault-injection tests: a power
// cut keeps exactly what was synced, a failed sync loses what it was to make durable, and a full
// disk refuses growth. Each case runs in a forked child (the VFS is process-wide and a power cut
// ends the process); the parent then reads the files with SQLite's real VFS.
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/fault_vfs.h"
#include "tests/testing/server_process.h"

namespace retryd::testing {
namespace {

// Runs `sql` on `db`; returns SQLite's result code.
int Exec(sqlite3* db, const char* sql) { return sqlite3_exec(db, sql, nullptr, nullptr, nullptr); }

sqlite3* OpenWal(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) std::_Exit(10);
  if (Exec(db, "PRAGMA journal_mode=WAL") != SQLITE_OK) std::_Exit(11);
  if (Exec(db, "PRAGMA wal_autocheckpoint=0") != SQLITE_OK) std::_Exit(12);
  return db;
}

// The rows of t(v), comma-separated, read with the real VFS; "error: ..." if that fails.
std::string Rows(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, "unix") != SQLITE_OK) {
    sqlite3_close(db);
    return "error: open";
  }
  std::string out;
  char* err = nullptr;
  const int rc = sqlite3_exec(
      db, "SELECT v FROM t ORDER BY v",
      +[](void* o, int, char** values, char**) {
        auto* s = static_cast<std::string*>(o);
        if (!s->empty()) s->append(",");
        s->append(values[0]);
        return 0;
      },
      &out, &err);
  if (rc != SQLITE_OK) out = std::string("error: ") + (err != nullptr ? err : "?");
  sqlite3_free(err);
  std::string check;
  sqlite3_exec(
      db, "PRAGMA integrity_check",
      +[](void* o, int, char** values, char**) {
        static_cast<std::string*>(o)->append(values[0]);
        return 0;
      },
      &check, nullptr);
  sqlite3_close(db);
  if (check != "ok") out += " (integrity: " + check + ")";
  return out;
}

// Runs `child` in a forked process (it must end with std::_Exit); returns its exit code, or -1
// if it died from a signal.
template <typename Fn>
int InChild(Fn child) {
  const pid_t pid = fork();
  if (pid == 0) {
    child();
    std::_Exit(100);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

class FaultVfsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    path_ = dir_ + "/t.db";
  }
  void TearDown() override { RemoveTree(dir_); }
  std::string dir_;
  std::string path_;
};

TEST_F(FaultVfsTest, WithoutAFaultEverythingCommittedIsThere) {
  EXPECT_EQ(InChild([&] {
        if (!InstallFaultVfs(FaultConfig()).ok()) std::_Exit(1);
        sqlite3* db = OpenWal(path_);
        Exec(db, "CREATE TABLE t(v TEXT)");
        Exec(db, "PRAGMA synchronous=OFF");
        Exec(db, "INSERT INTO t VALUES ('a')");
        Exec(db, "INSERT INTO t VALUES ('b')");
        std::_Exit(0);  // Like kill -9: the page cache keeps unsynced writes.
      }),
      0);
  EXPECT_EQ(Rows(path_), "a,b");
}

TEST_F(FaultVfsTest, PowerCutKeepsOnlyWhatWasSynced) {
  EXPECT_EQ(InChild([&] {
        if (!InstallFaultVfs(FaultConfig()).ok()) std::_Exit(1);
        sqlite3* db = OpenWal(path_);
        Exec(db, "PRAGMA synchronous=FULL");  // Every commit syncs the log.
        Exec(db, "CREATE TABLE t(v TEXT)");
        Exec(db, "INSERT INTO t VALUES ('synced')");
        Exec(db, "PRAGMA synchronous=OFF");  // Commits that never reach the disk.
        Exec(db, "INSERT INTO t VALUES ('lost1')");
        Exec(db, "INSERT INTO t VALUES ('lost2')");
        CutPowerNow(/*exit=*/true);
        std::_Exit(0);
      }),
      kPowerCutExitCode);
  EXPECT_EQ(Rows(path_), "synced");
}

TEST_F(FaultVfsTest, PowerCutAtAnEventStopsThere) {
  EXPECT_EQ(InChild([&] {
        absl::StatusOr<FaultConfig> config = FaultConfig::Parse("powercut_at=2000");
        if (!config.ok() || !InstallFaultVfs(*config).ok()) std::_Exit(1);
        sqlite3* db = OpenWal(path_);
        Exec(db, "PRAGMA synchronous=FULL");
        Exec(db, "CREATE TABLE t(v TEXT)");
        for (int i = 0;; ++i) {  // Each commit is writes and a sync: the cut comes.
          std::string sql = "INSERT INTO t VALUES ('" + std::to_string(i) + "')";
          if (Exec(db, sql.c_str()) != SQLITE_OK) std::_Exit(2);
          if (GetFaultCounts().syncs > 2000) std::_Exit(3);
        }
      }),
      kPowerCutExitCode);
  const std::string rows = Rows(path_);
  EXPECT_EQ(rows.find("error"), std::string::npos) << rows;
  EXPECT_EQ(rows.find("integrity"), std::string::npos) << rows;
}

TEST_F(FaultVfsTest, AFailedSyncLosesWhatItWasToMakeDurable) {
  // Count the syncs of that run, then fail the next one (the second insert's commit).
  int syncs = 0;
  {
    const std::string probe = dir_ + "/probe.db";
    pid_t pid = fork();
    if (pid == 0) {
      if (!InstallFaultVfs(FaultConfig()).ok()) std::_Exit(255);
      sqlite3* db = OpenWal(probe);
      Exec(db, "PRAGMA synchronous=FULL");
      Exec(db, "CREATE TABLE t(v TEXT)");
      Exec(db, "INSERT INTO t VALUES ('kept')");
      std::_Exit(static_cast<int>(GetFaultCounts().syncs));
    }
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFEXITED(status));
    syncs = WEXITSTATUS(status);
    ASSERT_GT(syncs, 0);
    ASSERT_LT(syncs, 255);
  }
  const std::string fault = "fail=sync,at=" + std::to_string(syncs + 1);
  EXPECT_EQ(InChild([&] {
        absl::StatusOr<FaultConfig> config = FaultConfig::Parse(fault);
        if (!config.ok() || !InstallFaultVfs(*config).ok()) std::_Exit(1);
        sqlite3* db = OpenWal(path_);
        Exec(db, "PRAGMA synchronous=FULL");
        Exec(db, "CREATE TABLE t(v TEXT)");
        Exec(db, "INSERT INTO t VALUES ('kept')");
        const int rc = Exec(db, "INSERT INTO t VALUES ('failed')");
        // The commit reports the failure; the page cache keeps the rest (like a process that
        // stops now: the kernel already dropped the log's unsynced pages).
        std::_Exit((rc & 0xff) == SQLITE_IOERR ? 0 : 2);
      }),
      0);
  EXPECT_EQ(Rows(path_), "kept");
}

// Linux reports a failed writeback to every file description open at that moment: a second
// handle of the file (e.g. the log sync's own connection) fails its next sync too, once, instead
// of answering OK for pages that were dropped. Without that, a sync on another handle would make
// an answer look durable after the kernel had dropped its pages.
TEST_F(FaultVfsTest, AFailedSyncIsReportedToTheFilesOtherHandlesOnce) {
  EXPECT_EQ(InChild([&] {
        absl::StatusOr<FaultConfig> config = FaultConfig::Parse("fail=sync,at=1");
        if (!config.ok() || !InstallFaultVfs(*config).ok()) std::_Exit(1);
        sqlite3_vfs* vfs = sqlite3_vfs_find(nullptr);
        if (vfs == nullptr) std::_Exit(2);
        const int flags = SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
        std::vector<char> a_mem(vfs->szOsFile), b_mem(vfs->szOsFile), c_mem(vfs->szOsFile);
        auto* a = reinterpret_cast<sqlite3_file*>(a_mem.data());
        auto* b = reinterpret_cast<sqlite3_file*>(b_mem.data());
        auto* c = reinterpret_cast<sqlite3_file*>(c_mem.data());
        int out = 0;
        if (vfs->xOpen(vfs, path_.c_str(), a, flags, &out) != SQLITE_OK) std::_Exit(3);
        if (vfs->xOpen(vfs, path_.c_str(), b, flags, &out) != SQLITE_OK) std::_Exit(4);
        const char page[8] = "written";
        if (a->pMethods->xWrite(a, page, sizeof(page), 0) != SQLITE_OK) std::_Exit(5);
        if (a->pMethods->xSync(a, SQLITE_SYNC_NORMAL) != SQLITE_IOERR_FSYNC) std::_Exit(6);
        // Opened after the failure: not told of it.
        if (vfs->xOpen(vfs, path_.c_str(), c, flags, &out) != SQLITE_OK) std::_Exit(7);
        if (c->pMethods->xSync(c, SQLITE_SYNC_NORMAL) != SQLITE_OK) std::_Exit(8);
        // Open at the failure: told once.
        if (b->pMethods->xSync(b, SQLITE_SYNC_NORMAL) != SQLITE_IOERR_FSYNC) std::_Exit(9);
        if (b->pMethods->xSync(b, SQLITE_SYNC_NORMAL) != SQLITE_OK) std::_Exit(10);
        std::_Exit(0);
      }),
      0);
}

TEST_F(FaultVfsTest, ADiskFullRefusesGrowth) {
  EXPECT_EQ(InChild([&] {
        absl::StatusOr<FaultConfig> config = FaultConfig::Parse("full_after_bytes=65536");
        if (!config.ok() || !InstallFaultVfs(*config).ok()) std::_Exit(1);
        sqlite3* db = OpenWal(path_);
        Exec(db, "PRAGMA synchronous=FULL");
        Exec(db, "CREATE TABLE t(v TEXT)");
        const std::string big(4000, 'x');
        for (int i = 0; i < 100; ++i) {
          const std::string sql = "INSERT INTO t VALUES ('" + big + "')";
          const int rc = Exec(db, sql.c_str());
          if (rc == SQLITE_FULL) std::_Exit(0);
          if (rc != SQLITE_OK) std::_Exit(2);
        }
        std::_Exit(3);
      }),
      0);
  const std::string rows = Rows(path_);
  EXPECT_EQ(rows.find("error"), std::string::npos) << rows;
  EXPECT_EQ(rows.find("integrity"), std::string::npos) << rows;
}

}  // namespace
}  // namespace retryd::testing
