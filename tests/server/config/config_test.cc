#include "server/config/config.h"

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "server/core/policy.h"
#include "tests/testing/status_matchers.h"

namespace retryd {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using testing::IsOk;
using testing::StatusIs;

constexpr absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;

v1::ServerConfig MustParse(const std::string& json) {
  absl::StatusOr<v1::ServerConfig> cfg = ParseServerConfigJson(json);
  EXPECT_THAT(cfg, IsOk()) << json;
  return cfg.ok() ? *cfg : v1::ServerConfig();
}

// Policy from a JSON object, e.g. R"({"name": "a", "maxAttempts": 3})".
absl::StatusOr<Policy> PolicyFromJson(const std::string& policy_json) {
  const v1::ServerConfig cfg = MustParse(absl::StrCat(R"({"policies": [)", policy_json, "]}"));
  if (cfg.policies_size() != 1) return absl::InternalError("no policy parsed");
  return PolicyFromProto(cfg.policies(0), "policies[0]");
}

// Policies compare through their proto form (PolicyToProto fills every field).
void ExpectSamePolicy(const Policy& got, const Policy& want) {
  v1::Policy got_proto, want_proto;
  PolicyToProto(got, &got_proto);
  PolicyToProto(want, &want_proto);
  EXPECT_TRUE(MessageDifferencer::Equals(got_proto, want_proto))
      << "got:\n" << got_proto.DebugString() << "want:\n" << want_proto.DebugString();
}

const char kFullExample[] = R"json({
  "grpc_addr": "0.0.0.0:50051",
  "metricsAddr": "127.0.0.1:9464",
  "data_dir": "/var/lib/retryd",
  "shutdown_grace": "15s",
  "insecure_allow_remote": false,
  "log_level": "info",
  "limits": {"max_payload_bytes": 2097152, "maxLeaseResponseBytes": "4194304",
             "dedupe_window": "172800s", "maxPendingRequests": "5000"},
  "auth": {"tokens": [
    {"name": "ops", "sha256": "00ff", "role": "OPERATOR"},
    {"name": "billing-workers", "sha256": "ab12", "role": "WORKER", "services": ["billing.*"]}]},
  "tls": {"cert_file": "/etc/retryd/tls.crt", "key_file": "/etc/retryd/tls.key",
          "client_auth": "none"},
  "policies": [
    {"name": "default", "max_attempts": 8},
    {"name": "billing.*",
     "maxAttempts": 12,
     "max_retry_duration": "86400s",
     "backoff": {"initial": "1.5s", "multiplier": 2, "max": "300s", "jitter": "FULL"},
     "recoverable_backoff": {"initial": "60s", "jitter": "DECORRELATED"},
     "honor_retry_after": false,
     "max_retry_after": "600s",
     "classification": {
       "rules": [{"error_code": "CARD_DECLINED", "error_class": "PERMANENT"},
                 {"errorCode": "PSP_*", "errorClass": "RECOVERABLE"}],
       "unclassified": "RECOVERABLE"},
     "budget": {"enabled": true, "window": "30s", "ratio": 0.5, "min_retries_per_window": 5,
                "when_exhausted": "DEAD_LETTER"},
     "circuit": {"enabled": true, "window": "20s", "failure_rate_threshold": 0.25,
                 "minimum_calls": 50, "open_duration": "10s", "max_open_duration": "300s",
                 "half_open_trials": 2},
     "dead_letter": {"retention": "2592000s", "escalation_age": "3600s"},
     "replay": {"max_per_second": 20.5, "blocked_schema_versions": ["v1", "v2-beta"]}},
    {"name": "orders"}
  ]
})json";

