// IntegrityCheck: SQLite's own check of a database file, with the real VFS, while no server runs
// on it (for tests that restart retryd after a fault).
#ifndef RETRYD_TESTS_TESTING_INTEGRITY_CHECK_H_
#define RETRYD_TESTS_TESTING_INTEGRITY_CHECK_H_

#include <sqlite3.h>

#include <string>

namespace retryd::testing {

// "ok" for a sound file; otherwise what PRAGMA integrity_check (or opening) reported.
inline std::string IntegrityCheck(const std::string& db_path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READWRITE, "unix") != SQLITE_OK) {
    const std::string msg = db != nullptr ? sqlite3_errmsg(db) : "cannot open";
    sqlite3_close(db);
    return msg;
  }
  std::string result;
  sqlite3_exec(
      db, "PRAGMA integrity_check",
      +[](void* out, int n, char** values, char**) {
        for (int i = 0; i < n; ++i) {
          static_cast<std::string*>(out)->append(values[i] != nullptr ? values[i] : "NULL");
        }
        return 0;
      },
      &result, nullptr);
  sqlite3_close(db);
  return result;
}

}  // namespace retryd::testing

#endif  // RETRYD_TESTS_TESTING_INTEGRITY_CHECK_H_
