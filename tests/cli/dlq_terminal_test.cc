// What retryctl does on a terminal, against the real retryd: the confirmation prompt of a purge
// or replay of more than 100 dead letters (answered through stdin), and the in-place progress
// bar of --watch. Runs the CLI in-process (RunRetryctl with a TerminalInfo), since a test has
// no pty to give the binary.
//
// An RPC the server does not implement yet (UNIMPLEMENTED, exit 76) skips the case.
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/cli/app.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/testing/requests.h"
#include "tests/testing/server_process.h"
#include "tests/testing/server_test.h"

namespace retryd::cli {
namespace {

using ::retryd::testing::FirstFailure;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr int kUnimplemented = 64 + 12;

struct Result {
  int code = -1;
  std::string out;
  std::string err;
};

class DlqTerminalTest : public ::retryd::testing::ServerTest {
 protected:
  void SetUp() override {
    if (getenv("RETRYD_BIN") == nullptr) GTEST_SKIP() << "RETRYD_BIN is not set";
    StartServer(retryd::testing::kFastPolicyConfig);
  }

  // Runs retryctl in-process with stdin and stderr on a "terminal"; `answer` is what is typed.
  Result Run(std::vector<std::string> args, const std::string& answer = "") {
    args.insert(args.begin(), {"retryctl", "--server", server_->address()});
    std::istringstream in(answer);
    std::ostringstream out;
    std::ostringstream err;
    TerminalInfo terminal;
    terminal.stdin_is_terminal = true;
    terminal.stderr_is_terminal = true;
    Result r;
    r.code = RunRetryctl(args, in, out, err, terminal);
    r.out = out.str();
    r.err = err.str();
    return r;
  }

  void SeedDeadLetters(const std::string& service, int count) {
    auto stub = server_->RetryStub();
    for (int i = 0; i < count; ++i) {
      v1::ReportFailureRequest req = FirstFailure(service, absl::StrCat("m-", i), "INVALID_SCHEMA");
      req.mutable_failure()->set_error_class(v1::PERMANENT);
      v1::ReportFailureResponse resp;
      ASSERT_TRUE(retryd::testing::Report(*stub, req, &resp).ok());
    }
  }

  int DeadCount(const std::string& service) {
    const Result r = Run({"-o", "json", "dlq", "list", "--service", service, "--all"});
    EXPECT_EQ(r.code, 0) << r.err;
    v1::ListDeadLettersResponse list;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &list).ok()) << r.out;
    return list.dead_letters_size();
  }
};

TEST_F(DlqTerminalTest, PurgeAsksAndOnlyYesPurges) {
  SeedDeadLetters("bulk", 101);
  Result r = Run({"dlq", "purge", "--service", "bulk"}, "n\n");
  if (r.code == kUnimplemented) GTEST_SKIP() << r.err;
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_THAT(r.err, AllOf(HasSubstr("Sample of the 101 dead letters to purge:\nSERVICE"),
                           HasSubstr("Purge 101 dead letters matching service=bulk? They cannot "
                                     "be recovered. [y/N] Aborted; nothing was changed.\n")));
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(DeadCount("bulk"), 101);

  r = Run({"dlq", "purge", "--service", "bulk"}, "y\n");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "Purged 101 dead letters (service=bulk).\n");
  EXPECT_EQ(DeadCount("bulk"), 0);
}

TEST_F(DlqTerminalTest, ReplayAsksThenDrawsAProgressBar) {
  SeedDeadLetters("big", 101);
  Result r = Run({"dlq", "replay", "--service", "big"}, "no\n");
  if (r.code == kUnimplemented) GTEST_SKIP() << r.err;
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_THAT(r.err, HasSubstr("Replay 101 dead letters matching service=big? [y/N] Aborted"));
  EXPECT_EQ(DeadCount("big"), 101);

  r = Run({"dlq", "replay", "--service", "big", "--max-per-second", "1000", "--watch",
           "--interval", "50ms"},
          "yes\n");
  EXPECT_EQ(r.code, 0) << r.err;
  // Redrawn in place, ending at 100 % with a newline.
  EXPECT_THAT(r.err, AllOf(HasSubstr("\rreplays/"),
                           HasSubstr(absl::StrCat("SUCCEEDED [", std::string(30, '#'),
                                                  "] 100% 101/101")),
                           HasSubstr("\x1b[K\n")));
  EXPECT_THAT(r.out, HasSubstr("State:                     SUCCEEDED"));
  EXPECT_EQ(DeadCount("big"), 0);
}

TEST_F(DlqTerminalTest, YesSkipsTheQuestion) {
  SeedDeadLetters("bulk", 101);
  const Result r = Run({"dlq", "purge", "--service", "bulk", "--yes"}, "n\n");
  if (r.code == kUnimplemented) GTEST_SKIP() << r.err;
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.err, Not(HasSubstr("[y/N]")));
  EXPECT_EQ(DeadCount("bulk"), 0);
}

}  // namespace
}  // namespace retryd::cli
