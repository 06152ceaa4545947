// Purge, retention and the audit log on the real retryd binary: dry runs change nothing, an
// empty filter is refused without `all`, a retried request_id does not purge twice, counts
// follow, every mutation is audited (newest first, paginated), retention trims are audited.
#include <atomic>
#include <chrono>
#include <cstdint>
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

using ::testing::HasSubstr;

constexpr char kRetentionConfig[] = R"json({
  "policies": [
    {"name": "default", "maxAttempts": 3,
     "backoff": {"initial": "0.2s", "multiplier": 2, "max": "1s", "jitter": "NONE"}},
    {"name": "ephemeral", "deadLetter": {"retention": "2s"}}
  ]
})json";

class DlqPurgeTest : public StoreServerTest {
 protected:
  void DeadLetter(const std::string& service, const std::string& id,
                  const std::string& code = "BAD_SCHEMA") {
    v1::ReportFailureRequest req = FirstFailure(service, id, code);
    req.mutable_failure()->set_error_class(v1::PERMANENT);
    v1::ReportFailureResponse resp;
    ASSERT_TRUE(Report(*retry_, req, &resp).ok());
    ASSERT_EQ(resp.decision().kind(), v1::DECISION_DEAD_LETTERED);
  }

  int CountDead(const std::string& service) {
    v1::ListDeadLettersRequest req;
    req.mutable_filter()->set_service(service);
    req.set_page_size(1000);
    v1::ListDeadLettersResponse resp;
    EXPECT_TRUE(admin_->ListDeadLetters(Context().get(), req, &resp).ok());
    return resp.dead_letters_size();
  }

  // The server's /metrics page.
  std::string Scrape() {
    absl::StatusOr<std::string> body = HttpGet(server_->metrics_port(), "/metrics");
    EXPECT_TRUE(body.ok()) << body.status();
    return body.value_or("");
  }

  std::vector<v1::AuditEvent> Audit() {
    v1::ListAuditEventsResponse resp;
    EXPECT_TRUE(
        admin_->ListAuditEvents(Context().get(), v1::ListAuditEventsRequest(), &resp).ok());
    return {resp.events().begin(), resp.events().end()};
  }

  grpc::Status Purge(const v1::PurgeDeadLettersRequest& req, v1::PurgeDeadLettersResponse* resp) {
    return admin_->PurgeDeadLetters(Context().get(), req, resp);
  }
};

INSTANTIATE_TEST_SUITE_P(Stores, DlqPurgeTest, testing::AllStoreKinds(), testing::StoreKindName);

TEST_P(DlqPurgeTest, BadPurgesAreRefusedAndChangeNothing) {
  StartServer(kFastPolicyConfig);
  for (int i = 0; i < 3; ++i) DeadLetter("billing", absl::StrCat("b-", i));
  v1::PurgeDeadLettersResponse resp;
  v1::PurgeDeadLettersRequest empty;
  grpc::Status s = Purge(empty, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("filter:"));
  EXPECT_THAT(s.error_message(), HasSubstr("all"));

  v1::PurgeDeadLettersRequest long_note;
  long_note.mutable_filter()->set_service("billing");
  long_note.set_note(std::string(1025, 'n'));
  s = Purge(long_note, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("note:"));

  v1::PurgeDeadLettersRequest bad_filter;
  bad_filter.mutable_filter()->add_reasons(static_cast<v1::DeadLetterReason>(99));
  s = Purge(bad_filter, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("filter.reasons[0]:"));

  v1::PurgeDeadLettersRequest long_id;
  long_id.mutable_filter()->set_service("billing");
  long_id.set_request_id(std::string(129, 'r'));
  s = Purge(long_id, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("request_id:"));

  EXPECT_EQ(CountDead("billing"), 3);
  EXPECT_TRUE(Audit().empty());

  v1::ListAuditEventsRequest bad_page;
  bad_page.set_page_size(-1);
  v1::ListAuditEventsResponse aresp;
  s = admin_->ListAuditEvents(Context().get(), bad_page, &aresp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("page_size"));
  bad_page.set_page_size(1);
  bad_page.set_page_token("not-a-token");
  s = admin_->ListAuditEvents(Context().get(), bad_page, &aresp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("page_token"));
}

TEST_P(DlqPurgeTest, DryRunCountsAndSamplesAndChangesNothing) {
  StartServer(kFastPolicyConfig);
  for (int i = 0; i < 4; ++i) DeadLetter("billing", absl::StrCat("b-", i));
  DeadLetter("orders", "o-1");
  v1::PurgeDeadLettersRequest req;
  req.mutable_filter()->set_service("billing");
  req.set_dry_run(true);
  req.set_note("looking first");
  v1::PurgeDeadLettersResponse resp;
  ASSERT_TRUE(Purge(req, &resp).ok());
  EXPECT_EQ(resp.count(), 4);
  ASSERT_EQ(resp.sample_size(), 4);
  EXPECT_EQ(resp.sample(0).service(), "billing");
  EXPECT_TRUE(resp.sample(0).payload().empty());
  EXPECT_EQ(CountDead("billing"), 4);
  EXPECT_EQ(ServiceSummaryOf(*admin_, "billing").dead(), 4);
  const std::vector<v1::AuditEvent> audit = Audit();
  ASSERT_EQ(audit.size(), 1u);
  EXPECT_TRUE(audit[0].dry_run());
  EXPECT_EQ(audit[0].affected_count(), 4);
  EXPECT_EQ(audit[0].note(), "looking first");
}

