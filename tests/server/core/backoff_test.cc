#include "server/core/backoff.h"

#include <algorithm>
#include <climits>
#include <cstdint>

#include "gtest/gtest.h"
#include "server/core/policy.h"
#include "server/util/random.h"
#include "tests/testing/scripted_random.h"

namespace retryd {
namespace {

using testing::ScriptedRandom;

BackoffSpec Spec(absl::Duration initial, double multiplier, absl::Duration max, JitterKind jitter,
                 double ratio = 0.2) {
  return BackoffSpec{initial, multiplier, max, jitter, ratio};
}

TEST(BackoffTest, DefaultSpecBaseDelaysAreTheDesignCadence) {
  const BackoffSpec spec = BackoffSpec::DefaultTransient();
  EXPECT_EQ(BaseDelay(spec, 1), absl::Seconds(2));
  EXPECT_EQ(BaseDelay(spec, 2), absl::Seconds(6));
  EXPECT_EQ(BaseDelay(spec, 3), absl::Seconds(18));
  EXPECT_EQ(BaseDelay(spec, 4), absl::Seconds(54));
  EXPECT_EQ(BaseDelay(spec, 5), absl::Seconds(120));  // 162 s, capped.
  EXPECT_EQ(BaseDelay(spec, 6), absl::Seconds(120));
}

struct NoneCase {
  BackoffSpec spec;
  int attempt;
  absl::Duration want;
};

TEST(BackoffTest, NoJitterGivesExactExponentialDelays) {
  const BackoffSpec def = Spec(absl::Seconds(2), 3, absl::Seconds(120), JitterKind::kNone);
  const BackoffSpec frac =
      Spec(absl::Milliseconds(100), 1.5, absl::Seconds(1), JitterKind::kNone);
  const BackoffSpec flat = Spec(absl::Seconds(5), 1, absl::Seconds(60), JitterKind::kNone);
  const BackoffSpec steep = Spec(absl::Seconds(1), 100, absl::Hours(24 * 7), JitterKind::kNone);
  const NoneCase cases[] = {
      {def, 1, absl::Seconds(2)},
      {def, 2, absl::Seconds(6)},
      {def, 3, absl::Seconds(18)},
      {def, 4, absl::Seconds(54)},
      {def, 5, absl::Seconds(120)},
      {def, 0, absl::Seconds(2)},     // Below 1 counts as 1.
      {def, -7, absl::Seconds(2)},
      {def, 1000, absl::Seconds(120)},  // Saturates, no overflow.
      {def, INT_MAX, absl::Seconds(120)},
      {frac, 1, absl::Milliseconds(100)},
      {frac, 2, absl::Milliseconds(150)},
      {frac, 3, absl::Milliseconds(225)},
      {frac, 4, absl::Microseconds(337500)},
      {frac, 7, absl::Seconds(1)},  // 1.139 s, capped.
      {flat, 1, absl::Seconds(5)},
      {flat, 50, absl::Seconds(5)},
      {steep, 3, absl::Seconds(10000)},
      {steep, 4, absl::Hours(24 * 7)},
      {steep, INT_MAX, absl::Hours(24 * 7)},
  };
  for (const NoneCase& c : cases) {
    ScriptedRandom rng({});
    EXPECT_EQ(NextDelay(c.spec, c.attempt, absl::ZeroDuration(), rng), c.want)
        << "attempt " << c.attempt << ", initial " << c.spec.initial;
    EXPECT_EQ(rng.used(), 0u);
  }
}

struct JitterCase {
  const char* name;
  BackoffSpec spec;
  int attempt;
  absl::Duration previous;
  double u;
  absl::Duration want;
};

TEST(BackoffTest, JitteredDelaysAreExactForScriptedRandomValues) {
  const absl::Duration s2 = absl::Seconds(2), s120 = absl::Seconds(120);
  const BackoffSpec full = Spec(s2, 3, s120, JitterKind::kFull);
  const BackoffSpec equal = Spec(s2, 3, s120, JitterKind::kEqual);
  const BackoffSpec decorrelated = Spec(s2, 3, s120, JitterKind::kDecorrelated);
  const BackoffSpec proportional = Spec(s2, 3, s120, JitterKind::kProportional, 0.25);
  const JitterCase cases[] = {
      {"full u=0", full, 2, absl::ZeroDuration(), 0.0, absl::ZeroDuration()},
      {"full u=.25", full, 2, absl::ZeroDuration(), 0.25, absl::Milliseconds(1500)},
      {"full u=.5 capped base", full, 9, absl::ZeroDuration(), 0.5, absl::Seconds(60)},
      {"equal u=0", equal, 3, absl::ZeroDuration(), 0.0, absl::Seconds(9)},
      {"equal u=.5", equal, 3, absl::ZeroDuration(), 0.5, absl::Milliseconds(13500)},
      {"equal u=.75", equal, 1, absl::ZeroDuration(), 0.75, absl::Milliseconds(1750)},
      // hi = max(initial, previous) × 3; result = initial + (hi − initial) × u.
      {"decorrelated no previous", decorrelated, 1, absl::ZeroDuration(), 0.5, absl::Seconds(4)},
      {"decorrelated previous < initial", decorrelated, 1, absl::Seconds(1), 0.0, s2},
      {"decorrelated previous 10s", decorrelated, 2, absl::Seconds(10), 0.25, absl::Seconds(9)},
      {"decorrelated ignores attempt", decorrelated, 40, absl::Seconds(10), 0.25, absl::Seconds(9)},
      {"decorrelated capped", decorrelated, 3, absl::Seconds(100), 0.5, s120},
      // base × (1 + (−0.25 + 0.5 × u)).
      {"proportional u=0", proportional, 1, absl::ZeroDuration(), 0.0, absl::Milliseconds(1500)},
      {"proportional u=.5", proportional, 2, absl::ZeroDuration(), 0.5, absl::Seconds(6)},
      {"proportional u=.75", proportional, 3, absl::ZeroDuration(), 0.75,
       absl::Milliseconds(20250)},
      {"proportional capped", proportional, 5, absl::ZeroDuration(), 0.75, s120},
      {"proportional below cap", proportional, 5, absl::ZeroDuration(), 0.25, absl::Seconds(105)},
  };
  for (const JitterCase& c : cases) {
    ScriptedRandom rng({c.u});
    EXPECT_EQ(NextDelay(c.spec, c.attempt, c.previous, rng), c.want) << c.name;
    EXPECT_EQ(rng.used(), 1u) << c.name;
  }
}

TEST(BackoffTest, ProportionalWithZeroRatioDrawsNothing) {
  ScriptedRandom rng({});
  const BackoffSpec spec = Spec(absl::Seconds(2), 3, absl::Seconds(120),
                                JitterKind::kProportional, 0.0);
  EXPECT_EQ(NextDelay(spec, 2, absl::ZeroDuration(), rng), absl::Seconds(6));
}

TEST(BackoffTest, DefaultSpecReplaysTheSeededSequence) {
  const BackoffSpec spec = BackoffSpec::DefaultTransient();
  for (uint64_t seed : {1u, 7u, 42u}) {
    MtRandom rng(seed);
    MtRandom replay(seed);
    for (int attempt = 1; attempt <= 6; ++attempt) {
      const absl::Duration base = BaseDelay(spec, attempt);
      const absl::Duration want =
          std::min(spec.max, base * (1.0 + replay.UniformIn(-0.2, 0.2)));
      EXPECT_EQ(NextDelay(spec, attempt, absl::ZeroDuration(), rng), want)
          << "seed " << seed << ", attempt " << attempt;
    }
  }
}

TEST(BackoffTest, JitteredDelaysStayInTheirBoundsOverManySeeds) {
  const JitterKind kinds[] = {JitterKind::kNone, JitterKind::kFull, JitterKind::kEqual,
                              JitterKind::kDecorrelated, JitterKind::kProportional};
  for (JitterKind kind : kinds) {
    const BackoffSpec spec = Spec(absl::Milliseconds(500), 2.5, absl::Seconds(90), kind, 0.3);
    for (uint64_t seed = 1; seed <= 200; ++seed) {
      MtRandom rng(seed);
      absl::Duration previous = absl::ZeroDuration();
      for (int attempt = 1; attempt <= 10; ++attempt) {
        const absl::Duration base = BaseDelay(spec, attempt);
        const absl::Duration d = NextDelay(spec, attempt, previous, rng);
        absl::Duration lo = absl::ZeroDuration(), hi = base;
        switch (kind) {
          case JitterKind::kNone:
            lo = base;
            break;
          case JitterKind::kFull:
            break;
          case JitterKind::kEqual:
            lo = base / 2;
            break;
          case JitterKind::kDecorrelated:
            lo = spec.initial;
            hi = std::min(spec.max, std::max(spec.initial, previous) * spec.multiplier);
            break;
          case JitterKind::kProportional:
            lo = base * 0.7;
            hi = std::min(spec.max, base * 1.3);
            break;
        }
        ASSERT_GE(d, lo) << "kind " << static_cast<int>(kind) << " seed " << seed;
        ASSERT_LE(d, hi) << "kind " << static_cast<int>(kind) << " seed " << seed;
        ASSERT_LE(d, spec.max);
        previous = d;
      }
    }
  }
}

TEST(BackoffTest, DegenerateSpecsStayWithinZeroAndMax) {
  ScriptedRandom rng({0.5, 0.5});
  // initial above max: capped to max.
  EXPECT_EQ(NextDelay(Spec(absl::Minutes(5), 2, absl::Minutes(1), JitterKind::kNone), 1,
                      absl::ZeroDuration(), rng),
            absl::Minutes(1));
  // Zero max: always zero.
  EXPECT_EQ(NextDelay(Spec(absl::Seconds(1), 2, absl::ZeroDuration(), JitterKind::kFull), 3,
                      absl::ZeroDuration(), rng),
            absl::ZeroDuration());
  // A huge previous delay in DECORRELATED saturates at max.
  EXPECT_EQ(NextDelay(Spec(absl::Seconds(1), 100, absl::Hours(1), JitterKind::kDecorrelated), 1,
                      absl::Hours(24 * 365 * 1000), rng),
            absl::Hours(1));
}

}  // namespace
}  // namespace retryd