TEST(ParseServerConfigJsonTest, FullExampleParsesAndConverts) {
  const v1::ServerConfig cfg = MustParse(kFullExample);
  EXPECT_EQ(cfg.grpc_addr(), "0.0.0.0:50051");
  EXPECT_EQ(cfg.metrics_addr(), "127.0.0.1:9464");
  EXPECT_EQ(cfg.auth().tokens(1).services(0), "billing.*");
  EXPECT_EQ(cfg.tls().client_auth(), "none");

  absl::StatusOr<PolicySet> set = PolicySetFromConfig(cfg);
  ASSERT_THAT(set, IsOk());
  ASSERT_EQ(set->policies().size(), 3u);
  EXPECT_EQ(set->Resolve("shipping").max_attempts, 8);
  EXPECT_EQ(set->Resolve("orders").max_attempts, 5);  // Unset: the built-in default.

  const Policy& b = set->Resolve("billing.invoices");
  EXPECT_EQ(b.name, "billing.*");
  EXPECT_EQ(b.max_attempts, 12);
  EXPECT_EQ(b.max_retry_duration, absl::Hours(24));
  EXPECT_EQ(b.backoff.initial, absl::Milliseconds(1500));
  EXPECT_EQ(b.backoff.multiplier, 2.0);
  EXPECT_EQ(b.backoff.max, absl::Minutes(5));
  EXPECT_EQ(b.backoff.jitter, JitterKind::kFull);
  EXPECT_EQ(b.backoff.jitter_ratio, 0.2);
  EXPECT_EQ(b.recoverable_backoff.initial, absl::Minutes(1));
  EXPECT_EQ(b.recoverable_backoff.multiplier, 2.0);
  EXPECT_EQ(b.recoverable_backoff.max, absl::Minutes(10));
  EXPECT_EQ(b.recoverable_backoff.jitter, JitterKind::kDecorrelated);
  EXPECT_FALSE(b.honor_retry_after);
  EXPECT_EQ(b.max_retry_after, absl::Minutes(10));
  ASSERT_EQ(b.rules.size(), 2u);
  EXPECT_EQ(b.rules[0].error_code, "CARD_DECLINED");
  EXPECT_EQ(b.rules[0].error_class, ErrorClass::kPermanent);
  EXPECT_EQ(b.rules[1].error_code, "PSP_*");
  EXPECT_EQ(b.rules[1].error_class, ErrorClass::kRecoverable);
  EXPECT_EQ(b.unclassified, ErrorClass::kRecoverable);
  EXPECT_TRUE(b.budget.enabled);
  EXPECT_EQ(b.budget.window, absl::Seconds(30));
  EXPECT_EQ(b.budget.ratio, 0.5);
  EXPECT_EQ(b.budget.min_retries_per_window, 5);
  EXPECT_EQ(b.budget.when_exhausted, BudgetExhaustedAction::kDeadLetter);
  EXPECT_TRUE(b.circuit.enabled);
  EXPECT_EQ(b.circuit.window, absl::Seconds(20));
  EXPECT_EQ(b.circuit.failure_rate_threshold, 0.25);
  EXPECT_EQ(b.circuit.minimum_calls, 50);
  EXPECT_EQ(b.circuit.open_duration, absl::Seconds(10));
  EXPECT_EQ(b.circuit.max_open_duration, absl::Minutes(5));
  EXPECT_EQ(b.circuit.half_open_trials, 2);
  EXPECT_EQ(b.dead_letter.retention, absl::Hours(720));
  EXPECT_EQ(b.dead_letter.escalation_age, absl::Hours(1));
  EXPECT_EQ(b.replay.max_per_second, 20.5);
  EXPECT_EQ(b.replay.blocked_schema_versions, (std::vector<std::string>{"v1", "v2-beta"}));

  absl::StatusOr<Limits> limits = LimitsFromProto(cfg.limits());
  ASSERT_THAT(limits, IsOk());
  EXPECT_EQ(limits->max_payload_bytes, 2097152);
  EXPECT_EQ(limits->max_lease_response_bytes, 4194304);
  EXPECT_EQ(limits->dedupe_window, absl::Hours(48));
  EXPECT_EQ(limits->max_pending_requests, 5000);
}

