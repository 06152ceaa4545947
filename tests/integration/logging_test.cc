// Logs of the real retryd: one JSON object per line; per-envelope lines carry service, message_id,
// trace_id, attempt (and error_code, decision for decisions); payloads, header values and lease
// tokens never appear, even at debug level; at info level there is no per-request line, only the
// dead letters (warn) and the server's own events.
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/requests.h"
#include "tests/testing/server_process.h"

namespace retryd::testing {
namespace {

constexpr char kPayloadMarker[] = "PAYLOAD-MARKER-6b1f0c";
constexpr char kHeaderMarker[] = "HEADER-MARKER-93d2e7";

// Drives every per-envelope event: scheduled, lease granted, leased failure, success, dead
// letter, duplicate. Returns the lease tokens it was given.
std::vector<std::string> DriveTraffic(ServerProcess& server) {
  auto retry = server.RetryStub();
  std::vector<std::string> tokens;
  v1::ReportFailureResponse resp;
  v1::ReportFailureRequest first = FirstFailure("billing", "m-1");
  first.mutable_envelope()->set_payload(std::string("{\"card\": \"") + kPayloadMarker + "\"}");
  (*first.mutable_envelope()->mutable_headers())["authorization"] = kHeaderMarker;
  EXPECT_TRUE(Report(*retry, first, &resp).ok());
  EXPECT_TRUE(Report(*retry, first, &resp).ok());  // Duplicate.
  v1::LeaseResponse leased = LeaseUntil(*retry, "billing", 1, absl::Seconds(10));
  EXPECT_EQ(leased.envelopes_size(), 1);
  if (leased.envelopes_size() != 1) return tokens;
  tokens.push_back(leased.envelopes(0).lease_token());
  EXPECT_TRUE(Report(*retry, LeasedFailure(leased.envelopes(0)), &resp).ok());
  leased = LeaseUntil(*retry, "billing", 1, absl::Seconds(10));
  EXPECT_EQ(leased.envelopes_size(), 1);
  if (leased.envelopes_size() != 1) return tokens;
  tokens.push_back(leased.envelopes(0).lease_token());
  EXPECT_TRUE(Succeed(*retry, leased.envelopes(0)).ok());

  v1::ReportFailureRequest permanent = FirstFailure("billing", "m-2", "BAD_SIGNATURE");
  permanent.mutable_envelope()->set_payload(kPayloadMarker);
  permanent.mutable_failure()->set_error_class(v1::PERMANENT);
  EXPECT_TRUE(Report(*retry, permanent, &resp).ok());
  return tokens;
}

// The log's lines as JSON objects (failing the test on a line that is not one).
std::vector<nlohmann::json> Lines(const std::string& log) {
  std::vector<nlohmann::json> out;
  for (absl::string_view line : absl::StrSplit(log, '\n', absl::SkipEmpty())) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    EXPECT_TRUE(!j.is_discarded() && j.is_object()) << "not a JSON object: " << line;
    if (!j.is_discarded()) out.push_back(std::move(j));
  }
  return out;
}

std::vector<nlohmann::json> Events(const std::vector<nlohmann::json>& lines,
                                   const std::string& event) {
  std::vector<nlohmann::json> out;
  for (const auto& j : lines) {
    if (j.value("event", "") == event) out.push_back(j);
  }
  return out;
}

TEST(LoggingTest, DebugLogCarriesTheEnvelopeFieldsAndNeverThePayload) {
  const std::string dir = MakeTempDir();
  auto server = ServerProcess::Start(dir, kFastPolicyConfig, {"--log-level", "debug"});
  ASSERT_TRUE(server.ok()) << server.status();
  const std::vector<std::string> tokens = DriveTraffic(**server);
  ASSERT_EQ(tokens.size(), 2u);
  ASSERT_TRUE((*server)->Terminate(absl::Seconds(20)).ok());
  const std::string log = (*server)->log();

  EXPECT_THAT(log, ::testing::Not(::testing::HasSubstr(kPayloadMarker)));
  EXPECT_THAT(log, ::testing::Not(::testing::HasSubstr(kHeaderMarker)));
  for (const std::string& token : tokens) {
    EXPECT_THAT(log, ::testing::Not(::testing::HasSubstr(token)));
  }
  const std::vector<nlohmann::json> lines = Lines(log);
  for (const auto& j : lines) {
    EXPECT_TRUE(j.contains("ts") && j.contains("level") && j.contains("event")) << j.dump();
  }
  // Per-envelope events: who and which attempt; decisions also what failed and what was decided.
  for (const char* event : {"retry_scheduled", "lease_granted", "retry_succeeded", "dead_lettered",
                            "duplicate_failure"}) {
    const auto found = Events(lines, event);
    ASSERT_FALSE(found.empty()) << "no " << event << " line in:\n" << log;
    for (const auto& j : found) {
      EXPECT_EQ(j.value("service", ""), "billing") << j.dump();
      EXPECT_FALSE(j.value("message_id", "").empty()) << j.dump();
      EXPECT_TRUE(j.contains("attempt")) << j.dump();
    }
  }
  for (const char* event : {"retry_scheduled", "dead_lettered"}) {
    for (const auto& j : Events(lines, event)) {
      EXPECT_FALSE(j.value("error_code", "").empty()) << j.dump();
      EXPECT_FALSE(j.value("decision", "").empty()) << j.dump();
      EXPECT_EQ(j.value("trace_id", ""), "trace-" + j.value("message_id", "")) << j.dump();
    }
  }
  const auto dead = Events(lines, "dead_lettered");
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].value("message_id", ""), "m-2");
  EXPECT_EQ(dead[0].value("error_code", ""), "BAD_SIGNATURE");
  EXPECT_EQ(dead[0].value("reason", ""), "NON_RETRYABLE");
  EXPECT_EQ(dead[0].value("level", ""), "warn");
  const auto succeeded = Events(lines, "retry_succeeded");
  ASSERT_EQ(succeeded.size(), 1u);
  EXPECT_EQ(succeeded[0].value("attempt", 0), 3);  // First failure, a failed retry, this one.
  RemoveTree(dir);
}

