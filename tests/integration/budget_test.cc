// The retry budget on the real retryd binary: a retry storm of 10 000 first failures inside one
// window, with ratio 0.2 and a known first-attempt count from RecordOutcomes. No more than the
// budget is scheduled inside the window; the rest is deferred and paced at the budget's rate
// (DEFER) or dead-lettered with BUDGET_EXHAUSTED (DEAD_LETTER). The numbers are asserted.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/requests.h"
#include "tests/testing/server_process.h"
#include "tests/testing/server_test.h"

namespace retryd::testing {
namespace {

// Both storm services: every retry wanted exactly 1 s after its failure; budget window 60 s,
// ratio 0.2, floor 10.
constexpr char kBudgetConfig[] = R"json({
  "policies": [
    {"name": "storm-defer", "maxAttempts": 5,
     "backoff": {"initial": "1s", "multiplier": 1, "max": "1s", "jitter": "NONE"},
     "budget": {"window": "60s", "ratio": 0.2, "minRetriesPerWindow": 10,
                "whenExhausted": "DEFER"}},
    {"name": "storm-dl", "maxAttempts": 5,
     "backoff": {"initial": "1s", "multiplier": 1, "max": "1s", "jitter": "NONE"},
     "budget": {"window": "60s", "ratio": 0.2, "minRetriesPerWindow": 10,
                "whenExhausted": "DEAD_LETTER"}}
  ]
})json";

constexpr int kStorm = 10000;
constexpr int64_t kRecordedSuccesses = 5000;
constexpr int64_t kRecordedFailures = 10000;
// 0.2 × (5 000 successes + max(10 000 recorded failures, 10 000 first failures)).
constexpr int64_t kBudget = 3000;
// Deferred retries are paced one emission interval apart: 60 s / 3 000.
constexpr absl::Duration kInterval = absl::Milliseconds(20);
// ... so no 1 s sub-interval holds more than 3 000 / 60 of them.
constexpr int64_t kPerSecond = 50;

struct Outcome {
  v1::Decision decision;
  bool ok = false;
};

class BudgetTest : public ServerTest {
 protected:
  void SetUp() override { StartServer(kBudgetConfig); }

  // Records the known first attempts, then sends kStorm first failures from 32 threads.
  std::vector<Outcome> Storm(const std::string& service) {
    v1::RecordOutcomesRequest rec;
    rec.set_service(service);
    rec.set_successes(kRecordedSuccesses);
    rec.set_failures(kRecordedFailures);
    v1::RecordOutcomesResponse rec_resp;
    EXPECT_TRUE(retry_->RecordOutcomes(Context().get(), rec, &rec_resp).ok());
    std::vector<Outcome> out(kStorm);
    constexpr int kThreads = 32;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = t; i < kStorm; i += kThreads) {
          v1::ReportFailureResponse resp;
          out[i].ok =
              Report(*retry_, FirstFailure(service, absl::StrCat("s-", i)), &resp).ok();
          out[i].decision = resp.decision();
        }
      });
    }
    for (std::thread& th : threads) th.join();
    return out;
  }
};

