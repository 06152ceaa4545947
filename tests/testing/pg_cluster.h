// PgCluster: a real PostgreSQL server for tests, run by scripts/pg-cluster.sh (a copy of an
// initdb'd template on a free 127.0.0.1 port; see that script).
//
// Shared() is the cluster every test of a run uses: the one ctest's fixture test started
// (pg_cluster_start in tests/CMakeLists.txt, in the build's tests/pg-test-cluster), or,
// when a test binary runs by itself, one started on first use and stopped when the process
// exits. Each test takes a database of its own (CreateDatabase). A test that kills or restarts
// the server starts a private cluster with Start().
//
// PostgreSQL tests must not pass silently where PostgreSQL is missing: they fail, unless
// RETRYD_SKIP_POSTGRES_TESTS=1 is set (the Dockerfile's builder, which has no server), where
// SkipPostgres() says to GTEST_SKIP.
#ifndef RETRYD_TESTS_TESTING_PG_CLUSTER_H_
#define RETRYD_TESTS_TESTING_PG_CLUSTER_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace retryd::testing {

class PgCluster {
 public:
  // Starts a private cluster in a new temporary directory.
  static absl::StatusOr<std::unique_ptr<PgCluster>> Start();
  // The run's shared cluster (see above).
  static absl::StatusOr<PgCluster*> Shared();
  ~PgCluster();

  // DSN of the `postgres` database (superuser, trust authentication).
  const std::string& dsn() const { return dsn_; }
  // A fresh, empty database for one test; returns its DSN. It is a schema of its own (unique on
  // this machine) in the cluster's `postgres` database, which the DSN's search_path selects:
  // CREATE DATABASE takes 0.5-1.3 s on this machine, CREATE SCHEMA a few milliseconds, and a
  // store sees nothing but its schema either way.
  absl::StatusOr<std::string> CreateDatabase();
  // The postmaster's pid (to kill it).
  int postmaster_pid() const;
  // kill -9 of the postmaster (a private cluster only).
  void Kill();
  // Starts the cluster again on its data and port (after Kill).
  absl::Status Restart();

 private:
  PgCluster(std::string dir, std::string dsn, bool owned)
      : dir_(std::move(dir)), dsn_(std::move(dsn)), owned_(owned) {}
  std::string dir_;
  std::string dsn_;
  bool owned_;
};

// True when RETRYD_SKIP_POSTGRES_TESTS=1: PostgreSQL tests GTEST_SKIP.
bool SkipPostgres();

// The path of scripts/pg-cluster.sh in the source tree.
std::string PgClusterScript();

}  // namespace retryd::testing

#endif  // RETRYD_TESTS_TESTING_PG_CLUSTER_H_