TEST(LoggingTest, InfoLevelHasNoPerRequestLines) {
  const std::string dir = MakeTempDir();
  auto server = ServerProcess::Start(dir, kFastPolicyConfig, {"--log-level", "info"});
  ASSERT_TRUE(server.ok()) << server.status();
  DriveTraffic(**server);
  ASSERT_TRUE((*server)->Terminate(absl::Seconds(20)).ok());
  const std::vector<nlohmann::json> lines = Lines((*server)->log());
  std::set<std::string> events;
  for (const auto& j : lines) events.insert(j.value("event", ""));
  for (const char* per_request :
       {"retry_scheduled", "lease_granted", "retry_succeeded", "duplicate_failure"}) {
    EXPECT_EQ(events.count(per_request), 0u) << per_request << " logged at info";
  }
  EXPECT_EQ(Events(lines, "dead_lettered").size(), 1u);
  EXPECT_EQ(events.count("server_started"), 1u);
  EXPECT_EQ(events.count("server_stopped"), 1u);
  RemoveTree(dir);
}

TEST(LoggingTest, LeaseExpiryLineSaysWhatFailed) {
  const std::string dir = MakeTempDir();
  auto server = ServerProcess::Start(dir, kFastPolicyConfig, {"--log-level", "info"});
  ASSERT_TRUE(server.ok()) << server.status();
  auto retry = (*server)->RetryStub();
  v1::ReportFailureResponse resp;
  ASSERT_TRUE(Report(*retry, FirstFailure("billing", "m-9"), &resp).ok());
  // A worker that takes it for 50 ms and never answers.
  const v1::LeaseResponse leased =
      LeaseUntil(*retry, "billing", 1, absl::Seconds(10), absl::Milliseconds(50));
  ASSERT_EQ(leased.envelopes_size(), 1);
  std::vector<nlohmann::json> expired;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (expired.empty() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));
    expired = Events(Lines((*server)->log()), "lease_expired");
  }
  ASSERT_EQ(expired.size(), 1u) << (*server)->log();
  EXPECT_EQ(expired[0].value("level", ""), "warn");
  EXPECT_EQ(expired[0].value("message_id", ""), "m-9");
  EXPECT_EQ(expired[0].value("trace_id", ""), "trace-m-9");
  EXPECT_EQ(expired[0].value("error_code", ""), "LEASE_EXPIRED");
  EXPECT_EQ(expired[0].value("decision", ""), "scheduled");
  EXPECT_EQ(expired[0].value("attempt", 0), 2);
  ASSERT_TRUE((*server)->Terminate(absl::Seconds(20)).ok());
  RemoveTree(dir);
}

}  // namespace
}  // namespace retryd::testing
