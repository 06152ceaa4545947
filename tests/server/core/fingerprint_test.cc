#include "server/core/fingerprint.h"

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace retryd {
namespace {

TEST(NormalizeErrorMessageTest, StripsIdsOfEveryKindToOnePlaceholderAndQuotedValues) {
  EXPECT_EQ(NormalizeErrorMessage("order 123 not found"), "order <id> not found");
  EXPECT_EQ(NormalizeErrorMessage("timed out after 30s"), "timed out after <id>");
  EXPECT_EQ(NormalizeErrorMessage("user 3f2b8c1e-9a4d-4e2f-8b7a-1c2d3e4f5a6b missing"),
            "user <id> missing");
  EXPECT_EQ(NormalizeErrorMessage("object 0xDEADBEEF at deadbeef01"), "object <id> at <id>");
  EXPECT_EQ(NormalizeErrorMessage("field 'sku' invalid: \"a b c\""), "field <q> invalid: <q>");
  EXPECT_EQ(NormalizeErrorMessage("  many   spaces\there "), "many spaces here");
  EXPECT_EQ(NormalizeErrorMessage("unterminated 'quote"), "unterminated 'quote");
  EXPECT_EQ(NormalizeErrorMessage(""), "");
}

TEST(NormalizeErrorMessageTest, EveryKindOfIdBecomesTheSamePlaceholder) {
  // Decimal, hex with and without letters, hex letters only, UUID, mixed with a prefix.
  for (absl::string_view id : {"44173025", "a3f9c2d1", "deadbeef", "ord_9f1c", "req-42",
                               "0x1F", "3f2b8c1e-9a4d-4e2f-8b7a-1c2d3e4f5a6b", "ORD_77AB"}) {
    EXPECT_EQ(NormalizeErrorMessage(absl::StrCat("order ", id, " not found")),
              "order <id> not found")
        << id;
  }
  // Words stay words, also short ones made of hex letters and hyphenated ones.
  EXPECT_EQ(NormalizeErrorMessage("bad face added to read-only cafe_db"),
            "bad face added to read-only cafe_db");
  // Punctuation other than '_' and '-' separates tokens.
  EXPECT_EQ(NormalizeErrorMessage("GET /items/123?v=2 (10.0.0.1:443)"),
            "GET /items/<id>?v=<id> (<id>.<id>.<id>.<id>:<id>)");
}

TEST(FailureFingerprintTest, OrderIdsOfDifferentShapesGroupTogether) {
  const auto fp = [](absl::string_view message) {
    return FailureFingerprint("orders", ErrorClass::kPermanent, "NOT_FOUND", message);
  };
  const std::string base = fp("order a3f9c2d1 not found");
  EXPECT_EQ(base, fp("order 44173025 not found"));
  EXPECT_EQ(base, fp("order ord_9f1c not found"));
  EXPECT_EQ(base, fp("order 7f9c0a3e-1111-4222-8333-944455556666 not found"));
  EXPECT_NE(base, fp("customer a3f9c2d1 not found"));
}

TEST(FailureFingerprintTest, MessagesDifferingOnlyInIdsAndNumbersGroupTogether) {
  const auto fp = [](absl::string_view message) {
    return FailureFingerprint("inventory", ErrorClass::kTransient, "UPSTREAM_TIMEOUT", message);
  };
  const std::string base = fp("GET /items/123 timed out after 30000 ms (request 9f8e7d6c5b)");
  EXPECT_EQ(base, fp("GET /items/98765 timed out after 15 ms (request 0a1b2c3d4e)"));
  EXPECT_EQ(fp("sku 'ABC-1' unknown for tenant 7f9c0a3e-1111-4222-8333-944455556666"),
            fp("sku 'ZZZ' unknown for tenant 00000000-0000-4000-8000-000000000000"));
  EXPECT_EQ(fp("deadline 1.5s exceeded"), fp("deadline 22.75s exceeded"));
  EXPECT_TRUE(IsFingerprint(base)) << base;
}

TEST(FailureFingerprintTest, DifferentErrorsDoNotGroup) {
  const std::string base =
      FailureFingerprint("inventory", ErrorClass::kTransient, "UPSTREAM_TIMEOUT", "timed out");
  EXPECT_NE(base, FailureFingerprint("billing", ErrorClass::kTransient, "UPSTREAM_TIMEOUT",
                                     "timed out"));
  EXPECT_NE(base, FailureFingerprint("inventory", ErrorClass::kPermanent, "UPSTREAM_TIMEOUT",
                                     "timed out"));
  EXPECT_NE(base, FailureFingerprint("inventory", ErrorClass::kTransient, "UPSTREAM_RESET",
                                     "timed out"));
  EXPECT_NE(base, FailureFingerprint("inventory", ErrorClass::kTransient, "UPSTREAM_TIMEOUT",
                                     "connection refused"));
  // Field boundaries matter: ("ab", "c") is not ("a", "bc").
  EXPECT_NE(FailureFingerprint("ab", ErrorClass::kTransient, "c", "m"),
            FailureFingerprint("a", ErrorClass::kTransient, "bc", "m"));
}

TEST(FailureFingerprintTest, IsStableAcrossBuilds) {
  // A fingerprint is persisted and used in filters: it must never change for the same input.
  EXPECT_EQ(FailureFingerprint("svc", ErrorClass::kTransient, "E", "x 1"),
            FailureFingerprint("svc", ErrorClass::kTransient, "E", "x 2"));
  // FNV-1a 64 of "svc\x1f1\x1fE\x1fx <id>", computed independently.
  EXPECT_EQ(FailureFingerprint("svc", ErrorClass::kTransient, "E", "x 42"), "55c3261e4561508d");
}

TEST(IsFingerprintTest, AcceptsOnlySixteenLowercaseHexDigits) {
  EXPECT_TRUE(IsFingerprint("0123456789abcdef"));
  EXPECT_FALSE(IsFingerprint("0123456789ABCDEF"));
  EXPECT_FALSE(IsFingerprint("0123456789abcde"));
  EXPECT_FALSE(IsFingerprint("0123456789abcdeg"));
  EXPECT_FALSE(IsFingerprint(""));
}

}  // namespace
}  // namespace retryd
