#include "server/core/classifier.h"

#include <string>

#include "gtest/gtest.h"
#include "server/core/envelope.h"
#include "server/core/policy.h"

namespace retryd {
namespace {

constexpr ErrorClass kU = ErrorClass::kUnspecified;
constexpr ErrorClass kT = ErrorClass::kTransient;
constexpr ErrorClass kR = ErrorClass::kRecoverable;
constexpr ErrorClass kP = ErrorClass::kPermanent;

Failure F(std::string code, ErrorClass cls = kU, int http = 0) {
  Failure f;
  f.error_code = std::move(code);
  f.error_class = cls;
  f.http_status = http;
  return f;
}

// Rules listed shortest prefix first, so "longest prefix wins" cannot come from the order.
Policy RulesPolicy() {
  Policy p;
  p.rules = {{"UPSTREAM_*", kT},
             {"UPSTREAM_AUTH_*", kP},
             {"UPSTREAM_AUTH_EXPIRED", kT},
             {"DB_DEADLOCK", kT},
             {"SCHEMA_INVALID", kP},
             {"QUOTA_EXCEEDED", kR}};
  p.unclassified = kR;  // Differs from every built-in answer below.
  return p;
}

struct Case {
  const char* name;
  Failure failure;
  ErrorClass want;
};

TEST(ClassifierTest, FollowsTheDocumentedOrder) {
  const Policy p = RulesPolicy();
  const Case cases[] = {
      // 1. The worker's class wins over everything.
      {"explicit beats exact rule", F("SCHEMA_INVALID", kT), kT},
      {"explicit beats prefix rule", F("UPSTREAM_TIMEOUT", kP), kP},
      {"explicit beats lease expiry", F("LEASE_EXPIRED", kP), kP},
      {"explicit beats http", F("", kR, 400), kR},
      // 2. Rules: exact first, then the longest prefix.
      {"exact rule", F("DB_DEADLOCK"), kT},
      {"exact beats longer prefix", F("UPSTREAM_AUTH_EXPIRED"), kT},
      {"longest prefix", F("UPSTREAM_AUTH_DENIED"), kP},
      {"shorter prefix", F("UPSTREAM_TIMEOUT"), kT},
      {"prefix matches itself plus nothing", F("UPSTREAM_"), kT},
      {"prefix needs the whole prefix", F("UPSTREAM"), kR /* unclassified */},
      {"rules are case-sensitive", F("db_deadlock", kU, 503), kT /* by http */},
      {"rule beats transient http", F("SCHEMA_INVALID", kU, 503), kP},
      {"rule beats permanent http", F("DB_DEADLOCK", kU, 400), kT},
      {"rule beats unclassified", F("QUOTA_EXCEEDED"), kR},
      // 3. Built-in LEASE_EXPIRED.
      {"lease expired", F("LEASE_EXPIRED"), kT},
      {"lease expired beats http", F("LEASE_EXPIRED", kU, 400), kT},
      // 4. HTTP status.
      {"unknown code, http 503", F("SOMETHING", kU, 503), kT},
      {"no code, http 404", F("", kU, 404), kP},
      // 5. Unclassified.
      {"nothing matches", F("SOMETHING"), kR},
      {"empty failure", F(""), kR},
  };
  for (const Case& c : cases) EXPECT_EQ(Classify(c.failure, p), c.want) << c.name;
}

TEST(ClassifierTest, HttpStatusTable) {
  Policy p;
  p.unclassified = kR;
  for (int status : {408, 429, 500, 502, 503, 504}) {
    EXPECT_EQ(Classify(F("", kU, status), p), kT) << status;
  }
  for (int status : {400, 401, 403, 404, 409, 410, 413, 422, 451, 499, 501, 505}) {
    EXPECT_EQ(Classify(F("", kU, status), p), kP) << status;
  }
  for (int status : {0, 100, 200, 204, 302, 399, 506, 507, 511, 599, 600, -1}) {
    EXPECT_EQ(Classify(F("", kU, status), p), kR) << status;
  }
}

TEST(ClassifierTest, PolicyRuleCanOverrideLeaseExpired) {
  Policy p;
  p.rules = {{"LEASE_*", kP}};
  EXPECT_EQ(Classify(F("LEASE_EXPIRED"), p), kP);
}

TEST(ClassifierTest, UnclassifiedDefaultsToTransient) {
  Policy p;
  EXPECT_EQ(Classify(F("WHATEVER"), p), kT);
  p.unclassified = kP;
  EXPECT_EQ(Classify(F("WHATEVER"), p), kP);
  p.unclassified = kU;  // Never answered: falls back to TRANSIENT.
  EXPECT_EQ(Classify(F("WHATEVER"), p), kT);
}

TEST(ClassifierTest, CatchAllPrefixRule) {
  Policy p;
  p.rules = {{"*", kP}, {"NET_*", kT}};
  EXPECT_EQ(Classify(F("NET_RESET"), p), kT);
  EXPECT_EQ(Classify(F("ANYTHING", kU, 503), p), kP);
}

TEST(ClassifierTest, RuleMatches) {
  EXPECT_TRUE(RuleMatches("A", "A"));
  EXPECT_FALSE(RuleMatches("A", "AB"));
  EXPECT_TRUE(RuleMatches("A*", "A"));
  EXPECT_TRUE(RuleMatches("A*", "ABC"));
  EXPECT_FALSE(RuleMatches("A*", "BA"));
  EXPECT_TRUE(RuleMatches("*", ""));
}

}  // namespace
}  // namespace retryd
