// Golden tests of the `retryctl circuit` formatters and the budget column, and usage errors of
// the circuit commands (run in-process; no server needed).
#include "client/cli/circuit_cmd.h"

#include <sstream>
#include <string>
#include <vector>

#include "client/cli/app.h"
#include "client/cli/common.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace retryd::cli {
namespace {

// 2025-01-02T03:04:05Z
constexpr int64_t kT0 = 1735787045;

TEST(CircuitTableTest, GoldenOpen) {
  retryd::v1::GetCircuitResponse c;
  c.set_state(retryd::v1::OPEN);
  c.mutable_since()->set_seconds(kT0);
  c.mutable_next_probe_at()->set_seconds(kT0 + 60);
  c.set_failure_rate(0.5);
  EXPECT_EQ(FormatCircuitTable("orders", c, true),
            "SERVICE  STATE  SINCE                 NEXT_PROBE            FAILURE_RATE\n"
            "orders   OPEN   2025-01-02T03:04:05Z  2025-01-02T03:05:05Z  50.0%\n");
}

TEST(CircuitTableTest, GoldenClosedHasNoProbe) {
  retryd::v1::GetCircuitResponse c;
  c.set_state(retryd::v1::CLOSED);
  c.mutable_since()->set_seconds(kT0);
  EXPECT_EQ(FormatCircuitTable("orders", c, false),
            "orders  CLOSED  2025-01-02T03:04:05Z  -  0.0%\n");
}

TEST(CircuitListTableTest, Golden) {
  retryd::v1::ListServicesResponse r;
  auto* a = r.add_services();
  a->set_service("billing");
  a->set_circuit_state(retryd::v1::HALF_OPEN);
  a->set_budget_remaining(120);
  auto* b = r.add_services();
  b->set_service("orders");
  b->set_circuit_state(retryd::v1::CLOSED);
  b->set_budget_remaining(-1);
  EXPECT_EQ(FormatCircuitListTable(r, true),
            "SERVICE  CIRCUIT    BUDGET_LEFT\n"
            "billing  HALF_OPEN  120\n"
            "orders   CLOSED     unlimited\n");
  EXPECT_EQ(FormatCircuitListTable(retryd::v1::ListServicesResponse(), true),
            "SERVICE  CIRCUIT  BUDGET_LEFT\n");
}

TEST(OverrideTableTest, Golden) {
  retryd::v1::SetCircuitOverrideResponse r;
  r.set_state(retryd::v1::OPEN);
  r.set_override(retryd::v1::FORCE_OPEN);
  EXPECT_EQ(FormatOverrideTable("orders", r, true),
            "SERVICE  STATE  OVERRIDE\n"
            "orders   OPEN   FORCE_OPEN\n");
}

TEST(BudgetCellTest, UnlimitedOrTheNumber) {
  EXPECT_EQ(BudgetCell(-1), "unlimited");
  EXPECT_EQ(BudgetCell(0), "0");
  EXPECT_EQ(BudgetCell(600), "600");
}

int RunCommand(std::vector<std::string> args, std::string* err) {
  args.insert(args.begin(), "retryctl");
  std::istringstream in;
  std::ostringstream out, errs;
  const int code = RunRetryctl(args, in, out, errs);
  *err = errs.str();
  return code;
}

TEST(CircuitUsageTest, MissingOrExtraArgumentsAreUsageErrors) {
  std::string err;
  EXPECT_EQ(RunCommand({"circuit"}, &err), kExitUsage);
  EXPECT_EQ(RunCommand({"circuit", "get"}, &err), kExitUsage);
  EXPECT_THAT(err, ::testing::HasSubstr("SERVICE"));
  EXPECT_EQ(RunCommand({"circuit", "open"}, &err), kExitUsage);
  EXPECT_EQ(RunCommand({"circuit", "close", "a", "b"}, &err), kExitUsage);
  EXPECT_EQ(RunCommand({"circuit", "auto", "orders", "--note"}, &err), kExitUsage);
  EXPECT_EQ(RunCommand({"circuit", "flip", "orders"}, &err), kExitUsage);
}

}  // namespace
}  // namespace retryd::cli