TEST(ParseServerConfigJsonTest, EmptyObjectIsAValidConfig) {
  const v1::ServerConfig cfg = MustParse("{}");
  absl::StatusOr<PolicySet> set = PolicySetFromConfig(cfg);
  ASSERT_THAT(set, IsOk());
  EXPECT_EQ(set->Resolve("x").max_attempts, 5);
}

TEST(ParseServerConfigJsonTest, RejectsUnknownFieldsByName) {
  EXPECT_THAT(ParseServerConfigJson(R"({"grpc_addr": "x", "grpc_adress": "y"})"),
              StatusIs(kInvalid, AllOf(StartsWith("config: "), HasSubstr("grpc_adress"))));
  EXPECT_THAT(ParseServerConfigJson(R"({"policies": [{"name": "a", "backof": {}}]})"),
              StatusIs(kInvalid, AllOf(StartsWith("config: "), HasSubstr("backof"))));
  EXPECT_THAT(
      ParseServerConfigJson(R"({"policies": [{"name": "a", "backoff": {"jiter": "FULL"}}]})"),
      StatusIs(kInvalid, HasSubstr("jiter")));
}

TEST(ParseServerConfigJsonTest, RejectsMalformedJsonAndBadValues) {
  EXPECT_THAT(ParseServerConfigJson("{"), StatusIs(kInvalid, StartsWith("config: ")));
  EXPECT_THAT(ParseServerConfigJson("[]"), StatusIs(kInvalid, StartsWith("config: ")));
  EXPECT_THAT(ParseServerConfigJson(R"({"shutdown_grace": "soon"})"),
              StatusIs(kInvalid, StartsWith("config: ")));
  EXPECT_THAT(ParseServerConfigJson(R"({"policies": [{"backoff": {"jitter": "WILD"}}]})"),
              StatusIs(kInvalid, StartsWith("config: ")));
}

TEST(PolicyFromProtoTest, UnsetFieldsTakeTheBuiltInDefaults) {
  absl::StatusOr<Policy> p = PolicyFromJson(R"({"name": "orders"})");
  ASSERT_THAT(p, IsOk());
  Policy want;
  want.name = "orders";
  ExpectSamePolicy(*p, want);
  EXPECT_EQ(p->recoverable_backoff.initial, absl::Seconds(30));
  EXPECT_EQ(p->backoff.jitter, JitterKind::kProportional);
  EXPECT_TRUE(p->honor_retry_after);
}

TEST(PolicyFromProtoTest, ABudgetOrCircuitBlockTurnsItOnUnlessItSaysOff) {
  absl::StatusOr<Policy> p = PolicyFromJson(R"({"name": "orders"})");
  ASSERT_THAT(p, IsOk());
  EXPECT_FALSE(p->budget.enabled);
  EXPECT_FALSE(p->circuit.enabled);
  p = PolicyFromJson(R"({"name": "orders", "circuit": {}})");
  ASSERT_THAT(p, IsOk());
  EXPECT_TRUE(p->circuit.enabled);
  EXPECT_FALSE(p->budget.enabled);
  p = PolicyFromJson(R"({"name": "orders", "circuit": {"enabled": false, "minimumCalls": 5}})");
  ASSERT_THAT(p, IsOk());
  EXPECT_FALSE(p->circuit.enabled);
  p = PolicyFromJson(R"({"name": "orders", "budget": {"ratio": 0.5}})");
  ASSERT_THAT(p, IsOk());
  EXPECT_TRUE(p->budget.enabled);
  EXPECT_EQ(p->budget.ratio, 0.5);
  EXPECT_EQ(p->budget.min_retries_per_window, 600);
  EXPECT_EQ(p->budget.window, absl::Seconds(60));
  EXPECT_EQ(p->budget.when_exhausted, BudgetExhaustedAction::kDefer);
  EXPECT_EQ(p->circuit.minimum_calls, 100);
  EXPECT_EQ(p->circuit.open_duration, absl::Seconds(60));
  EXPECT_EQ(p->circuit.half_open_trials, 10);
  p = PolicyFromJson(R"({"name": "orders", "budget": {"enabled": false}})");
  ASSERT_THAT(p, IsOk());
  EXPECT_FALSE(p->budget.enabled);
}

