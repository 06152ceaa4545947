// Listing pages are bounded by bytes (issue 18, item 9): envelopes with 64 headers of 4 KiB are
// ~270 KiB each in a listing, so a default page of 50 would be ~13 MiB, over gRPC's default 4 MiB
// receive limit of every client. Against the real retryd binary and a default channel: every page
// fits the budget, holds at least one item, and the pages together list everything once, in order.
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/rpc/response_budget.h"
#include "tests/testing/requests.h"
#include "tests/testing/server_process.h"
#include "tests/testing/server_test.h"

namespace retryd::testing {
namespace {

// Envelopes of the tests: with the largest headers a report may carry (64 x 4 KiB).
constexpr int kEnvelopes = 40;
constexpr int kHeaders = 64;
constexpr int kHeaderBytes = 4096;

class ListingBudgetTest : public StoreServerTest {
 protected:
  void SetUp() override { StartServer(kFastPolicyConfig); }

  // Reports kEnvelopes first failures of `service` with heavy headers; `cls` decides where they
  // go (PERMANENT: dead letters; TRANSIENT: scheduled retries).
  void ReportHeavy(const std::string& service, v1::ErrorClass cls) {
    for (int i = 0; i < kEnvelopes; ++i) {
      v1::ReportFailureRequest req = FirstFailure(service, absl::StrCat("m-", 100 + i));
      req.mutable_envelope()->mutable_headers()->clear();
      for (int h = 0; h < kHeaders; ++h) {
        (*req.mutable_envelope()->mutable_headers())[absl::StrCat("h", h)] =
            std::string(kHeaderBytes, static_cast<char>('a' + h % 26));
      }
      req.mutable_failure()->set_error_class(cls);
      v1::ReportFailureResponse resp;
      const grpc::Status s = Report(*retry_, req, &resp);
      ASSERT_TRUE(s.ok()) << s.error_message();
    }
  }

  // Checks one page: it arrived, fits the budget, is not empty.
  template <typename Response>
  void CheckPage(const grpc::Status& s, const Response& resp, int items) {
    ASSERT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
    EXPECT_LE(static_cast<int64_t>(resp.ByteSizeLong()), kMaxListResponseBytes);
    EXPECT_GE(items, 1);
  }
};

INSTANTIATE_TEST_SUITE_P(Stores, ListingBudgetTest, testing::AllStoreKinds(), testing::StoreKindName);

TEST_P(ListingBudgetTest, ListRetriesPagesStayWithinTheBudgetAndListEverythingOnce) {
  ReportHeavy("heavy", v1::TRANSIENT);
  v1::ListRetriesRequest req;
  req.mutable_filter()->set_service("heavy");
  req.set_page_size(1000);  // The page size is not what bounds these pages.
  std::vector<std::string> ids;
  int pages = 0;
  for (; pages < 100; ++pages) {
    v1::ListRetriesResponse resp;
    grpc::Status s = admin_->ListRetries(Context().get(), req, &resp);
    ASSERT_NO_FATAL_FAILURE(CheckPage(s, resp, resp.retries_size()));
    for (const v1::Envelope& e : resp.retries()) {
      EXPECT_EQ(e.headers_size(), kHeaders);
      ids.push_back(e.message_id());
    }
    if (resp.next_page_token().empty()) break;
    req.set_page_token(resp.next_page_token());
  }
  EXPECT_GE(pages, 2) << "40 x 270 KiB must take more than one page";
  ASSERT_EQ(ids.size(), static_cast<size_t>(kEnvelopes));
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), ids.size());
}

TEST_P(ListingBudgetTest, ListDeadLettersDefaultPageStaysWithinTheBudget) {
  ReportHeavy("heavy-dead", v1::PERMANENT);
  v1::ListDeadLettersRequest req;
  req.mutable_filter()->set_service("heavy-dead");  // Default page size (50).
  std::vector<std::string> ids;
  for (int pages = 0; pages < 100; ++pages) {
    v1::ListDeadLettersResponse resp;
    grpc::Status s = admin_->ListDeadLetters(Context().get(), req, &resp);
    ASSERT_NO_FATAL_FAILURE(CheckPage(s, resp, resp.dead_letters_size()));
    for (const v1::Envelope& e : resp.dead_letters()) ids.push_back(e.message_id());
    if (resp.next_page_token().empty()) break;
    req.set_page_token(resp.next_page_token());
  }
  std::vector<std::string> want;
  for (int i = 0; i < kEnvelopes; ++i) want.push_back(absl::StrCat("m-", 100 + i));
  EXPECT_EQ(ids, want);  // Dead-lettered in this order, listed in (dead_lettered_at, id) order.
}

// 600 groups whose sample and normalised messages are 4 KiB each: ~5 MiB in one page of 1000.
TEST_P(ListingBudgetTest, ListFailureGroupsPagesStayWithinTheBudget) {
  constexpr int kGroups = 600;
  for (int i = 0; i < kGroups; ++i) {
    v1::ReportFailureRequest req = FirstFailure("groups", absl::StrCat("g-", i));
    // Letters only, so that the normaliser keeps each message distinct.
    std::string word;
    for (int n = i; word.empty() || n > 0; n /= 20) word.push_back(static_cast<char>('g' + n % 20));
    req.mutable_failure()->set_message(
        absl::StrCat("failed ", word, " ", std::string(4000, 'z')));
    req.mutable_failure()->set_error_class(v1::PERMANENT);
    v1::ReportFailureResponse resp;
    ASSERT_TRUE(Report(*retry_, req, &resp).ok());
  }
  v1::ListFailureGroupsRequest req;
  req.set_page_size(1000);
  std::set<std::string> fingerprints;
  int pages = 0;
  for (; pages < 100; ++pages) {
    v1::ListFailureGroupsResponse resp;
    grpc::Status s = admin_->ListFailureGroups(Context().get(), req, &resp);
    ASSERT_NO_FATAL_FAILURE(CheckPage(s, resp, resp.groups_size()));
    for (const v1::FailureGroup& g : resp.groups()) {
      EXPECT_TRUE(fingerprints.insert(g.fingerprint()).second) << "listed twice";
    }
    if (resp.next_page_token().empty()) break;
    req.set_page_token(resp.next_page_token());
  }
  EXPECT_GE(pages, 1);
  EXPECT_EQ(fingerprints.size(), static_cast<size_t>(kGroups));
}

}  // namespace
}  // namespace retryd::testing
