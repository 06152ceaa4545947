// Random sources for jitter and tokens. Decisions take a Random&, so tests use a seeded one and
// get exact delays.
#ifndef RETRYD_SERVER_UTIL_RANDOM_H_
#define RETRYD_SERVER_UTIL_RANDOM_H_

#include <cstdint>
#include <random>
#include <string>

#include "absl/synchronization/mutex.h"

namespace retryd {

// Thread-safe.
class Random {
 public:
  virtual ~Random() = default;
  // Uniform in [0, 1).
  virtual double Uniform01() = 0;
  // 64 uniformly random bits.
  virtual uint64_t Next64() = 0;

  // Uniform in [lo, hi]; returns lo when hi <= lo.
  double UniformIn(double lo, double hi) { return hi <= lo ? lo : lo + (hi - lo) * Uniform01(); }
};

// A Mersenne Twister behind a mutex. Seeded from std::random_device unless a seed is given
// (tests pass one).
class MtRandom final : public Random {
 public:
  MtRandom() : engine_(std::random_device{}()) {}
  explicit MtRandom(uint64_t seed) : engine_(seed) {}

  double Uniform01() override {
    absl::MutexLock lock(&mu_);
    return std::uniform_real_distribution<double>(0.0, 1.0)(engine_);
  }
  uint64_t Next64() override {
    absl::MutexLock lock(&mu_);
    return engine_();
  }

 private:
  absl::Mutex mu_;
  std::mt19937_64 engine_ ABSL_GUARDED_BY(mu_);
};

}  // namespace retryd

#endif  // RETRYD_SERVER_UTIL_RANDOM_H_