TEST(PolicyFromProtoTest, PartialBackoffsKeepTheirOwnDefaults) {
  absl::StatusOr<Policy> p = PolicyFromJson(R"({"name": "a",
      "backoff": {"multiplier": 4},
      "recoverable_backoff": {"initial": "5s", "jitter": "JITTER_KIND_UNSPECIFIED"}})");
  ASSERT_THAT(p, IsOk());
  BackoffSpec backoff = BackoffSpec::DefaultTransient();
  backoff.multiplier = 4;
  BackoffSpec recoverable = BackoffSpec::DefaultRecoverable();
  recoverable.initial = absl::Seconds(5);
  Policy want;
  want.name = "a";
  want.backoff = backoff;
  want.recoverable_backoff = recoverable;
  ExpectSamePolicy(*p, want);
}

TEST(PolicyFromProtoTest, ZeroMeansNoDeadline) {
  absl::StatusOr<Policy> p = PolicyFromJson(R"({"name": "a", "max_retry_duration": "0s",
      "dead_letter": {"retention": "0s"}})");
  ASSERT_THAT(p, IsOk());
  EXPECT_EQ(p->max_retry_duration, absl::ZeroDuration());
  EXPECT_EQ(p->dead_letter.retention, absl::ZeroDuration());
}

TEST(PolicyFromProtoTest, ExactErrorMessageForABadRange) {
  const v1::ServerConfig cfg = MustParse(R"({"policies": [{"name": "default"}, {"name": "a"},
      {"name": "b", "backoff": {"initial": "0s"}}]})");
  EXPECT_THAT(PolicySetFromConfig(cfg),
              StatusIs(kInvalid,
                       "policies[2].backoff.initial: must be between 1ms and 24h, got 0s"));
}

struct BadCase {
  const char* fields;  // JSON members added to a policy named "p".
  const char* message_start;
};

