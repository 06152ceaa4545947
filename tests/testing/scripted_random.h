// ScriptedRandom: a Random that returns a scripted sequence of Uniform01() values, so tests of
// jittered delays can assert exact results.
#ifndef RETRYD_TESTS_TESTING_SCRIPTED_RANDOM_H_
#define RETRYD_TESTS_TESTING_SCRIPTED_RANDOM_H_

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "server/util/random.h"

namespace retryd {
namespace testing {

// Uniform01() returns the scripted values in order (each must be in [0, 1)); asking for more
// than were scripted fails the current test and returns 0. Next64() returns 0, 1, 2, ...
class ScriptedRandom final : public Random {
 public:
  ScriptedRandom(std::initializer_list<double> values) : values_(values) {}

  double Uniform01() override {
    absl::MutexLock lock(&mu_);
    if (next_ >= values_.size()) {
      ADD_FAILURE() << "ScriptedRandom: only " << values_.size() << " values were scripted";
      return 0.0;
    }
    return values_[next_++];
  }
  uint64_t Next64() override {
    absl::MutexLock lock(&mu_);
    return counter_++;
  }

  // How many Uniform01() values have been taken.
  size_t used() const {
    absl::MutexLock lock(&mu_);
    return next_;
  }

 private:
  mutable absl::Mutex mu_;
  const std::vector<double> values_;
  size_t next_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t counter_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace testing
}  // namespace retryd

#endif  // RETRYD_TESTS_TESTING_SCRIPTED_RANDOM_H_