TEST_P(DlqPurgeTest, PurgeIsAuditedCountedAndIdempotentByRequestId) {
  StartServer(kFastPolicyConfig);
  for (int i = 0; i < 5; ++i) DeadLetter("billing", absl::StrCat("b-", i));
  for (int i = 0; i < 2; ++i) DeadLetter("orders", absl::StrCat("o-", i), "HTTP_404");
  v1::PurgeDeadLettersRequest req;
  req.mutable_filter()->set_service("billing");
  req.set_note("ticket OPS-42");
  req.set_request_id("purge-1");
  v1::PurgeDeadLettersResponse resp;
  ASSERT_TRUE(Purge(req, &resp).ok());
  EXPECT_EQ(resp.count(), 5);
  EXPECT_EQ(CountDead("billing"), 0);
  EXPECT_EQ(CountDead("orders"), 2);
  EXPECT_EQ(ServiceSummaryOf(*admin_, "billing").dead(), 0);
  EXPECT_EQ(ServiceSummaryOf(*admin_, "orders").dead(), 2);
  v1::Envelope gone;
  EXPECT_EQ(GetEnvelope(*admin_, "billing", "b-0", &gone).error_code(),
            grpc::StatusCode::NOT_FOUND);

  // New dead letters arrive; the retried call answers the first purge and drops nothing.
  for (int i = 5; i < 8; ++i) DeadLetter("billing", absl::StrCat("b-", i));
  v1::PurgeDeadLettersResponse retried;
  ASSERT_TRUE(Purge(req, &retried).ok());
  EXPECT_EQ(retried.count(), 5);
  EXPECT_EQ(CountDead("billing"), 3);

  // all = true purges everything; audited too.
  v1::PurgeDeadLettersRequest all;
  all.set_all(true);
  ASSERT_TRUE(Purge(all, &resp).ok());
  EXPECT_EQ(resp.count(), 5);
  EXPECT_EQ(CountDead("billing") + CountDead("orders"), 0);
  // Counted in the metrics by service (the retried call counted nothing).
  const std::string metrics = Scrape();
  EXPECT_THAT(metrics,
              HasSubstr(R"(retryd_dead_letters_removed_total{cause="purge",service="billing"} 8)"));
  EXPECT_THAT(metrics,
              HasSubstr(R"(retryd_dead_letters_removed_total{cause="purge",service="orders"} 2)"));

  const std::vector<v1::AuditEvent> audit = Audit();
  ASSERT_EQ(audit.size(), 2u);  // The retried call recorded nothing new.
  EXPECT_EQ(audit[0].method(), "PurgeDeadLetters");
  EXPECT_EQ(audit[0].affected_count(), 5);
  EXPECT_EQ(audit[0].target(), "*");
  const v1::AuditEvent& first = audit[1];
  EXPECT_GT(audit[0].id(), first.id());
  EXPECT_EQ(first.identity(), "anonymous");
  EXPECT_THAT(first.peer(), HasSubstr("127.0.0.1"));
  EXPECT_EQ(first.filter().service(), "billing");
  EXPECT_FALSE(first.dry_run());
  EXPECT_EQ(first.affected_count(), 5);
  EXPECT_EQ(first.note(), "ticket OPS-42");
  EXPECT_EQ(first.request_id(), "purge-1");
  EXPECT_EQ(first.target(), "billing");
  EXPECT_EQ(first.result_code(), "OK");

  // Paginated newest first.
  v1::ListAuditEventsRequest page_req;
  page_req.set_page_size(1);
  v1::ListAuditEventsResponse page;
  ASSERT_TRUE(admin_->ListAuditEvents(Context().get(), page_req, &page).ok());
  ASSERT_EQ(page.events_size(), 1);
  EXPECT_EQ(page.events(0).id(), audit[0].id());
  ASSERT_FALSE(page.next_page_token().empty());
  page_req.set_page_token(page.next_page_token());
  ASSERT_TRUE(admin_->ListAuditEvents(Context().get(), page_req, &page).ok());
  ASSERT_EQ(page.events_size(), 1);
  EXPECT_EQ(page.events(0).id(), first.id());
  EXPECT_TRUE(page.next_page_token().empty());

  // Audit and counts survive a restart.
  server_->Kill();
  ASSERT_TRUE(server_->Restart().ok());
  admin_ = server_->AdminStub();
  EXPECT_EQ(Audit().size(), 2u);
  EXPECT_EQ(ServiceSummaryOf(*admin_, "billing").dead(), 0);
}