TEST(PolicyFromProtoTest, EachBadValueNamesItsFullPath) {
  const BadCase cases[] = {
      {R"("max_attempts": 0)", "policies[1].max_attempts: must be between 1 and 1000, got 0"},
      {R"("max_attempts": 1001)", "policies[1].max_attempts: must be between 1 and 1000"},
      {R"("max_retry_duration": "0.5s")",
       "policies[1].max_retry_duration: must be 0 (no deadline) or between 1s and 8760h, "
       "got 500ms"},
      {R"("max_retry_duration": "-1s")", "policies[1].max_retry_duration: must be 0"},
      {R"("max_retry_duration": "31539600s")", "policies[1].max_retry_duration: must be 0"},
      {R"("backoff": {"initial": "90000s"})",
       "policies[1].backoff.initial: must be between 1ms and 24h, got 25h"},
      {R"("backoff": {"initial": "0.0005s"})", "policies[1].backoff.initial: "},
      {R"("backoff": {"multiplier": 0.5})",
       "policies[1].backoff.multiplier: must be between 1 and 100, got 0.5"},
      {R"("backoff": {"multiplier": 101})", "policies[1].backoff.multiplier: "},
      {R"("backoff": {"multiplier": "NaN"})", "policies[1].backoff.multiplier: "},
      {R"("backoff": {"max": "1s"})",
       "policies[1].backoff.max: must be between 2s and 168h, got 1s"},
      {R"("backoff": {"max": "608400s"})", "policies[1].backoff.max: "},
      {R"("backoff": {"initial": "300s"})",
       "policies[1].backoff.max: must be between 5m and 168h, got 2m (the default"},
      {R"("backoff": {"jitter_ratio": 1.5})",
       "policies[1].backoff.jitter_ratio: must be between 0 and 1, got 1.5"},
      {R"("backoff": {"jitter_ratio": -0.1})", "policies[1].backoff.jitter_ratio: "},
      {R"("backoff": {"jitter": 9})", "policies[1].backoff.jitter: must be NONE, FULL"},
      {R"("recoverable_backoff": {"initial": "0s"})",
       "policies[1].recoverable_backoff.initial: must be between 1ms and 24h, got 0s"},
      {R"("recoverable_backoff": {"max": "20s"})",
       "policies[1].recoverable_backoff.max: must be between 30s and 168h, got 20s"},
      {R"("max_retry_after": "0s")",
       "policies[1].max_retry_after: must be between 1s and 168h, got 0s"},
      {R"("max_retry_after": "691200s")", "policies[1].max_retry_after: "},
      {R"("classification": {"rules": [{"error_code": "A", "error_class": "TRANSIENT"},
          {"error_code": "B"}]})",
       "policies[1].classification.rules[1].error_class: required"},
      {R"("classification": {"rules": [{"error_code": "A", "error_class": 7}]})",
       "policies[1].classification.rules[0].error_class: must be TRANSIENT, RECOVERABLE or "
       "PERMANENT, got 7"},
      {R"("classification": {"rules": [{"error_class": "PERMANENT"}]})",
       "policies[1].classification.rules[0].error_code: required"},
      {R"("classification": {"rules": [{"error_code": "A*B", "error_class": "PERMANENT"}]})",
       "policies[1].classification.rules[0].error_code: '*' is only allowed at the end"},
      {R"("classification": {"rules": [{"error_code": "A", "error_class": "PERMANENT"},
          {"error_code": "A", "error_class": "TRANSIENT"}]})",
       "policies[1].classification.rules[1].error_code: duplicate rule for \"A\""},
      {R"("classification": {"unclassified": 5})", "policies[1].classification.unclassified: "},
      {R"("budget": {"window": "0s"})", "policies[1].budget.window: must be between 1s and 24h"},
      {R"("budget": {"ratio": 100.5})", "policies[1].budget.ratio: must be between 0 and 100"},
      {R"("budget": {"min_retries_per_window": -1})",
       "policies[1].budget.min_retries_per_window: must be between 0 and 1000000000, got -1"},
      {R"("budget": {"when_exhausted": 3})", "policies[1].budget.when_exhausted: "},
      {R"("circuit": {"window": "90000s"})", "policies[1].circuit.window: "},
      {R"("circuit": {"failure_rate_threshold": 0})",
       "policies[1].circuit.failure_rate_threshold: must be in (0, 1], got 0"},
      {R"("circuit": {"failure_rate_threshold": 1.01})",
       "policies[1].circuit.failure_rate_threshold: "},
      {R"("circuit": {"minimum_calls": 0})",
       "policies[1].circuit.minimum_calls: must be between 1 and 1000000, got 0"},
      {R"("circuit": {"open_duration": "0.5s"})", "policies[1].circuit.open_duration: "},
      {R"("circuit": {"max_open_duration": "10s"})",
       "policies[1].circuit.max_open_duration: must be between 1m and 168h, got 10s"},
      {R"("circuit": {"open_duration": "1200s"})",
       "policies[1].circuit.max_open_duration: must be between 20m and 168h, got 10m (the default"},
      {R"("circuit": {"half_open_trials": 0})", "policies[1].circuit.half_open_trials: "},
      {R"("circuit": {"half_open_trials": 1001})", "policies[1].circuit.half_open_trials: "},
      {R"("dead_letter": {"retention": "-1s"})",
       "policies[1].dead_letter.retention: must not be negative, got -1s"},
      {R"("dead_letter": {"escalation_age": "-5s"})", "policies[1].dead_letter.escalation_age: "},
      {R"("replay": {"max_per_second": 0.05})",
       "policies[1].replay.max_per_second: must be between 0.1 and 100000, got 0.05"},
      {R"("replay": {"max_per_second": 100001})", "policies[1].replay.max_per_second: "},
  };
  for (const BadCase& c : cases) {
    const std::string json =
        absl::StrCat(R"({"policies": [{"name": "ok"}, {"name": "p", )", c.fields, "}]}");
    const v1::ServerConfig cfg = MustParse(json);
    EXPECT_THAT(PolicySetFromConfig(cfg), StatusIs(kInvalid, StartsWith(c.message_start)))
        << c.fields;
  }
}

