// Dead-letter reads on the real retryd binary: the structured filter on ListDeadLetters and
// ListRetries against a brute-force oracle, page tokens bound to their filter, failure groups,
// stats, and bad inputs.
#include <algorithm>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/requests.h"
#include "tests/testing/server_process.h"
#include "tests/testing/server_test.h"

namespace retryd::testing {
namespace {

using ::testing::HasSubstr;

const std::vector<std::string> kServices = {"billing", "inventory"};
const std::vector<std::string> kCodes = {"UPSTREAM_TIMEOUT", "BAD_SCHEMA", "HTTP_503"};
const std::vector<std::string> kSchemas = {"v1", "v2"};

class DlqListingTest : public StoreServerTest {
 protected:
  void SetUp() override { StartServer(kFastPolicyConfig); }

  // Reports `n` random first failures: PERMANENT (dead at once), exhausted (attempt 3 of 3) or
  // scheduled (attempt 1, retried in 200 ms... so the test leases nothing and they stay).
  void ReportRandom(std::mt19937& rng, int n) {
    for (int i = 0; i < n; ++i) {
      const std::string service = kServices[rng() % kServices.size()];
      v1::ReportFailureRequest req =
          FirstFailure(service, absl::StrCat("m-", i), kCodes[rng() % kCodes.size()]);
      req.mutable_envelope()->set_schema_version(kSchemas[rng() % kSchemas.size()]);
      req.mutable_failure()->set_message(absl::StrCat("item ", rng() % 1000, " failed"));
      switch (rng() % 3) {
        case 0:
          req.mutable_failure()->set_error_class(v1::PERMANENT);
          break;
        case 1:
          req.mutable_failure()->set_error_class(v1::RECOVERABLE);
          req.mutable_envelope()->set_attempt(3);
          break;
        default:
          req.mutable_failure()->set_error_class(v1::TRANSIENT);
          break;
      }
      v1::ReportFailureResponse resp;
      ASSERT_TRUE(Report(*retry_, req, &resp).ok());
    }
  }

  // Every page of a listing; fails the test on an error.
  std::vector<v1::Envelope> ListDead(const v1::Filter& filter, int page_size) {
    std::vector<v1::Envelope> out;
    v1::ListDeadLettersRequest req;
    *req.mutable_filter() = filter;
    req.set_page_size(page_size);
    for (int pages = 0; pages < 1000; ++pages) {
      v1::ListDeadLettersResponse resp;
      grpc::Status s = admin_->ListDeadLetters(Context().get(), req, &resp);
      EXPECT_TRUE(s.ok()) << s.error_message();
      if (!s.ok()) return out;
      EXPECT_LE(resp.dead_letters_size(), page_size);
      for (const auto& e : resp.dead_letters()) out.push_back(e);
      if (resp.next_page_token().empty()) return out;
      req.set_page_token(resp.next_page_token());
    }
    ADD_FAILURE() << "listing did not end";
    return out;
  }

