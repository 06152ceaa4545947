// Time sources. Everything that reads the time takes a Clock& (or an absl::Time `now`), so tests
// can use a fake one; only SystemClock calls absl::Now().
#ifndef RETRYD_SERVER_UTIL_CLOCK_H_
#define RETRYD_SERVER_UTIL_CLOCK_H_

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace retryd {

// Thread-safe: implementations may be called from any thread.
class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time: what is stored and shown.
  virtual absl::Time Now() const = 0;
};

class SystemClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  // A process-wide instance.
  static SystemClock& Get() {
    static SystemClock* clock = new SystemClock;
    return *clock;
  }
};

}  // namespace retryd

#endif  // RETRYD_SERVER_UTIL_CLOCK_H_
