#include "tests/testing/replica_set.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace retryd::testing {

absl::StatusOr<std::unique_ptr<ReplicaSet>> ReplicaSet::Start(int n, const std::string& dsn,
                                                              const std::string& config_json,
                                                              std::vector<std::string> extra_args) {
  std::unique_ptr<ReplicaSet> set(new ReplicaSet());
  std::vector<std::string> args = {"--store", "postgres", "--postgres-dsn", dsn};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  for (int i = 0; i < n; ++i) {
    set->dirs_.push_back(MakeTempDir());
    absl::StatusOr<std::unique_ptr<ServerProcess>> p =
        ServerProcess::Start(set->dirs_.back(), config_json, args);
    if (!p.ok()) {
      return absl::Status(p.status().code(),
                          absl::StrCat("replica ", i, ": ", p.status().message()));
    }
    set->replicas_.push_back(*std::move(p));
  }
  return set;
}

ReplicaSet::~ReplicaSet() {
  for (auto& r : replicas_) {
    if (r->running()) r->Kill();
  }
  replicas_.clear();
  for (const std::string& d : dirs_) RemoveTree(d);
}

std::vector<int> ReplicaSet::Running() const {
  std::vector<int> out;
  for (int i = 0; i < size(); ++i) {
    if (replicas_[i]->running()) out.push_back(i);
  }
  return out;
}

std::string ReplicaSet::Logs() const {
  std::string out;
  for (int i = 0; i < size(); ++i) {
    for (absl::string_view line : absl::StrSplit(replicas_[i]->log(), '\n', absl::SkipEmpty())) {
      absl::StrAppend(&out, "[", i, "] ", line, "\n");
    }
  }
  return out;
}

}  // namespace retryd::testing
