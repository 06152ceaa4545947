// The AdminService additions the web console uses (issue 21), on the real retryd binary:
// GetDeadLetterHistogram (buckets against the dead letters' own dead_lettered_at, defaults, only
// dead letters still in the queue), ListAuditEvents' filters (with stable paging), ListServices'
// paging and its circuit override and oldest dead letter time; every bad input named and
// changing nothing.
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/util/time_conversion.h"
#include "tests/testing/requests.h"
#include "tests/testing/server_process.h"
#include "tests/testing/server_test.h"

namespace retryd::testing {
namespace {

using ::testing::HasSubstr;

class ConsoleApiTest : public ServerTest {
 protected:
  void SetUp() override { StartServer(kFastPolicyConfig); }

  // A PERMANENT first failure: dead-lettered at once.
  void Dead(const std::string& service, const std::string& id) {
    v1::ReportFailureRequest req = FirstFailure(service, id, "BAD_SCHEMA");
    req.mutable_failure()->set_error_class(v1::PERMANENT);
    v1::ReportFailureResponse resp;
    ASSERT_TRUE(Report(*retry_, req, &resp).ok());
  }
  // A TRANSIENT first failure: scheduled, not dead.
  void Scheduled(const std::string& service, const std::string& id) {
    v1::ReportFailureResponse resp;
    ASSERT_TRUE(Report(*retry_, FirstFailure(service, id), &resp).ok());
  }

