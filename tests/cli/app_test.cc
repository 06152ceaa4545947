// The command tree as a whole: usage errors exit 2, help and version exit 0, an unreachable
// server exits 78 with "Error:" on stderr. Runs in-process through RunRetryctl() and, when the
// harness sets RETRYCTL_BIN, through the real binary.
#include "client/cli/app.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/retryctl_runner.h"

extern char** environ;

namespace retryd::cli {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

using Result = ::retryd::testing::CliResult;
using ::retryd::testing::RunCli;
using ::retryd::testing::UnusedAddress;

// --- usage errors --------------------------------------------------------------------------

class UsageErrorTest : public ::testing::TestWithParam<std::vector<std::string>> {};

TEST_P(UsageErrorTest, ExitsTwoWithMessageAndHint) {
  // Never reach a server, even if parsing unexpectedly succeeded.
  std::vector<std::string> args = {"--server", UnusedAddress()};
  for (const std::string& a : GetParam()) args.push_back(a);
  const Result r = RunCli(args);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, AllOf(StartsWith("Error: "), HasSubstr("--help' for usage.")));
  EXPECT_THAT(r.out, IsEmpty());
}

const std::vector<std::string> kRf = {"report-failure", "--service", "s", "--message-id", "m"};

std::vector<std::string> Rf(std::vector<std::string> extra) {
  std::vector<std::string> args = kRf;
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

INSTANTIATE_TEST_SUITE_P(
    All, UsageErrorTest,
    ::testing::Values(std::vector<std::string>{},  // no command
                      std::vector<std::string>{"bogus"},
                      std::vector<std::string>{"services", "--bogus-flag"},
                      std::vector<std::string>{"services", "extra"},
                      std::vector<std::string>{"get", "only-service"},
                      std::vector<std::string>{"--timeout", "soon", "services"},
                      std::vector<std::string>{"--timeout", "0s", "services"},
                      std::vector<std::string>{"services", "--timeout=-1s"},
                      std::vector<std::string>{"-o", "yaml", "services"},
                      std::vector<std::string>{"dlq"},
                      std::vector<std::string>{"dlq", "purge"},
                      std::vector<std::string>{"dlq", "list", "--page-size", "-1"},
                      std::vector<std::string>{"dlq", "list", "--page-size", "many"},
                      std::vector<std::string>{"report-failure", "--service", "s"},
                      Rf({"--payload", "x", "--payload-file", "y"}),
                      Rf({"--header", "novalue"}),
                      Rf({"--class", "fatal"}),
                      Rf({"--retry-after", "-5s"}),
                      Rf({"--attempt", "-1"}),
                      Rf({"--http-status", "abc"}),
                      std::vector<std::string>{"lease"},
                      std::vector<std::string>{"lease", "--service", "s",
                                               "--visibility-timeout", "0s"},
                      std::vector<std::string>{"lease", "--service", "s", "--wait", "x"},
                      std::vector<std::string>{"success", "--service", "s"},
                      std::vector<std::string>{"health", "--service-name"}));

TEST(UsageMessageTest, NegativeIntegerIsExplainedReadably) {
  const Result r = RunCli({"--server", UnusedAddress(), "dlq", "list", "--page-size", "-1"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, StartsWith("Error: --page-size: \"-1\" is not a non-negative integer\n"));
}

TEST(HelpTest, HelpExitsZeroAndPrintsUsageToStdout) {
  Result r = RunCli({"--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, AllOf(HasSubstr("Usage: retryctl"), HasSubstr("dlq"),
                           HasSubstr("report-failure"), HasSubstr("64+N")));
  EXPECT_THAT(r.err, IsEmpty());

  r = RunCli({"dlq", "list", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, AllOf(HasSubstr("retryctl dlq list"), HasSubstr("--page-size"),
                           HasSubstr("--all")));

  r = RunCli({"report-failure", "-h"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, AllOf(HasSubstr("--lease-token"), HasSubstr("--retry-after")));
}

TEST(VersionTest, CommandAndFlag) {
  Result r = RunCli({"version"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, absl::StrCat("retryctl ", RetryctlVersion(), " (gRPC ", "1.51.1",
                                ", protobuf 3.21.12)\n"));
  r = RunCli({"version", "-o", "json"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, AllOf(StartsWith("{"), HasSubstr("\"version\": \"" + RetryctlVersion()),
                           HasSubstr("\"grpcVersion\"")));
  r = RunCli({"--version"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, RetryctlVersion() + "\n");
}

// --- local failures ------------------------------------------------------------------------

TEST(LocalFailureTest, UnreadablePayloadFileExitsOneBeforeAnyCall) {
  const Result r = RunCli(Rf({"--payload-file", "/nonexistent/dir/payload.bin", "--server",
                           UnusedAddress()}));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, AllOf(StartsWith("Error: "), HasSubstr("/nonexistent/dir/payload.bin")));
}

// --- unreachable server --------------------------------------------------------------------

class UnreachableTest : public ::testing::TestWithParam<std::vector<std::string>> {};

TEST_P(UnreachableTest, ExitsSeventyEightWithErrorOnStderr) {
  std::vector<std::string> args = {"--server", UnusedAddress(), "--timeout", "2s"};
  for (const std::string& a : GetParam()) args.push_back(a);
  const auto start = std::chrono::steady_clock::now();
  const Result r = RunCli(args, "payload from stdin");
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.exit_code, 78) << r.err;
  EXPECT_THAT(r.err, AllOf(StartsWith("Error: "), HasSubstr("(code=UNAVAILABLE")));
  EXPECT_THAT(r.out, IsEmpty());
  EXPECT_LT(elapsed, std::chrono::seconds(10));
}

INSTANTIATE_TEST_SUITE_P(
    All, UnreachableTest,
    ::testing::Values(std::vector<std::string>{"services"},
                      std::vector<std::string>{"services", "list", "-o", "json"},
                      std::vector<std::string>{"get", "s", "m"},
                      std::vector<std::string>{"dlq", "list", "--all"},
                      Rf({"--payload-file", "-"}),
                      std::vector<std::string>{"lease", "--service", "s"},
                      std::vector<std::string>{"success", "--service", "s", "--lease-token", "t"},
                      std::vector<std::string>{"health"}));

TEST(EnvironmentTest, ServerComesFromRetrydAddrUnlessTheFlagIsGiven) {
  const std::string from_env = UnusedAddress();
  std::string from_flag = UnusedAddress();
  while (from_flag == from_env) from_flag = UnusedAddress();
  ASSERT_EQ(setenv("RETRYD_ADDR", from_env.c_str(), 1), 0);
  Result r = RunCli({"--timeout", "2s", "services"});
  EXPECT_EQ(r.exit_code, 78);
  EXPECT_THAT(r.err, HasSubstr(from_env));
  r = RunCli({"--timeout", "2s", "--server", from_flag, "services"});
  EXPECT_EQ(r.exit_code, 78);
  EXPECT_THAT(r.err, HasSubstr(from_flag));
  unsetenv("RETRYD_ADDR");
}

// --- the real binary -----------------------------------------------------------------------

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

// Runs $RETRYCTL_BIN with `args`, stdin from /dev/null.
Result RunBinary(const std::string& bin, const std::vector<std::string>& args) {
  // Unique per process and call: ctest runs test cases in parallel processes.
  static int calls = 0;
  const std::string prefix =
      absl::StrCat(::testing::TempDir(), "/retryctl_", getpid(), "_", ++calls);
  const std::string out_path = prefix + ".stdout";
  const std::string err_path = prefix + ".stderr";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(bin.c_str()));
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  Result r;
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, bin.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return r;
  int status = 0;
  if (waitpid(pid, &status, 0) == pid && WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  r.out = ReadFile(out_path);
  r.err = ReadFile(err_path);
  unlink(out_path.c_str());
  unlink(err_path.c_str());
  return r;
}

class BinaryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* bin = std::getenv("RETRYCTL_BIN");
    if (bin == nullptr || *bin == '\0') GTEST_SKIP() << "RETRYCTL_BIN is not set";
    bin_ = bin;
  }
  std::string bin_;
};

TEST_F(BinaryTest, UsageErrorExitsTwo) {
  const Result r = RunBinary(bin_, {"no-such-command"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, StartsWith("Error: "));
  EXPECT_THAT(r.out, IsEmpty());
}

TEST_F(BinaryTest, HelpExitsZero) {
  const Result r = RunBinary(bin_, {"--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, HasSubstr("Usage: retryctl"));
}

TEST_F(BinaryTest, UnreachableServerExitsSeventyEight) {
  const Result r = RunBinary(bin_, {"--server", UnusedAddress(), "--timeout", "2s", "services"});
  EXPECT_EQ(r.exit_code, 78) << r.err;
  EXPECT_THAT(r.err, AllOf(StartsWith("Error: "), HasSubstr("code=UNAVAILABLE")));
  EXPECT_THAT(r.out, IsEmpty());
}

}  // namespace
}  // namespace retryd::cli
