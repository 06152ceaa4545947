// Token validation (every error names its field), lookup by SHA-256 digest, and the service list
// of WORKER tokens (exact names and "prefix.*" patterns).
#include "server/auth/token_table.h"

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace retryd {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
using testing::IsOk;
using testing::StatusIs;

constexpr absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;

// sha256("s3cret"), as `printf %s s3cret | sha256sum` prints it.
constexpr char kSecretDigest[] =
    "1ec1c26b50d5d3c58d9583181af8076655fe00756bf7285940ba3670f99fcba0";

std::string HexDigest(const std::string& token) {
  std::string hex;
  for (uint8_t b : Sha256(token)) absl::StrAppend(&hex, absl::Hex(b, absl::kZeroPad2));
  return hex;
}

absl::StatusOr<TokenTable> FromJson(const std::string& json) {
  v1::AuthConfig auth;
  const auto parsed = google::protobuf::util::JsonStringToMessage(json, &auth);
  EXPECT_TRUE(parsed.ok()) << json;
  return TokenTable::FromConfig(auth, "auth");
}

std::string Token(const std::string& fields) {
  return absl::StrCat(R"({"name": "t", "role": "WORKER", "sha256": ")", HexDigest("t"), "\"",
                      fields.empty() ? "" : ", ", fields, "}");
}

TEST(Sha256Test, MatchesSha256sum) {
  EXPECT_EQ(HexDigest("s3cret"), kSecretDigest);
}

TEST(TokenTableTest, FindsTheTokenWhoseDigestMatches) {
  auto table = FromJson(absl::StrCat(R"({"tokens": [
      {"name": "ops", "sha256": ")", kSecretDigest, R"(", "role": "OPERATOR"},
      {"name": "billing-worker", "sha256": ")", HexDigest("w1"), R"(", "role": "WORKER",
       "services": ["billing.*", "payments"]}]})"));
  ASSERT_THAT(table, IsOk());
  EXPECT_EQ(table->size(), 2u);
  const TokenEntry* ops = table->Find("s3cret");
  ASSERT_NE(ops, nullptr);
  EXPECT_EQ(ops->name, "ops");
  EXPECT_EQ(ops->role, Role::kOperator);
  const TokenEntry* worker = table->Find("w1");
  ASSERT_NE(worker, nullptr);
  EXPECT_EQ(worker->name, "billing-worker");
  EXPECT_EQ(worker->role, Role::kWorker);

  EXPECT_EQ(table->Find(""), nullptr);
  EXPECT_EQ(table->Find("s3cre"), nullptr);
  EXPECT_EQ(table->Find("s3cret "), nullptr);
  EXPECT_EQ(table->Find(kSecretDigest), nullptr);  // The digest is not the token.
  EXPECT_EQ(table->Find(std::string(kMaxBearerTokenBytes + 1, 'x')), nullptr);
}

TEST(TokenTableTest, AcceptsUpperCaseHex) {
  std::string upper = kSecretDigest;
  for (char& c : upper) c = absl::ascii_toupper(c);
  auto table = FromJson(absl::StrCat(R"({"tokens": [{"name": "ops", "sha256": ")", upper,
                                     R"(", "role": "OPERATOR"}]})"));
  ASSERT_THAT(table, IsOk());
  EXPECT_NE(table->Find("s3cret"), nullptr);
}

TEST(TokenTableTest, NoTokensIsAnEmptyTable) {
  auto table = FromJson("{}");
  ASSERT_THAT(table, IsOk());
  EXPECT_TRUE(table->empty());
  EXPECT_EQ(table->Find("anything"), nullptr);
}