TEST_F(BudgetTest, StormIsCappedInTheWindowAndTheRestDeferredEvenly) {
  const absl::Time start = absl::Now();
  const std::vector<Outcome> outcomes = Storm("storm-defer");
  const absl::Duration took = absl::Now() - start;
  // Everything must fall in one budget window for the numbers below to hold.
  ASSERT_LT(took, absl::Seconds(50)) << "the storm took too long to be one window";

  std::vector<absl::Time> immediate, deferred;
  std::map<int64_t, int64_t> per_second, deferred_per_second;
  for (const Outcome& o : outcomes) {
    ASSERT_TRUE(o.ok);
    ASSERT_EQ(o.decision.kind(), v1::DECISION_SCHEDULED);
    const absl::Time at = ToTime(o.decision.next_retry_at());
    const absl::Duration delay = absl::Seconds(o.decision.delay().seconds()) +
                                 absl::Nanoseconds(o.decision.delay().nanos());
    per_second[absl::ToUnixSeconds(at)]++;
    if (delay == absl::Seconds(1)) {
      immediate.push_back(at);
    } else {
      ASSERT_GT(delay, absl::Seconds(1));
      deferred.push_back(at);
      deferred_per_second[absl::ToUnixSeconds(at)]++;
    }
  }
  std::sort(deferred.begin(), deferred.end());
  // Exactly the budget ran when wanted; the rest was deferred.
  EXPECT_EQ(static_cast<int64_t>(immediate.size()), kBudget);
  EXPECT_EQ(static_cast<int64_t>(deferred.size()), kStorm - kBudget);
  // Inside the storm's window [start, start + 60 s): exactly the budget.
  int64_t in_window = 0;
  for (const auto& [second, n] : per_second) {
    if (absl::FromUnixSeconds(second) < start + absl::Seconds(60)) in_window += n;
  }
  EXPECT_EQ(in_window, kBudget);
  ASSERT_FALSE(deferred.empty());
  EXPECT_GE(deferred.front(), start + absl::Seconds(60));
  // Spread: deferred retries at least one emission interval apart, at most 50 a second, and no
  // aligned 60 s window (the budget's 60 one-second slots) runs more than the budget.
  absl::Duration min_gap = absl::InfiniteDuration();
  for (size_t i = 1; i < deferred.size(); ++i) {
    min_gap = std::min(min_gap, deferred[i] - deferred[i - 1]);
  }
  EXPECT_GE(min_gap, kInterval);
  int64_t busiest_second = 0;
  for (const auto& [second, n] : deferred_per_second) busiest_second = std::max(busiest_second, n);
  EXPECT_LE(busiest_second, kPerSecond);
  int64_t busiest_window = 0;
  const int64_t first = per_second.begin()->first, last = per_second.rbegin()->first;
  for (int64_t from = first - 59; from <= last; ++from) {
    int64_t sum = 0;
    for (auto it = per_second.lower_bound(from); it != per_second.end() && it->first < from + 60;
         ++it) {
      sum += it->second;
    }
    busiest_window = std::max(busiest_window, sum);
  }
  EXPECT_LE(busiest_window, kBudget);
  // The window slides: no 60 s from any instant (not only from whole seconds) runs more either.
  std::vector<absl::Time> all = immediate;
  all.insert(all.end(), deferred.begin(), deferred.end());
  std::sort(all.begin(), all.end());
  int64_t busiest_sliding = 0;
  for (size_t from = 0, to = 0; from < all.size(); ++from) {
    while (to < all.size() && all[to] < all[from] + absl::Seconds(60)) ++to;
    busiest_sliding = std::max<int64_t>(busiest_sliding, static_cast<int64_t>(to - from));
  }
  EXPECT_LE(busiest_sliding, kBudget);
  // 7 000 retries at 50 a second take 140 s (less one interval; 142 s at the 61-slot pace).
  const absl::Duration span = deferred.back() - deferred.front();
  EXPECT_GE(span, absl::Seconds(140) - kInterval);
  EXPECT_LE(span, absl::Seconds(150));

  const v1::ServiceSummary summary = ServiceSummaryOf(*admin_, "storm-defer");
  EXPECT_EQ(summary.scheduled(), kStorm);
  EXPECT_EQ(summary.dead(), 0);
  EXPECT_EQ(summary.budget_remaining(), 0);

  // A kill -9 and restart keeps the budget's bookings (they are the schedule): the window is
  // still full, so one more failure is deferred past the last deferred retry (its first
  // attempts are forgotten, so the floor of 10 applies).
  server_->Kill();
  ASSERT_TRUE(server_->Restart().ok());
  retry_ = server_->RetryStub();
  admin_ = server_->AdminStub();
  EXPECT_EQ(ServiceSummaryOf(*admin_, "storm-defer").budget_remaining(), 0);
  v1::ReportFailureResponse after;
  ASSERT_TRUE(Report(*retry_, FirstFailure("storm-defer", "after-restart"), &after).ok());
  ASSERT_EQ(after.decision().kind(), v1::DECISION_SCHEDULED);
  EXPECT_GT(ToTime(after.decision().next_retry_at()), deferred.back());

  std::cout << "storm DEFER: " << kStorm << " first failures in " << absl::FormatDuration(took)
            << "; scheduled in window " << in_window << ", deferred " << deferred.size()
            << ", deferred span " << absl::FormatDuration(span) << " (first "
            << absl::FormatDuration(deferred.front() - start) << " after the storm began)"
            << ", min gap " << absl::FormatDuration(min_gap) << ", busiest second "
            << busiest_second << " deferred, busiest 60 s window " << busiest_window
            << " (aligned), " << busiest_sliding << " (sliding)" << std::endl;
}