  std::vector<v1::Envelope> AllDead() {
    v1::ListDeadLettersRequest req;
    req.set_page_size(1000);
    v1::ListDeadLettersResponse resp;
    grpc::Status s = admin_->ListDeadLetters(Context().get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return {resp.dead_letters().begin(), resp.dead_letters().end()};
  }

  grpc::Status Histogram(const v1::GetDeadLetterHistogramRequest& req,
                         v1::GetDeadLetterHistogramResponse* resp) {
    return admin_->GetDeadLetterHistogram(Context().get(), req, resp);
  }

  // The histogram's series as service -> counts.
  static std::map<std::string, std::vector<int64_t>> Series(
      const v1::GetDeadLetterHistogramResponse& resp) {
    std::map<std::string, std::vector<int64_t>> out;
    for (const auto& s : resp.series()) {
      out[s.service()] = {s.counts().begin(), s.counts().end()};
      int64_t sum = 0;
      for (int64_t n : s.counts()) sum += n;
      EXPECT_EQ(sum, s.total()) << s.service();
    }
    return out;
  }

  // Checks that `req` is INVALID_ARGUMENT naming `field`.
  void ExpectHistogramRefused(const v1::GetDeadLetterHistogramRequest& req,
                              const std::string& field) {
    v1::GetDeadLetterHistogramResponse resp;
    grpc::Status s = Histogram(req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << req.ShortDebugString();
    EXPECT_THAT(s.error_message(), HasSubstr(field + ":")) << req.ShortDebugString();
  }
};

// Dead letters reported a few hundred milliseconds apart land in the 1-second buckets their own
// dead_lettered_at (as ListDeadLetters shows it) says, per service; scheduled envelopes are not
// counted.
TEST_F(ConsoleApiTest, HistogramBucketsMatchTheDeadLettersTimes) {
  for (int i = 0; i < 6; ++i) {
    Dead("billing", absl::StrCat("b", i));
    if (i % 2 == 0) Dead("inventory", absl::StrCat("i", i));
    Scheduled("billing", absl::StrCat("s", i));
    absl::SleepFor(absl::Milliseconds(350));
  }
  const std::vector<v1::Envelope> dead = AllDead();
  ASSERT_EQ(dead.size(), 9u);
  absl::Time first = absl::InfiniteFuture();
  absl::Time last = absl::InfinitePast();
  for (const auto& e : dead) {
    first = std::min(first, ToTime(e.dead_lettered_at()));
    last = std::max(last, ToTime(e.dead_lettered_at()));
  }
  const absl::Time since = absl::FromUnixSeconds(absl::ToUnixSeconds(first) - 2);
  const absl::Time until = absl::FromUnixSeconds(absl::ToUnixSeconds(last) + 3);
  const int64_t buckets = absl::ToInt64Seconds(until - since);
  std::map<std::string, std::vector<int64_t>> want;
  for (const auto& e : dead) {
    auto& counts = want[e.service()];
    counts.resize(buckets, 0);
    ++counts[(ToTime(e.dead_lettered_at()) - since) / absl::Seconds(1)];
  }
  v1::GetDeadLetterHistogramRequest req;
  TimeToProto(since, req.mutable_since());
  TimeToProto(until, req.mutable_until());
  req.mutable_bucket_width()->set_seconds(1);
  v1::GetDeadLetterHistogramResponse resp;
  ASSERT_TRUE(Histogram(req, &resp).ok());
  ASSERT_EQ(resp.bucket_starts_size(), buckets);
  for (int i = 0; i < buckets; ++i) {
    EXPECT_EQ(ToTime(resp.bucket_starts(i)), since + absl::Seconds(i));
  }
  EXPECT_EQ(ToTime(resp.since()), since);
  EXPECT_EQ(ToTime(resp.until()), until);
  EXPECT_EQ(resp.bucket_width().seconds(), 1);
  EXPECT_EQ(Series(resp), want);

  // One service: only its series.
  req.set_service("inventory");
  resp.Clear();
  ASSERT_TRUE(Histogram(req, &resp).ok());
  EXPECT_EQ(Series(resp), (std::map<std::string, std::vector<int64_t>>{
                              {"inventory", want["inventory"]}}));
  // A service without dead letters still has its (all-zero) series.
  req.set_service("nobody");
  resp.Clear();
  ASSERT_TRUE(Histogram(req, &resp).ok());
  EXPECT_EQ(Series(resp), (std::map<std::string, std::vector<int64_t>>{
                              {"nobody", std::vector<int64_t>(buckets, 0)}}));
}

// Without a range: the last 24 hours up to now, in 15-minute buckets (96); purged dead letters
// leave the histogram (it counts what the queue holds).
TEST_F(ConsoleApiTest, HistogramDefaultsAndOnlyCountsDeadLettersStillQueued) {
  Dead("billing", "b1");
  Dead("billing", "b2");
  Dead("inventory", "i1");
  const absl::Time before = absl::Now();
  v1::GetDeadLetterHistogramResponse resp;
  ASSERT_TRUE(Histogram(v1::GetDeadLetterHistogramRequest(), &resp).ok());
  const absl::Time after = absl::Now();
  EXPECT_EQ(resp.bucket_width().seconds(), 900);
  EXPECT_EQ(resp.bucket_starts_size(), 96);
  EXPECT_GE(ToTime(resp.until()), before - absl::Milliseconds(1));
  EXPECT_LE(ToTime(resp.until()), after);
  EXPECT_EQ(ToTime(resp.until()) - ToTime(resp.since()), absl::Hours(24));
  auto series = Series(resp);
  ASSERT_EQ(series.size(), 2u);
  EXPECT_EQ(resp.series(0).service(), "billing");
  EXPECT_EQ(resp.series(0).total(), 2);
  EXPECT_EQ(resp.series(1).total(), 1);
  EXPECT_EQ(series["billing"].back(), 2);  // Just now: the last bucket.

  v1::PurgeDeadLettersRequest purge;
  purge.mutable_filter()->set_service("billing");
  v1::PurgeDeadLettersResponse purged;
  ASSERT_TRUE(admin_->PurgeDeadLetters(Context().get(), purge, &purged).ok());
  ASSERT_EQ(purged.count(), 2);
  resp.Clear();
  ASSERT_TRUE(Histogram(v1::GetDeadLetterHistogramRequest(), &resp).ok());
  ASSERT_EQ(resp.series_size(), 1);
  EXPECT_EQ(resp.series(0).service(), "inventory");
}

TEST_F(ConsoleApiTest, HistogramBadInputIsNamedAndChangesNothing) {
  Dead("billing", "b1");
  const size_t dead_before = AllDead().size();
  v1::GetDeadLetterHistogramRequest req;
  req.set_service("Not A Service!");
  ExpectHistogramRefused(req, "service");
  req.Clear();
  req.mutable_since()->set_seconds(2000000000);
  req.mutable_until()->set_seconds(2000000000);
  ExpectHistogramRefused(req, "since");
  req.Clear();
  req.mutable_since()->set_seconds(4000000000);  // After now, no until.
  ExpectHistogramRefused(req, "since");
  req.Clear();
  req.mutable_until()->set_seconds(-5);
  ExpectHistogramRefused(req, "until");
  req.Clear();
  req.mutable_since()->set_nanos(-1);
  ExpectHistogramRefused(req, "since");
  req.Clear();
  req.mutable_bucket_width()->set_nanos(500000000);
  ExpectHistogramRefused(req, "bucket_width");
  req.Clear();
  req.mutable_bucket_width()->set_seconds(-60);
  ExpectHistogramRefused(req, "bucket_width");
  req.Clear();
  req.mutable_bucket_width()->set_seconds(60);  // 1440 buckets of the default 24 h.
  ExpectHistogramRefused(req, "bucket_width");
  {
    v1::GetDeadLetterHistogramResponse resp;
    grpc::Status s = Histogram(req, &resp);
    EXPECT_THAT(s.error_message(), HasSubstr("at most 500"));
  }
  // 500 buckets exactly is allowed.
  req.Clear();
  req.mutable_since()->set_seconds(1700000000);
  req.mutable_until()->set_seconds(1700000000 + 500 * 60);
  req.mutable_bucket_width()->set_seconds(60);
  v1::GetDeadLetterHistogramResponse resp;
  ASSERT_TRUE(Histogram(req, &resp).ok());
  EXPECT_EQ(resp.bucket_starts_size(), 500);
  EXPECT_EQ(AllDead().size(), dead_before);
}

// Every filter of ListAuditEvents, alone and together, with stable paging; a token is bound to
// its filters.
TEST_F(ConsoleApiTest, AuditEventsFilterAndPage) {
  Dead("billing", "b1");
  Dead("inventory", "i1");
  auto override_circuit = [&](const std::string& service, v1::CircuitOverride mode) {
    v1::SetCircuitOverrideRequest req;
    req.set_service(service);
    req.set_override(mode);
    v1::SetCircuitOverrideResponse resp;
    ASSERT_TRUE(admin_->SetCircuitOverride(Context().get(), req, &resp).ok());
  };
  override_circuit("billing", v1::FORCE_OPEN);
  override_circuit("inventory", v1::FORCE_OPEN);
  absl::SleepFor(absl::Milliseconds(20));
  const absl::Time middle = absl::Now();
  absl::SleepFor(absl::Milliseconds(20));
  override_circuit("billing", v1::AUTO);
  v1::PurgeDeadLettersRequest purge;
  purge.mutable_filter()->set_service("billing");
  purge.set_dry_run(true);
  v1::PurgeDeadLettersResponse purged;
  ASSERT_TRUE(admin_->PurgeDeadLetters(Context().get(), purge, &purged).ok());

  auto list = [&](v1::ListAuditEventsRequest req, int page_size) {
    std::vector<std::string> out;
    req.set_page_size(page_size);
    for (int pages = 0; pages < 50; ++pages) {
      v1::ListAuditEventsResponse resp;
      grpc::Status s = admin_->ListAuditEvents(Context().get(), req, &resp);
      EXPECT_TRUE(s.ok()) << s.error_message();
      for (const auto& e : resp.events()) {
        out.push_back(absl::StrCat(e.method(), " ", e.target(), " ", e.result_code()));
      }
      if (!s.ok() || resp.next_page_token().empty()) break;
      req.set_page_token(resp.next_page_token());
    }
    return out;
  };
  using V = std::vector<std::string>;
  v1::ListAuditEventsRequest req;
  EXPECT_EQ(list(req, 0), (V{"PurgeDeadLetters billing OK", "SetCircuitOverride billing OK",
                             "SetCircuitOverride inventory OK",
                             "SetCircuitOverride billing OK"}));
  req.add_methods("SetCircuitOverride");
  EXPECT_EQ(list(req, 1), (V{"SetCircuitOverride billing OK", "SetCircuitOverride inventory OK",
                             "SetCircuitOverride billing OK"}));
  req.add_targets("billing");
  EXPECT_EQ(list(req, 1), (V{"SetCircuitOverride billing OK", "SetCircuitOverride billing OK"}));
  TimeToProto(middle, req.mutable_since());
  EXPECT_EQ(list(req, 1), (V{"SetCircuitOverride billing OK"}));
  req.Clear();
  TimeToProto(middle, req.mutable_until());
  EXPECT_EQ(list(req, 1), (V{"SetCircuitOverride inventory OK", "SetCircuitOverride billing OK"}));
  req.Clear();
  req.add_methods("PurgeDeadLetters");
  req.add_methods("StartReplay");
  EXPECT_EQ(list(req, 2), (V{"PurgeDeadLetters billing OK"}));
  req.Clear();
  req.add_result_codes("INVALID_ARGUMENT");
  EXPECT_EQ(list(req, 2), V{});
  req.Clear();
  req.add_identities("anonymous");
  EXPECT_EQ(list(req, 3).size(), 4u);
  req.Clear();
  req.add_identities("someone-else");
  EXPECT_EQ(list(req, 3), V{});

  // A token of one filter used with another.
  v1::ListAuditEventsRequest first;
  first.add_methods("SetCircuitOverride");
  first.set_page_size(1);
  v1::ListAuditEventsResponse page;
  ASSERT_TRUE(admin_->ListAuditEvents(Context().get(), first, &page).ok());
  ASSERT_FALSE(page.next_page_token().empty());
  v1::ListAuditEventsRequest other;
  other.add_methods("PurgeDeadLetters");
  other.set_page_token(page.next_page_token());
  v1::ListAuditEventsResponse unused;
  grpc::Status s = admin_->ListAuditEvents(Context().get(), other, &unused);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("page_token:"));
}

TEST_F(ConsoleApiTest, AuditFilterBadInputIsNamed) {
  auto refused = [&](const v1::ListAuditEventsRequest& req, const std::string& field) {
    v1::ListAuditEventsResponse resp;
    grpc::Status s = admin_->ListAuditEvents(Context().get(), req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << req.ShortDebugString();
    EXPECT_THAT(s.error_message(), HasSubstr(field + ":")) << req.ShortDebugString();
  };
  v1::ListAuditEventsRequest req;
  req.add_methods("");
  refused(req, "methods[0]");
  req.Clear();
  req.add_targets(std::string(300, 't'));
  refused(req, "targets[0]");
  req.Clear();
  for (int i = 0; i < 101; ++i) req.add_identities("x");
  refused(req, "identities");
  req.Clear();
  req.mutable_since()->set_seconds(20);
  req.mutable_until()->set_seconds(10);
  refused(req, "until");
  req.Clear();
  req.mutable_since()->set_nanos(2000000000);
  refused(req, "since");
  req.Clear();
  req.set_page_size(-1);
  refused(req, "page_size");
}

// ListServices pages by name; without a page size it answers every service as before; each
// entry carries the circuit override and the oldest dead letter's time.
TEST_F(ConsoleApiTest, ServicesPageAndCarryTheOverview) {
  const std::vector<std::string> names = {"alpha", "bravo", "charlie", "delta", "echo"};
  for (const std::string& n : names) Scheduled(n, "m1");
  Dead("charlie", "d1");
  absl::SleepFor(absl::Milliseconds(5));
  Dead("charlie", "d2");
  v1::SetCircuitOverrideRequest force;
  force.set_service("delta");
  force.set_override(v1::FORCE_OPEN);
  v1::SetCircuitOverrideResponse forced;
  ASSERT_TRUE(admin_->SetCircuitOverride(Context().get(), force, &forced).ok());

  v1::ListServicesResponse whole;
  ASSERT_TRUE(admin_->ListServices(Context().get(), v1::ListServicesRequest(), &whole).ok());
  std::vector<std::string> all;
  for (const auto& s : whole.services()) all.push_back(s.service());
  EXPECT_EQ(all, names);
  EXPECT_TRUE(whole.next_page_token().empty());

  std::vector<std::string> paged;
  v1::ListServicesRequest req;
  req.set_page_size(2);
  int pages = 0;
  for (; pages < 10; ++pages) {
    v1::ListServicesResponse resp;
    grpc::Status s = admin_->ListServices(Context().get(), req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_LE(resp.services_size(), 2);
    for (const auto& summary : resp.services()) paged.push_back(summary.service());
    if (resp.next_page_token().empty()) break;
    req.set_page_token(resp.next_page_token());
  }
  EXPECT_EQ(pages, 2);
  EXPECT_EQ(paged, names);

  for (const auto& s : whole.services()) {
    if (s.service() == "delta") {
      EXPECT_EQ(s.circuit_override(), v1::FORCE_OPEN);
      EXPECT_EQ(s.circuit_state(), v1::OPEN);
    } else {
      EXPECT_EQ(s.circuit_override(), v1::AUTO) << s.service();
    }
    if (s.service() == "charlie") {
      EXPECT_EQ(s.dead(), 2);
      absl::Time oldest = absl::InfiniteFuture();
      for (const auto& e : AllDead()) oldest = std::min(oldest, ToTime(e.dead_lettered_at()));
      EXPECT_EQ(ToTime(s.oldest_dead_lettered_at()), oldest);
    } else {
      EXPECT_FALSE(s.has_oldest_dead_lettered_at()) << s.service();
    }
  }

  auto refused = [&](const v1::ListServicesRequest& bad, const std::string& field) {
    v1::ListServicesResponse resp;
    grpc::Status s = admin_->ListServices(Context().get(), bad, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr(field + ":"));
  };
  v1::ListServicesRequest bad;
  bad.set_page_size(-2);
  refused(bad, "page_size");
  bad.Clear();
  bad.set_page_token("bm90IGEgdG9rZW4");
  refused(bad, "page_token");
  // A token of another listing.
  v1::ListAuditEventsRequest audit;
  audit.set_page_size(1);
  v1::ListAuditEventsResponse audit_page;
  ASSERT_TRUE(admin_->ListAuditEvents(Context().get(), audit, &audit_page).ok());
  bad.set_page_token(audit_page.next_page_token());
  if (!audit_page.next_page_token().empty()) refused(bad, "page_token");
}

}  // namespace
}  // namespace retryd::testing