TEST(PolicyFromProtoTest, BadNames) {
  EXPECT_THAT(PolicyFromJson("{}"), StatusIs(kInvalid, "policies[0].name: required"));
  EXPECT_THAT(PolicyFromJson(R"({"name": "Billing"})"),
              StatusIs(kInvalid, StartsWith("policies[0].name: must be \"default\"")));
  const v1::ServerConfig dup =
      MustParse(R"({"policies": [{"name": "a.*"}, {"name": "b"}, {"name": "a.*"}]})");
  EXPECT_THAT(PolicySetFromConfig(dup),
              StatusIs(kInvalid, StartsWith("policies[2].name: duplicate policy name \"a.*\"")));
}

TEST(PolicyFromProtoTest, PathPrefixIsTheCallersChoice) {
  v1::Policy proto;
  proto.set_name("x");
  proto.set_max_attempts(0);
  EXPECT_THAT(PolicyFromProto(proto, "request.policy"),
              StatusIs(kInvalid, StartsWith("request.policy.max_attempts: ")));
}

TEST(PolicyToProtoTest, FillsEveryFieldAndRoundTrips) {
  Policy p;
  p.name = "billing.*";
  p.max_attempts = 9;
  p.max_retry_duration = absl::Hours(2);
  p.backoff = BackoffSpec{absl::Milliseconds(250), 1.5, absl::Minutes(3), JitterKind::kEqual, 0.1};
  p.recoverable_backoff.jitter = JitterKind::kNone;
  p.honor_retry_after = false;
  p.max_retry_after = absl::Minutes(30);
  p.rules = {{"A", ErrorClass::kPermanent}, {"B_*", ErrorClass::kRecoverable}};
  p.unclassified = ErrorClass::kPermanent;
  p.budget.enabled = true;
  p.budget.when_exhausted = BudgetExhaustedAction::kDeadLetter;
  p.circuit.enabled = true;
  p.circuit.half_open_trials = 7;
  p.dead_letter.retention = absl::Hours(24 * 14);
  p.replay.blocked_schema_versions = {"v0"};

  v1::Policy proto;
  proto.set_name("stale");  // Cleared first.
  proto.mutable_classification()->add_rules()->set_error_code("stale");
  PolicyToProto(p, &proto);
  EXPECT_EQ(proto.name(), "billing.*");
  EXPECT_EQ(proto.classification().rules_size(), 2);
  EXPECT_TRUE(proto.has_max_attempts());
  EXPECT_TRUE(proto.has_max_retry_duration());
  EXPECT_TRUE(proto.backoff().has_multiplier());
  EXPECT_TRUE(proto.backoff().has_jitter_ratio());
  EXPECT_EQ(proto.backoff().jitter(), v1::EQUAL);
  EXPECT_TRUE(proto.has_honor_retry_after());
  EXPECT_TRUE(proto.budget().has_min_retries_per_window());
  EXPECT_TRUE(proto.circuit().has_half_open_trials());
  EXPECT_TRUE(proto.dead_letter().has_retention());
  EXPECT_TRUE(proto.replay().has_max_per_second());
  EXPECT_EQ(proto.backoff().initial().nanos(), 250000000);

  absl::StatusOr<Policy> back = PolicyFromProto(proto, "p");
  ASSERT_THAT(back, IsOk());
  ExpectSamePolicy(*back, p);
}

