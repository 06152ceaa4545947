#include "server/core/backoff.h"

#include <algorithm>
#include <cmath>

namespace retryd {
namespace {

absl::Duration Clamp(absl::Duration d, absl::Duration max) {
  return std::max(absl::ZeroDuration(), std::min(d, max));
}

}  // namespace

absl::Duration BaseDelay(const BackoffSpec& spec, int attempt) {
  const absl::Duration max = std::max(absl::ZeroDuration(), spec.max);
  const absl::Duration initial = Clamp(spec.initial, max);
  const int exponent = std::max(attempt, 1) - 1;
  const double factor = std::pow(spec.multiplier, exponent);
  // Compare in seconds first so huge factors (or inf/NaN from a bad spec) never reach the
  // Duration arithmetic.
  const double seconds = absl::ToDoubleSeconds(initial) * factor;
  if (!(seconds < absl::ToDoubleSeconds(max))) return std::isnan(seconds) ? initial : max;
  return Clamp(initial * factor, max);
}

absl::Duration NextDelay(const BackoffSpec& spec, int attempt, absl::Duration previous_delay,
                         Random& rng) {
  const absl::Duration max = std::max(absl::ZeroDuration(), spec.max);
  const absl::Duration base = BaseDelay(spec, attempt);
  switch (spec.jitter) {
    case JitterKind::kNone:
      return base;
    case JitterKind::kFull:
      return Clamp(base * rng.Uniform01(), max);
    case JitterKind::kEqual: {
      const absl::Duration half = base / 2;
      return Clamp(half + half * rng.Uniform01(), max);
    }
    case JitterKind::kDecorrelated: {
      const absl::Duration initial = Clamp(spec.initial, max);
      const absl::Duration prev = std::max(initial, previous_delay);
      // A window reaching far past any sane delay ends at max whatever u is; this also keeps
      // inf/NaN multipliers out of the Duration arithmetic.
      if (!(absl::ToDoubleSeconds(prev) * spec.multiplier < 1e12)) return max;
      const absl::Duration hi = std::max(initial, prev * spec.multiplier);
      return Clamp(initial + (hi - initial) * rng.Uniform01(), max);
    }
    case JitterKind::kProportional: {
      const double r = spec.jitter_ratio;
      return Clamp(base * (1.0 + rng.UniformIn(-r, r)), max);
    }
  }
  return base;  // Unknown kind: no jitter.
}

}  // namespace retryd
