// ReplicaSet: N real retryd processes (ServerProcess, $RETRYD_BIN) on one PostgreSQL database,
// each started with `--store postgres --postgres-dsn DSN` on free 127.0.0.1 ports and a data dir
// of its own, for the multi-replica tests. Kill(i) is kill -9 of one replica; the others go on.
// Destroying the set kills every replica still running.
#ifndef RETRYD_TESTS_TESTING_REPLICA_SET_H_
#define RETRYD_TESTS_TESTING_REPLICA_SET_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tests/testing/server_process.h"

namespace retryd::testing {

class ReplicaSet {
 public:
  // Starts `n` replicas on `dsn` (one at a time: each waits until it serves), each with
  // `config_json` (may be empty) and `extra_args`.
  static absl::StatusOr<std::unique_ptr<ReplicaSet>> Start(int n, const std::string& dsn,
                                                           const std::string& config_json = "",
                                                           std::vector<std::string> extra_args = {});
  ~ReplicaSet();

  int size() const { return static_cast<int>(replicas_.size()); }
  ServerProcess& replica(int i) { return *replicas_[i]; }
  // kill -9 of replica `i`.
  void Kill(int i) { replicas_[i]->Kill(); }
  // The indexes of the replicas still running.
  std::vector<int> Running() const;
  // Every replica's log so far, each line prefixed with "[i] " (for failure messages).
  std::string Logs() const;

 private:
  ReplicaSet() = default;
  std::vector<std::string> dirs_;
  std::vector<std::unique_ptr<ServerProcess>> replicas_;
};

}  // namespace retryd::testing

#endif  // RETRYD_TESTS_TESTING_REPLICA_SET_H_
