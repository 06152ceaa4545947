// GatedSyncStore: a ForwardingStore whose SyncLog waits while the test holds it, so that the
// engine's answers (given only once the log is synced) wait too and its requests stay pending;
// it also counts the operations the writer applied (BeginOp), so a test can await the writer
// having taken a request without sleeping.
#ifndef RETRYD_TESTS_TESTING_GATED_SYNC_STORE_H_
#define RETRYD_TESTS_TESTING_GATED_SYNC_STORE_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "tests/testing/forwarding_store.h"

namespace retryd::testing {

class GatedSyncStore final : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;

  absl::Status SyncLog() override {
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](bool* held) { return !*held; }, &held_));
    }
    return ForwardingStore::SyncLog();
  }
  absl::Status BeginOp() override {
    {
      absl::MutexLock lock(&mu_);
      ++ops_;
    }
    return ForwardingStore::BeginOp();
  }

  void Hold() {
    absl::MutexLock lock(&mu_);
    held_ = true;
  }
  void Release() {
    absl::MutexLock lock(&mu_);
    held_ = false;
  }
  // Operations the writer began so far.
  int64_t ops() const {
    absl::MutexLock lock(&mu_);
    return ops_;
  }
  // Waits until the writer began `n` operations in all; false when `timeout` passed first.
  bool WaitForOps(int64_t n, absl::Duration timeout) const {
    absl::MutexLock lock(&mu_);
    struct Want {
      const int64_t* ops;
      int64_t n;
    } want{&ops_, n};
    return mu_.AwaitWithTimeout(
        absl::Condition(+[](Want* w) { return *w->ops >= w->n; }, &want), timeout);
  }

 private:
  mutable absl::Mutex mu_;
  bool held_ ABSL_GUARDED_BY(mu_) = false;
  int64_t ops_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace retryd::testing

#endif  // RETRYD_TESTS_TESTING_GATED_SYNC_STORE_H_