TEST(LimitsFromProtoTest, DefaultsAndRanges) {
  absl::StatusOr<Limits> defaults = LimitsFromProto(v1::Limits());
  ASSERT_THAT(defaults, IsOk());
  EXPECT_EQ(defaults->max_payload_bytes, 1 << 20);
  EXPECT_EQ(defaults->max_lease_response_bytes, 3670016);
  EXPECT_EQ(defaults->dedupe_window, absl::Hours(24));
  EXPECT_EQ(defaults->max_pending_requests, 100000);

  v1::Limits zero_window;
  zero_window.mutable_dedupe_window();  // Set, 0 s: allowed.
  ASSERT_THAT(LimitsFromProto(zero_window), IsOk());
  EXPECT_EQ(LimitsFromProto(zero_window)->dedupe_window, absl::ZeroDuration());

  const BadCase cases[] = {
      {R"("max_payload_bytes": 0)",
       "limits.max_payload_bytes: must be between 1 and 67108864, got 0"},
      {R"("max_payload_bytes": 67108865)", "limits.max_payload_bytes: "},
      {R"("max_lease_response_bytes": 65535)",
       "limits.max_lease_response_bytes: must be between 65536 and 67108864, got 65535"},
      {R"("max_lease_response_bytes": "67108865")", "limits.max_lease_response_bytes: "},
      {R"("dedupe_window": "-1s")", "limits.dedupe_window: must be between 0s and 720h, got -1s"},
      {R"("dedupe_window": "2595600s")", "limits.dedupe_window: "},
      {R"("max_pending_requests": 63)",
       "limits.max_pending_requests: must be between 64 and 10000000, got 63"},
      {R"("max_pending_requests": "10000001")", "limits.max_pending_requests: "},
  };
  for (const BadCase& c : cases) {
    const v1::ServerConfig cfg = MustParse(absl::StrCat(R"({"limits": {)", c.fields, "}}"));
    EXPECT_THAT(LimitsFromProto(cfg.limits()), StatusIs(kInvalid, StartsWith(c.message_start)))
        << c.fields;
  }
}

class LoadServerConfigFileTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& name, const std::string& contents) {
    const std::string path = absl::StrCat(::testing::TempDir(), "/", name);
    std::ofstream(path, std::ios::binary | std::ios::trunc) << contents;
    paths_.push_back(path);
    return path;
  }
  void TearDown() override {
    for (const std::string& p : paths_) std::remove(p.c_str());
  }
  std::vector<std::string> paths_;
};

TEST_F(LoadServerConfigFileTest, LoadsAFile) {
  absl::StatusOr<v1::ServerConfig> cfg =
      LoadServerConfigFile(Write("retryd_config_ok.json", kFullExample));
  ASSERT_THAT(cfg, IsOk());
  EXPECT_EQ(cfg->policies_size(), 3);
}

TEST_F(LoadServerConfigFileTest, MissingFileIsNotFound) {
  const std::string path = absl::StrCat(::testing::TempDir(), "/retryd_no_such_config.json");
  EXPECT_THAT(LoadServerConfigFile(path),
              StatusIs(absl::StatusCode::kNotFound, StartsWith(path + ": ")));
}

TEST_F(LoadServerConfigFileTest, BadContentsNameThePathAndTheField) {
  const std::string path = Write("retryd_config_bad.json", R"({"grpc_addr": 1, "bogus": 2})");
  EXPECT_THAT(LoadServerConfigFile(path),
              StatusIs(kInvalid, AllOf(StartsWith(path + ": config: "), HasSubstr("bogus"))));
}

TEST_F(LoadServerConfigFileTest, ADirectoryIsNotAConfig) {
  EXPECT_THAT(LoadServerConfigFile(::testing::TempDir()),
              StatusIs(kInvalid, StartsWith(::testing::TempDir())));
}

}  // namespace
}  // namespace retryd
