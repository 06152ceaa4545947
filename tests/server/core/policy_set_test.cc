#include "server/core/policy_set.h"

#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/policy.h"
#include "tests/testing/status_matchers.h"

namespace retryd {
namespace {

using ::testing::StartsWith;
using testing::IsOk;
using testing::StatusIs;

// A policy whose max_attempts identifies it in assertions.
Policy Named(std::string name, int id) {
  Policy p;
  p.name = std::move(name);
  p.max_attempts = id;
  return p;
}

PolicySet MustCreate(std::vector<Policy> policies) {
  absl::StatusOr<PolicySet> set = PolicySet::Create(std::move(policies));
  EXPECT_THAT(set, IsOk());
  return set.ok() ? *std::move(set) : PolicySet();
}

TEST(PolicySetTest, ResolvesExactThenLongestPrefixThenDefault) {
  const PolicySet set = MustCreate({Named("default", 1), Named("bill*", 2), Named("billing.*", 3),
                                    Named("billing.eu.*", 4), Named("billing.invoices", 5),
                                    Named("orders", 6)});
  struct Case {
    const char* service;
    int want;
  } cases[] = {
      {"orders", 6},
      {"billing.invoices", 5},     // Exact beats the prefixes.
      {"billing.refunds", 3},      // billing.*
      {"billing.eu.refunds", 4},   // The longest prefix.
      {"billing.eu", 3},           // billing.eu.* needs the dot.
      {"billing", 2},              // billing.* needs the dot; bill* matches.
      {"bill", 2},                 // '*' may match nothing.
      {"billingx", 2},
      {"orders.eu", 1},            // Exact names are not prefixes.
      {"shipping", 1},
      {"", 1},
  };
  for (const Case& c : cases) EXPECT_EQ(set.Resolve(c.service).max_attempts, c.want) << c.service;
}

TEST(PolicySetTest, PrefixOrderInTheConfigDoesNotMatter) {
  const PolicySet set = MustCreate({Named("billing.eu.*", 4), Named("billing.*", 3)});
  EXPECT_EQ(set.Resolve("billing.eu.x").max_attempts, 4);
  EXPECT_EQ(set.Resolve("billing.us").max_attempts, 3);
}

TEST(PolicySetTest, FallsBackToTheBuiltInDefault) {
  const PolicySet set = MustCreate({Named("orders", 6)});
  const Policy& p = set.Resolve("billing");
  EXPECT_EQ(p.name, "default");
  EXPECT_EQ(p.max_attempts, 5);
  EXPECT_EQ(p.backoff.initial, absl::Seconds(2));

  const PolicySet empty;
  EXPECT_EQ(empty.Resolve("anything").max_attempts, 5);
  EXPECT_TRUE(empty.policies().empty());
}

TEST(PolicySetTest, KeepsTheGivenOrder) {
  const PolicySet set = MustCreate({Named("b", 1), Named("a.*", 2), Named("default", 3)});
  ASSERT_EQ(set.policies().size(), 3u);
  EXPECT_EQ(set.policies()[0].name, "b");
  EXPECT_EQ(set.policies()[1].name, "a.*");
  EXPECT_EQ(set.policies()[2].name, "default");
}

TEST(PolicySetTest, CopiesAndMovesAreIndependentValues) {
  PolicySet copy;
  {
    const PolicySet original = MustCreate({Named("a.*", 2), Named("default", 3)});
    copy = original;
  }
  EXPECT_EQ(copy.Resolve("a.b").max_attempts, 2);
  EXPECT_EQ(&copy.Resolve("a.b"), &copy.policies()[0]);
  PolicySet moved = std::move(copy);
  EXPECT_EQ(moved.Resolve("x").max_attempts, 3);
}

TEST(PolicySetTest, RejectsDuplicateNames) {
  EXPECT_THAT(PolicySet::Create({Named("a", 1), Named("b.*", 2), Named("a", 3)}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       StartsWith("policies[2].name: duplicate policy name \"a\"")));
  EXPECT_THAT(PolicySet::Create({Named("b.*", 1), Named("b.*", 2)}),
              StatusIs(absl::StatusCode::kInvalidArgument, StartsWith("policies[1].name: ")));
  EXPECT_THAT(PolicySet::Create({Named("default", 1), Named("default", 2)}),
              StatusIs(absl::StatusCode::kInvalidArgument, StartsWith("policies[1].name: ")));
  // "b*" and "b.*" are different patterns.
  EXPECT_THAT(PolicySet::Create({Named("b*", 1), Named("b.*", 2), Named("b", 3)}), IsOk());
}

TEST(PolicySetTest, ValidatesNames) {
  const std::string max_service(64, 'a');
  for (const std::string& name :
       {std::string("default"), std::string("a"), std::string("0"), max_service,
        max_service + ".*", max_service + "*", std::string("a-b_c.d"), std::string("billing.*"),
        std::string("billing*")}) {
    EXPECT_TRUE(IsValidPolicyName(name)) << name;
    EXPECT_THAT(PolicySet::Create({Named(name, 1)}), IsOk()) << name;
  }
  for (const std::string& name :
       {std::string(""), std::string("Billing"), std::string("-x"), std::string(".x"),
        std::string("_x"), std::string("a b"), std::string("a/b"), max_service + "a",
        std::string("*"), std::string(".*"), std::string("billing.**"), std::string("bil*ing"),
        std::string("billing.*x"), std::string("*.billing"), std::string("default ")}) {
    EXPECT_FALSE(IsValidPolicyName(name)) << name;
    EXPECT_THAT(PolicySet::Create({Named("ok", 1), Named(name, 2)}),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         StartsWith("policies[1].name: must be \"default\"")))
        << name;
  }
}

TEST(PolicySetTest, ServiceNames) {
  EXPECT_TRUE(IsValidServiceName("billing.invoices-v2_eu"));
  EXPECT_TRUE(IsValidServiceName("9lives"));
  EXPECT_FALSE(IsValidServiceName("billing.*"));
  EXPECT_FALSE(IsValidServiceName(""));
  EXPECT_FALSE(IsValidServiceName(std::string(65, 'a')));
}

}  // namespace
}  // namespace retryd