  std::vector<v1::Envelope> ListRetries(const v1::Filter& filter, int page_size) {
    std::vector<v1::Envelope> out;
    v1::ListRetriesRequest req;
    *req.mutable_filter() = filter;
    req.set_page_size(page_size);
    for (int pages = 0; pages < 1000; ++pages) {
      v1::ListRetriesResponse resp;
      grpc::Status s = admin_->ListRetries(Context().get(), req, &resp);
      EXPECT_TRUE(s.ok()) << s.error_message();
      if (!s.ok()) return out;
      for (const auto& e : resp.retries()) out.push_back(e);
      if (resp.next_page_token().empty()) return out;
      req.set_page_token(resp.next_page_token());
    }
    ADD_FAILURE() << "listing did not end";
    return out;
  }
};

INSTANTIATE_TEST_SUITE_P(Stores, DlqListingTest, testing::AllStoreKinds(), testing::StoreKindName);

template <typename T, typename R>
bool In(const R& values, const T& v) {
  return values.empty() || std::find(values.begin(), values.end(), v) != values.end();
}

bool Matches(const v1::Filter& f, const v1::Envelope& e, bool dead) {
  const auto& t = dead ? e.dead_lettered_at() : e.next_retry_at();
  const absl::Time at = ToTime(t);
  return (f.service().empty() || e.service() == f.service()) &&
         In(f.error_codes(), e.last_error().error_code()) &&
         In(f.error_classes(), static_cast<int>(e.last_error().error_class())) &&
         In(f.reasons(), static_cast<int>(e.dead_letter_reason())) &&
         In(f.schema_versions(), e.schema_version()) && In(f.message_ids(), e.message_id()) &&
         (!f.has_after() || at >= ToTime(f.after())) &&
         (!f.has_before() || at < ToTime(f.before()));
}

std::vector<std::string> Keys(const std::vector<v1::Envelope>& envelopes) {
  std::vector<std::string> out;
  for (const auto& e : envelopes) out.push_back(e.service() + "/" + e.message_id());
  return out;
}

TEST_P(DlqListingTest, FiltersMatchABruteForceOracleThroughTheServer) {
  std::mt19937 rng(20261124);
  ReportRandom(rng, 150);
  const std::vector<v1::Envelope> all_dead = ListDead(v1::Filter(), 1000);
  const std::vector<v1::Envelope> all_retries = ListRetries(v1::Filter(), 1000);
  ASSERT_GT(all_dead.size(), 40u);
  ASSERT_GT(all_retries.size(), 10u);
  // The full listing is in (dead_lettered_at, ...) order.
  for (size_t i = 1; i < all_dead.size(); ++i) {
    EXPECT_LE(ToTime(all_dead[i - 1].dead_lettered_at()), ToTime(all_dead[i].dead_lettered_at()));
  }
  for (int trial = 0; trial < 60; ++trial) {
    SCOPED_TRACE(absl::StrCat("trial ", trial));
    v1::Filter f;
    if (rng() % 2) f.set_service(kServices[rng() % kServices.size()]);
    if (rng() % 2) f.add_error_codes(kCodes[rng() % kCodes.size()]);
    if (rng() % 3 == 0) f.add_error_codes(kCodes[rng() % kCodes.size()]);
    if (rng() % 2) f.add_error_classes(static_cast<v1::ErrorClass>(1 + rng() % 3));
    if (rng() % 2) f.add_schema_versions(kSchemas[rng() % kSchemas.size()]);
    if (rng() % 4 == 0) f.add_message_ids(absl::StrCat("m-", rng() % 150));
    const bool dead = rng() % 3 != 0;
    const std::vector<v1::Envelope>& pool = dead ? all_dead : all_retries;
    if (dead && rng() % 2) f.add_reasons(static_cast<v1::DeadLetterReason>(1 + rng() % 2));
    if (rng() % 3 == 0) {
      const auto& e = pool[rng() % pool.size()];
      *f.mutable_after() = dead ? e.dead_lettered_at() : e.next_retry_at();
    }
    if (rng() % 3 == 0) {
      const auto& e = pool[rng() % pool.size()];
      *f.mutable_before() = dead ? e.dead_lettered_at() : e.next_retry_at();
      if (f.has_after() && ToTime(f.before()) < ToTime(f.after())) std::swap(*f.mutable_after(), *f.mutable_before());
    }
    std::vector<v1::Envelope> want;
    for (const auto& e : pool) {
      if (Matches(f, e, dead)) want.push_back(e);
    }
    const int page_size = 1 + rng() % 9;
    const std::vector<v1::Envelope> got = dead ? ListDead(f, page_size) : ListRetries(f, page_size);
    EXPECT_EQ(Keys(got), Keys(want)) << f.ShortDebugString();
  }
}

TEST_P(DlqListingTest, PageTokensAreBoundToTheirFilterAndRefuseTampering) {
  std::mt19937 rng(5);
  ReportRandom(rng, 30);
  v1::ListDeadLettersRequest req;
  req.mutable_filter()->add_error_classes(v1::PERMANENT);
  req.mutable_filter()->add_error_classes(v1::RECOVERABLE);
  req.set_page_size(2);
  v1::ListDeadLettersResponse first;
  ASSERT_TRUE(admin_->ListDeadLetters(Context().get(), req, &first).ok());
  ASSERT_FALSE(first.next_page_token().empty());
  // The same filter with its values in another order is the same filter.
  v1::ListDeadLettersRequest same = req;
  same.mutable_filter()->clear_error_classes();
  same.mutable_filter()->add_error_classes(v1::RECOVERABLE);
  same.mutable_filter()->add_error_classes(v1::PERMANENT);
  same.set_page_token(first.next_page_token());
  v1::ListDeadLettersResponse second;
  EXPECT_TRUE(admin_->ListDeadLetters(Context().get(), same, &second).ok());

  v1::ListDeadLettersRequest other = req;
  other.mutable_filter()->add_error_codes("BAD_SCHEMA");
  other.set_page_token(first.next_page_token());
  v1::ListDeadLettersResponse resp;
  grpc::Status s = admin_->ListDeadLetters(Context().get(), other, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("page_token"));

  std::string tampered = first.next_page_token();
  tampered[tampered.size() / 2] ^= 1;
  req.set_page_token(tampered);
  s = admin_->ListDeadLetters(Context().get(), req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("page_token"));

  // A dead-letter token is not a failure-group token either.
  v1::ListFailureGroupsRequest groups;
  *groups.mutable_filter() = req.filter();
  groups.set_page_token(first.next_page_token());
  v1::ListFailureGroupsResponse gresp;
  s = admin_->ListFailureGroups(Context().get(), groups, &gresp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("page_token"));
  groups.clear_page_token();
  groups.set_page_size(-3);
  s = admin_->ListFailureGroups(Context().get(), groups, &gresp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("page_size"));

  // A dead-letter token is not a retry token.
  v1::ListRetriesRequest retries;
  *retries.mutable_filter() = req.filter();
  retries.set_page_token(first.next_page_token());
  v1::ListRetriesResponse rresp;
  s = admin_->ListRetries(Context().get(), retries, &rresp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_P(DlqListingTest, BadFiltersAreRefusedNamingTheField) {
  struct Case {
    std::function<void(v1::Filter*)> set;
    std::string field;
  };
  const std::vector<Case> cases = {
      {[](v1::Filter* f) { f->set_service("Not A Service"); }, "filter.service"},
      {[](v1::Filter* f) { f->add_error_classes(static_cast<v1::ErrorClass>(7)); },
       "filter.error_classes[0]"},
      {[](v1::Filter* f) { f->add_reasons(v1::DEAD_LETTER_REASON_UNSPECIFIED); },
       "filter.reasons[0]"},
      {[](v1::Filter* f) { f->add_error_codes(""); }, "filter.error_codes[0]"},
      {[](v1::Filter* f) { f->add_fingerprints("nothex"); }, "filter.fingerprints[0]"},
      {[](v1::Filter* f) {
         for (int i = 0; i < 101; ++i) f->add_message_ids(absl::StrCat("m", i));
       },
       "filter.message_ids"},
      {[](v1::Filter* f) {
         f->mutable_after()->set_seconds(2000);
         f->mutable_before()->set_seconds(1000);
       },
       "filter.before"},
  };
  for (const Case& c : cases) {
    v1::ListDeadLettersRequest req;
    c.set(req.mutable_filter());
    v1::ListDeadLettersResponse resp;
    grpc::Status s = admin_->ListDeadLetters(Context().get(), req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.field;
    EXPECT_THAT(s.error_message(), HasSubstr(c.field + ":"));
    v1::ListFailureGroupsRequest groups;
    c.set(groups.mutable_filter());
    v1::ListFailureGroupsResponse gresp;
    s = admin_->ListFailureGroups(Context().get(), groups, &gresp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.field;
  }
  v1::ListDeadLettersRequest negative;
  negative.set_page_size(-1);
  v1::ListDeadLettersResponse resp;
  grpc::Status s = admin_->ListDeadLetters(Context().get(), negative, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("page_size"));
  v1::ListRetriesRequest retries;
  retries.mutable_filter()->add_reasons(v1::NON_RETRYABLE);
  v1::ListRetriesResponse rresp;
  s = admin_->ListRetries(Context().get(), retries, &rresp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("filter.reasons"));
  v1::GetDeadLetterStatsRequest stats;
  stats.set_service("BAD NAME");
  v1::GetDeadLetterStatsResponse sresp;
  s = admin_->GetDeadLetterStats(Context().get(), stats, &sresp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("service:"));
}

TEST_P(DlqListingTest, FailureGroupsGatherMessagesThatDifferOnlyInIds) {
  for (int i = 0; i < 6; ++i) {
    v1::ReportFailureRequest req = FirstFailure("inventory", absl::StrCat("t-", i));
    req.mutable_failure()->set_error_class(v1::PERMANENT);
    req.mutable_failure()->set_message(
        absl::StrCat("sku '", i * 7, "' not found in warehouse ", 100 + i));
    v1::ReportFailureResponse resp;
    ASSERT_TRUE(Report(*retry_, req, &resp).ok());
  }
  for (int i = 0; i < 2; ++i) {
    v1::ReportFailureRequest req = FirstFailure("inventory", absl::StrCat("u-", i), "AUTH");
    req.mutable_failure()->set_error_class(v1::PERMANENT);
    req.mutable_failure()->set_message("signature invalid");
    v1::ReportFailureResponse resp;
    ASSERT_TRUE(Report(*retry_, req, &resp).ok());
  }
  v1::ListFailureGroupsRequest req;
  req.set_page_size(1);
  v1::ListFailureGroupsResponse page1;
  ASSERT_TRUE(admin_->ListFailureGroups(Context().get(), req, &page1).ok());
  ASSERT_EQ(page1.groups_size(), 1);
  const v1::FailureGroup& big = page1.groups(0);
  EXPECT_EQ(big.count(), 6);
  EXPECT_EQ(big.service(), "inventory");
  EXPECT_EQ(big.error_class(), v1::PERMANENT);
  EXPECT_EQ(big.error_code(), "UPSTREAM_TIMEOUT");
  EXPECT_EQ(big.normalized_message(), "sku <q> not found in warehouse <id>");
  EXPECT_THAT(big.sample_message(), HasSubstr("not found in warehouse"));
  EXPECT_LE(ToTime(big.first_seen()), ToTime(big.last_seen()));
  ASSERT_FALSE(page1.next_page_token().empty());
  req.set_page_token(page1.next_page_token());
  v1::ListFailureGroupsResponse page2;
  ASSERT_TRUE(admin_->ListFailureGroups(Context().get(), req, &page2).ok());
  ASSERT_EQ(page2.groups_size(), 1);
  EXPECT_EQ(page2.groups(0).count(), 2);
  EXPECT_EQ(page2.groups(0).error_code(), "AUTH");
  EXPECT_TRUE(page2.next_page_token().empty());

  // The filter accepts the fingerprint: exactly that group.
  v1::Filter f;
  f.add_fingerprints(big.fingerprint());
  const std::vector<v1::Envelope> members = ListDead(f, 4);
  ASSERT_EQ(members.size(), 6u);
  for (const auto& e : members) EXPECT_EQ(e.message_id().substr(0, 2), "t-");
}

TEST_P(DlqListingTest, StatsCountPerServiceAndReason) {
  for (int i = 0; i < 3; ++i) {
    v1::ReportFailureRequest req = FirstFailure("billing", absl::StrCat("p-", i), "BAD_SCHEMA");
    req.mutable_failure()->set_error_class(v1::PERMANENT);
    v1::ReportFailureResponse resp;
    ASSERT_TRUE(Report(*retry_, req, &resp).ok());
  }
  v1::ReportFailureRequest req = FirstFailure("orders", "x-1", "UPSTREAM_TIMEOUT");
  req.mutable_envelope()->set_attempt(3);
  v1::ReportFailureResponse resp;
  ASSERT_TRUE(Report(*retry_, req, &resp).ok());
  ASSERT_EQ(resp.decision().reason(), v1::RETRY_EXHAUSTED);

  v1::GetDeadLetterStatsResponse stats;
  ASSERT_TRUE(
      admin_->GetDeadLetterStats(Context().get(), v1::GetDeadLetterStatsRequest(), &stats).ok());
  EXPECT_EQ(stats.total(), 4);
  EXPECT_EQ(stats.dead_lettered_last_hour(), 4);
  ASSERT_EQ(stats.counts_size(), 2);
  EXPECT_EQ(stats.counts(0).service(), "billing");
  EXPECT_EQ(stats.counts(0).reason(), v1::NON_RETRYABLE);
  EXPECT_EQ(stats.counts(0).count(), 3);
  EXPECT_EQ(stats.counts(1).service(), "orders");
  EXPECT_EQ(stats.counts(1).reason(), v1::RETRY_EXHAUSTED);
  ASSERT_GE(stats.top_error_codes_size(), 2);
  EXPECT_EQ(stats.top_error_codes(0).error_code(), "BAD_SCHEMA");
  EXPECT_EQ(stats.top_error_codes(0).count(), 3);
  EXPECT_DOUBLE_EQ(stats.non_retryable_ratio(), 0.75);
  EXPECT_DOUBLE_EQ(stats.exhausted_ratio(), 0.25);
  EXPECT_TRUE(stats.has_oldest_age());

  v1::GetDeadLetterStatsRequest one;
  one.set_service("orders");
  ASSERT_TRUE(admin_->GetDeadLetterStats(Context().get(), one, &stats).ok());
  EXPECT_EQ(stats.total(), 1);
  EXPECT_DOUBLE_EQ(stats.exhausted_ratio(), 1.0);
}

}  // namespace
}  // namespace retryd::testing