TEST(TokenTableTest, ErrorsNameTheField) {
  struct Case {
    std::string tokens;
    std::string field;
  };
  const std::string ok = Token("");
  const Case cases[] = {
      {absl::StrCat(ok, R"(, {"role": "WORKER", "sha256": ")", HexDigest("x"), "\"}"),
       "auth.tokens[1].name: must be 1 to 64 characters"},
      {absl::StrCat(R"({"name": "has space", "role": "WORKER", "sha256": ")", HexDigest("x"),
                    "\"}"),
       "auth.tokens[0].name: must be"},
      {absl::StrCat(ok, R"(, {"name": "t", "role": "WORKER", "sha256": ")", HexDigest("x"),
                    "\"}"),
       "auth.tokens[1].name: duplicate token name \"t\""},
      {absl::StrCat(ok, R"(, {"name": "u", "role": "WORKER", "sha256": "abc"})"),
       "auth.tokens[1].sha256: must be the 64 hex digits"},
      {absl::StrCat(R"({"name": "u", "role": "WORKER", "sha256": ")",
                    std::string(63, 'a'), "g\"}"),
       "auth.tokens[0].sha256: must be the 64 hex digits"},
      {absl::StrCat(ok, R"(, {"name": "u", "role": "WORKER", "sha256": ")", HexDigest("t"),
                    "\"}"),
       "auth.tokens[1].sha256: the same digest as an earlier token"},
      {absl::StrCat(R"({"name": "u", "sha256": ")", HexDigest("x"), "\"}"),
       "auth.tokens[0].role: must be WORKER or OPERATOR"},
      {absl::StrCat(R"({"name": "u", "role": "OPERATOR", "services": ["a"], "sha256": ")",
                    HexDigest("x"), "\"}"),
       "auth.tokens[0].services: only a WORKER token"},
      {Token(R"("services": ["billing", "Billing"])"),
       "auth.tokens[0].services[1]: must be a service name"},
      {Token(R"("services": ["billing*"])"), "auth.tokens[0].services[0]: must be"},
      {Token(R"("services": ["*"])"), "auth.tokens[0].services[0]: must be"},
      {Token(R"("services": [""])"), "auth.tokens[0].services[0]: must be"},
  };
  for (const Case& c : cases) {
    EXPECT_THAT(FromJson(absl::StrCat(R"({"tokens": [)", c.tokens, "]}")),
                StatusIs(kInvalid, StartsWith(c.field)))
        << c.tokens;
  }
}

TEST(TokenTableTest, ErrorsNeverShowTheDigest) {
  auto table = FromJson(absl::StrCat(R"({"tokens": [{"name": "a", "role": "WORKER", "sha256": ")",
                                     kSecretDigest, R"("}, {"name": "b", "role": "WORKER",
                                     "sha256": ")", kSecretDigest, R"("}]})"));
  EXPECT_THAT(table, StatusIs(kInvalid, Not(HasSubstr(kSecretDigest))));
}

TEST(TokenEntryTest, WorkerServicesAreExactNamesOrPrefixPatterns) {
  TokenEntry worker;
  worker.role = Role::kWorker;
  worker.services = {"billing.*", "payments"};
  EXPECT_TRUE(worker.restricted());
  EXPECT_TRUE(worker.MayActFor("payments"));
  EXPECT_TRUE(worker.MayActFor("billing.invoices"));
  EXPECT_TRUE(worker.MayActFor("billing.eu.refunds"));
  EXPECT_FALSE(worker.MayActFor("billing"));        // "billing.*" is what is under billing.
  EXPECT_FALSE(worker.MayActFor("billing."));
  EXPECT_FALSE(worker.MayActFor("billingx.invoices"));
  EXPECT_FALSE(worker.MayActFor("payments.eu"));
  EXPECT_FALSE(worker.MayActFor("shipping"));
  EXPECT_FALSE(worker.MayActFor(""));

  TokenEntry any_service;
  any_service.role = Role::kWorker;
  EXPECT_FALSE(any_service.restricted());
  EXPECT_TRUE(any_service.MayActFor("shipping"));

  TokenEntry op;
  op.role = Role::kOperator;
  EXPECT_TRUE(op.MayActFor("anything"));
}

}  // namespace
}  // namespace retryd