TEST_F(BudgetTest, StormInDeadLetterModeDeadLettersTheRest) {
  const absl::Time start = absl::Now();
  const std::vector<Outcome> outcomes = Storm("storm-dl");
  const absl::Duration took = absl::Now() - start;
  ASSERT_LT(took, absl::Seconds(50)) << "the storm took too long to be one window";
  int64_t scheduled = 0, exhausted = 0;
  std::string a_dead_one;
  for (int i = 0; i < kStorm; ++i) {
    const Outcome& o = outcomes[i];
    ASSERT_TRUE(o.ok);
    if (o.decision.kind() == v1::DECISION_SCHEDULED) {
      ++scheduled;
      EXPECT_EQ(o.decision.delay().seconds(), 1);
      EXPECT_EQ(o.decision.delay().nanos(), 0);
    } else {
      ASSERT_EQ(o.decision.kind(), v1::DECISION_DEAD_LETTERED);
      ASSERT_EQ(o.decision.reason(), v1::BUDGET_EXHAUSTED);
      ++exhausted;
      a_dead_one = absl::StrCat("s-", i);
    }
  }
  EXPECT_EQ(scheduled, kBudget);
  EXPECT_EQ(exhausted, kStorm - kBudget);
  const v1::ServiceSummary summary = ServiceSummaryOf(*admin_, "storm-dl");
  EXPECT_EQ(summary.scheduled(), kBudget);
  EXPECT_EQ(summary.dead(), kStorm - kBudget);
  EXPECT_EQ(summary.budget_remaining(), 0);
  v1::Envelope dead;
  ASSERT_TRUE(GetEnvelope(*admin_, "storm-dl", a_dead_one, &dead).ok());
  EXPECT_EQ(dead.state(), v1::DEAD_LETTERED);
  EXPECT_EQ(dead.dead_letter_reason(), v1::BUDGET_EXHAUSTED);
  std::cout << "storm DEAD_LETTER: " << kStorm << " first failures in "
            << absl::FormatDuration(took) << "; scheduled " << scheduled
            << ", dead-lettered BUDGET_EXHAUSTED " << exhausted << std::endl;
}

TEST_F(BudgetTest, ListServicesShowsTheBudgetLeft) {
  // The floor (10) applies with no first attempts; each retry in the window takes one.
  v1::ReportFailureResponse resp;
  ASSERT_TRUE(Report(*retry_, FirstFailure("storm-dl", "a"), &resp).ok());
  ASSERT_TRUE(Report(*retry_, FirstFailure("storm-dl", "b"), &resp).ok());
  // Two first failures are two first attempts: 0.2 × 2 < 10, so the floor holds.
  EXPECT_EQ(ServiceSummaryOf(*admin_, "storm-dl").budget_remaining(), 8);
  // A duplicate takes nothing.
  ASSERT_TRUE(Report(*retry_, FirstFailure("storm-dl", "b"), &resp).ok());
  EXPECT_TRUE(resp.decision().duplicate());
  EXPECT_EQ(ServiceSummaryOf(*admin_, "storm-dl").budget_remaining(), 8);
  // A service whose policy turns the budget off shows -1.
  constexpr char kOff[] =
      R"json({"policies": [{"name": "default", "budget": {"enabled": false}}]})json";
  const std::string dir = MakeTempDir();
  auto off = ServerProcess::Start(dir, kOff);
  ASSERT_TRUE(off.ok()) << off.status();
  auto retry = (*off)->RetryStub();
  auto admin = (*off)->AdminStub();
  ASSERT_TRUE(Report(*retry, FirstFailure("orders", "a"), &resp).ok());
  EXPECT_EQ(ServiceSummaryOf(*admin, "orders").budget_remaining(), -1);
  off->reset();
  RemoveTree(dir);
}

}  // namespace
}  // namespace retryd::testing