// The same request_id with a different request is refused, naming request_id, and purges
// nothing; the same request again still answers the original purge.
TEST_P(DlqPurgeTest, RequestIdReusedForAnotherRequestIsRefused) {
  StartServer(kFastPolicyConfig);
  for (int i = 0; i < 3; ++i) DeadLetter("billing", absl::StrCat("b-", i));
  for (int i = 0; i < 2; ++i) DeadLetter("orders", absl::StrCat("o-", i));
  v1::PurgeDeadLettersRequest req;
  req.mutable_filter()->set_service("billing");
  req.set_note("OPS-1");
  req.set_request_id("reused-1");
  v1::PurgeDeadLettersResponse resp;
  ASSERT_TRUE(Purge(req, &resp).ok());
  EXPECT_EQ(resp.count(), 3);

  v1::PurgeDeadLettersRequest other_filter = req;
  other_filter.mutable_filter()->set_service("orders");
  grpc::Status s = Purge(other_filter, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("request_id"));
  EXPECT_THAT(s.error_message(), HasSubstr("filter"));
  EXPECT_THAT(s.error_message(), HasSubstr("REQUEST_ID_REUSED"));
  v1::PurgeDeadLettersRequest other_note = req;
  other_note.set_note("OPS-2");
  s = Purge(other_note, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("note"));
  EXPECT_EQ(CountDead("orders"), 2);
  EXPECT_EQ(Audit().size(), 1u);

  ASSERT_TRUE(Purge(req, &resp).ok());
  EXPECT_EQ(resp.count(), 3);
}

TEST_P(DlqPurgeTest, LargePurgeRunsInChunksUnderOneAuditRecord) {
  StartServer(kFastPolicyConfig);
  constexpr int kCount = 2500;  // Three chunks of at most 1000.
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      auto stub = server_->RetryStub();
      for (int i = t; i < kCount; i += 4) {
        v1::ReportFailureRequest req = FirstFailure("bulk", absl::StrCat("x-", i), "BAD");
        req.mutable_failure()->set_error_class(v1::PERMANENT);
        v1::ReportFailureResponse resp;
        EXPECT_TRUE(Report(*stub, req, &resp).ok());
      }
    });
  }
  for (auto& t : threads) t.join();
  DeadLetter("other", "o-1");
  v1::PurgeDeadLettersRequest req;
  req.mutable_filter()->set_service("bulk");
  req.set_request_id("bulk-1");
  v1::PurgeDeadLettersResponse resp;
  // Retried calls (same request_id, same request) keep arriving while the purge runs its
  // chunks: each answers the purge's final count, never the count of the chunks done so far.
  std::atomic<bool> purged{false};
  std::vector<int64_t> retried_counts;
  std::thread retrier([&] {
    auto admin = server_->AdminStub();
    while (!purged.load()) {
      v1::PurgeDeadLettersResponse retried;
      grpc::Status s = admin->PurgeDeadLetters(Context().get(), req, &retried);
      EXPECT_TRUE(s.ok()) << s.error_message();
      retried_counts.push_back(retried.count());
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  ASSERT_TRUE(Purge(req, &resp).ok());
  purged.store(true);
  retrier.join();
  EXPECT_EQ(resp.count(), kCount);
  ASSERT_FALSE(retried_counts.empty());
  for (int64_t count : retried_counts) EXPECT_EQ(count, kCount);
  EXPECT_EQ(CountDead("bulk"), 0);
  EXPECT_EQ(CountDead("other"), 1);
  EXPECT_EQ(ServiceSummaryOf(*admin_, "bulk").dead(), 0);
  const std::vector<v1::AuditEvent> audit = Audit();
  ASSERT_EQ(audit.size(), 1u);
  EXPECT_EQ(audit[0].affected_count(), kCount);
  ASSERT_TRUE(Purge(req, &resp).ok());
  EXPECT_EQ(resp.count(), kCount) << "the retried call answers the whole purge";
  EXPECT_EQ(Audit().size(), 1u);
}

TEST_P(DlqPurgeTest, RetentionTrimsOldDeadLettersAndAuditsIt) {
  StartServer(kRetentionConfig);
  for (int i = 0; i < 3; ++i) DeadLetter("ephemeral", absl::StrCat("e-", i));
  DeadLetter("keep", "k-1");
  const absl::Time deadline = absl::Now() + absl::Seconds(15);
  while (CountDead("ephemeral") > 0 && absl::Now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_EQ(CountDead("ephemeral"), 0);
  EXPECT_EQ(CountDead("keep"), 1);
  EXPECT_EQ(ServiceSummaryOf(*admin_, "ephemeral").dead(), 0);
  const std::vector<v1::AuditEvent> audit = Audit();
  int64_t trimmed = 0;
  for (const auto& e : audit) {
    EXPECT_EQ(e.method(), "RetentionSweep");
    EXPECT_EQ(e.target(), "ephemeral");
    EXPECT_EQ(e.identity(), "retryd");
    trimmed += e.affected_count();
  }
  EXPECT_EQ(trimmed, 3);
  EXPECT_THAT(server_->log(), HasSubstr("dead_letters_trimmed"));
  EXPECT_THAT(Scrape(),
              HasSubstr(R"(retryd_dead_letters_removed_total{cause="retention",service="ephemeral"} 3)"));
}

}  // namespace
}  // namespace retryd::testing
