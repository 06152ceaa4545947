// retryctl's commands over the console's API additions, against the real retryd (in-process
// CLI): `dlq histogram` (table, -o json, flags and usage errors), the audit filter flags, and
// `services` paging; plus the histogram table's layout.
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/cli/app.h"
#include "client/cli/dlq_histogram_cmd.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/testing/requests.h"
#include "tests/testing/server_process.h"
#include "tests/testing/server_test.h"

namespace retryd::cli {
namespace {

using ::retryd::testing::Context;
using ::retryd::testing::FirstFailure;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

constexpr int kUsage = 2;

struct Result {
  int code = -1;
  std::string out;
  std::string err;
};

class ConsoleCmdsTest : public ::retryd::testing::ServerTest {
 protected:
  void SetUp() override {
    if (getenv("RETRYD_BIN") == nullptr) GTEST_SKIP() << "RETRYD_BIN is not set";
    StartServer(retryd::testing::kFastPolicyConfig);
  }

  Result Run(std::vector<std::string> args) {
    args.insert(args.begin(), {"retryctl", "--server", server_->address()});
    std::istringstream in;
    std::ostringstream out;
    std::ostringstream err;
    Result r;
    r.code = RunRetryctl(args, in, out, err);
    r.out = out.str();
    r.err = err.str();
    return r;
  }

  void Dead(const std::string& service, const std::string& id) {
    v1::ReportFailureRequest req = FirstFailure(service, id, "BAD_SCHEMA");
    req.mutable_failure()->set_error_class(v1::PERMANENT);
    v1::ReportFailureResponse resp;
    ASSERT_TRUE(retryd::testing::Report(*retry_, req, &resp).ok());
  }
};

TEST_F(ConsoleCmdsTest, HistogramTableAndJson) {
  Dead("billing", "b1");
  Dead("billing", "b2");
  Dead("inventory", "i1");
  Result r = Run({"dlq", "histogram", "--since", "2h", "--bucket", "10m"});
  ASSERT_EQ(r.code, 0) << r.err;
  std::istringstream lines(r.out);
  std::string header;
  std::getline(lines, header);
  EXPECT_THAT(header, StartsWith("BUCKET_START"));
  EXPECT_THAT(header, HasSubstr("billing"));
  EXPECT_THAT(header, HasSubstr("inventory"));
  EXPECT_THAT(header, HasSubstr("TOTAL"));
  int rows = 0;
  int sums[3] = {0, 0, 0};  // billing, inventory, total over every bucket.
  std::string line;
  while (std::getline(lines, line)) {
    ++rows;
    std::istringstream cells(line);
    std::string start;
    cells >> start;
    for (int& sum : sums) {
      int n = 0;
      cells >> n;
      sum += n;
    }
  }
  // 2 h in 10-minute buckets; a 13th, starting at the CLI's now (after the dead letters), when
  // the server's now is past the CLI's: where the three fall depends on that race, the sums do not.
  EXPECT_TRUE(rows == 12 || rows == 13) << r.out;
  EXPECT_EQ(sums[0], 2) << r.out;
  EXPECT_EQ(sums[1], 1) << r.out;
  EXPECT_EQ(sums[2], 3) << r.out;

  r = Run({"-o", "json", "dlq", "histogram", "--service", "billing", "--since", "1h", "--bucket",
           "30m"});
  ASSERT_EQ(r.code, 0) << r.err;
  v1::GetDeadLetterHistogramResponse resp;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &resp).ok()) << r.out;
  EXPECT_TRUE(resp.bucket_starts_size() == 2 || resp.bucket_starts_size() == 3);
  ASSERT_EQ(resp.series_size(), 1);
  EXPECT_EQ(resp.series(0).service(), "billing");
  EXPECT_EQ(resp.series(0).total(), 2);
}

TEST_F(ConsoleCmdsTest, HistogramBadFlags) {
  Result r = Run({"dlq", "histogram", "--bucket", "soon"});
  EXPECT_EQ(r.code, kUsage);
  EXPECT_THAT(r.err, HasSubstr("--bucket"));
  r = Run({"dlq", "histogram", "--since", "yesterday-ish"});
  EXPECT_EQ(r.code, kUsage);
  EXPECT_THAT(r.err, HasSubstr("--since"));
  // The server's refusal, named.
  r = Run({"dlq", "histogram", "--bucket", "1s"});
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("bucket_width"));
  EXPECT_THAT(r.err, HasSubstr("INVALID_ARGUMENT"));
  EXPECT_EQ(r.out, "");
}

TEST_F(ConsoleCmdsTest, AuditFilterFlags) {
  for (const char* service : {"billing", "inventory"}) {
    v1::SetCircuitOverrideRequest req;
    req.set_service(service);
    req.set_override(v1::FORCE_OPEN);
    v1::SetCircuitOverrideResponse resp;
    ASSERT_TRUE(admin_->SetCircuitOverride(Context().get(), req, &resp).ok());
  }
  Result r = Run({"audit", "--method", "SetCircuitOverride", "--target", "inventory"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("inventory"));
  EXPECT_THAT(r.out, Not(HasSubstr("billing")));
  r = Run({"audit", "list", "--result", "NOT_FOUND", "--since", "1h"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("No audit events found."));
  // The next-page hint repeats the filters.
  r = Run({"audit", "--method", "SetCircuitOverride", "--page-size", "1"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("retryctl audit --method SetCircuitOverride --page-size 1 "
                               "--page-token"));
  r = Run({"audit", "--since", "whenever"});
  EXPECT_EQ(r.code, kUsage);
  EXPECT_THAT(r.err, HasSubstr("--since"));
}

TEST_F(ConsoleCmdsTest, ServicesPaging) {
  for (const char* s : {"alpha", "bravo", "charlie"}) Dead(s, "m1");
  Result r = Run({"services", "--page-size", "2"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("alpha"));
  EXPECT_THAT(r.out, HasSubstr("bravo"));
  EXPECT_THAT(r.out, Not(HasSubstr("charlie")));
  EXPECT_THAT(r.err, HasSubstr("retryctl services --page-size 2 --page-token"));
  r = Run({"services", "list", "--all", "--page-size", "1"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("charlie"));
  r = Run({"services"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("charlie"));
  EXPECT_THAT(r.err, Not(HasSubstr("Next page")));
  r = Run({"circuit", "list"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("charlie"));
}

TEST(DlqHistogramFormat, OneRowPerBucketOneColumnPerService) {
  v1::GetDeadLetterHistogramResponse resp;
  resp.add_bucket_starts()->set_seconds(1700000000);
  resp.add_bucket_starts()->set_seconds(1700000600);
  v1::DeadLetterSeries* a = resp.add_series();
  a->set_service("billing");
  a->add_counts(3);
  a->add_counts(0);
  v1::DeadLetterSeries* b = resp.add_series();
  b->set_service("mail.out");
  b->add_counts(1);
  b->add_counts(12);
  EXPECT_EQ(FormatDeadLetterHistogram(resp, true),
            "BUCKET_START          billing  mail.out  TOTAL\n"
            "2023-11-14T22:13:20Z  3        1         4\n"
            "2023-11-14T22:23:20Z  0        12        12\n");
  EXPECT_EQ(FormatDeadLetterHistogram(resp, false),
            "2023-11-14T22:13:20Z  3  1   4\n"
            "2023-11-14T22:23:20Z  0  12  12\n");
}

}  // namespace
}  // namespace retryd::cli
