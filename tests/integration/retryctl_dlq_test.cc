// retryctl's dead-letter operations against the real retryd: filtered and paged listings,
// retries, show, stats, failure groups, purge and replay (dry run, confirmation rules, --watch),
// the audit log, JSON output and exit codes. stdin is /dev/null, so no prompt can be answered.
//
// An admin RPC or filter field the server does not implement yet answers UNIMPLEMENTED; the
// tests then check that retryctl reports it cleanly (exit 76, "Error: ... (code=UNIMPLEMENTED)")
// and skip the rest of the case, naming what is missing.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/testing/requests.h"
#include "tests/testing/server_process.h"
#include "tests/testing/server_test.h"

extern char** environ;

namespace retryd::testing {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

constexpr int kUnimplemented = 64 + 12;

// kFastPolicyConfig, plus a service whose policy blocks replays of schema version v1 (the one
// FirstFailure sets).
constexpr char kConfig[] = R"json({
  "policies": [
    {"name": "default", "maxAttempts": 3,
     "backoff": {"initial": "0.2s", "multiplier": 2, "max": "1s", "jitter": "NONE"}},
    {"name": "schemas", "replay": {"blockedSchemaVersions": ["v1"]}}
  ]
})json";

struct Result {
  int code = -1;
  std::string out;
  std::string err;
};

template <typename Message>
Message ParseJson(const std::string& json) {
  Message m;
  const auto status = google::protobuf::util::JsonStringToMessage(json, &m);
  EXPECT_TRUE(status.ok()) << status << "\n" << json;
  return m;
}

// Skips the rest of a test when the server answered UNIMPLEMENTED, after checking that retryctl
// said so cleanly.
#define SKIP_IF_UNIMPLEMENTED(r)                                                           \
  do {                                                                                     \
    if ((r).code == kUnimplemented) {                                                      \
      EXPECT_THAT((r).err, AllOf(StartsWith("Error: "), HasSubstr("code=UNIMPLEMENTED"))); \
      EXPECT_EQ((r).out, "");                                                              \
      GTEST_SKIP() << "server side not implemented yet: " << (r).err;                      \
    }                                                                                      \
  } while (false)

class RetryctlDlqTest : public ServerTest {
 protected:
  void SetUp() override {
    if (getenv("RETRYCTL_BIN") == nullptr) GTEST_SKIP() << "RETRYCTL_BIN is not set";
    StartServer(kConfig);
  }

  // Runs retryctl against the test server, stdin from /dev/null.
  Result Run(const std::vector<std::string>& args) { return Wait(Spawn(args)); }

  // Starts retryctl without waiting for it; Wait() collects it. One at a time (shared files).
  pid_t Spawn(const std::vector<std::string>& args) {
    const std::string bin = getenv("RETRYCTL_BIN");
    std::vector<std::string> full = {bin, "--server", server_->address()};
    full.insert(full.end(), args.begin(), args.end());
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, OutPath().c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, 2, ErrPath().c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<char*> argv;
    for (std::string& a : full) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = -1;
    if (posix_spawn(&pid, bin.c_str(), &actions, nullptr, argv.data(), environ) != 0) pid = -1;
    posix_spawn_file_actions_destroy(&actions);
    return pid;
  }

  Result Wait(pid_t pid) {
    Result r;
    if (pid <= 0) return r;
    int status = 0;
    if (waitpid(pid, &status, 0) == pid && WIFEXITED(status)) r.code = WEXITSTATUS(status);
    r.out = ReadFile(OutPath());
    r.err = ReadFile(ErrPath());
    return r;
  }

  std::string OutPath() const { return absl::StrCat(dir_, "/out"); }
  std::string ErrPath() const { return absl::StrCat(dir_, "/err"); }

  // Dead-letters `count` envelopes of `service` at once (PERMANENT → NON_RETRYABLE), with ids
  // "<prefix>-<i>" and messages that differ only in numbers.
  void SeedDeadLetters(const std::string& service, const std::string& prefix, int count,
                       const std::string& error_code = "INVALID_SCHEMA") {
    for (int i = 0; i < count; ++i) {
      v1::ReportFailureRequest req =
          FirstFailure(service, absl::StrCat(prefix, "-", i), error_code);
      req.mutable_failure()->set_error_class(v1::PERMANENT);
      req.mutable_failure()->set_message(absl::StrCat("field ", i, " is missing"));
      v1::ReportFailureResponse resp;
      ASSERT_TRUE(Report(*retry_, req, &resp).ok());
      ASSERT_EQ(resp.decision().kind(), v1::DECISION_DEAD_LETTERED);
    }
  }

  // Schedules `count` retries of `service` (TRANSIENT first failures).
  void SeedRetries(const std::string& service, const std::string& prefix, int count) {
    for (int i = 0; i < count; ++i) {
      v1::ReportFailureResponse resp;
      ASSERT_TRUE(Report(*retry_, FirstFailure(service, absl::StrCat(prefix, "-", i)), &resp).ok());
      ASSERT_EQ(resp.decision().kind(), v1::DECISION_SCHEDULED);
    }
  }

  // Every dead letter of `service`, through the CLI.
  v1::ListDeadLettersResponse DeadLetters(const std::string& service) {
    const Result r = Run({"-o", "json", "dlq", "list", "--service", service, "--all"});
    EXPECT_EQ(r.code, 0) << r.err;
    return ParseJson<v1::ListDeadLettersResponse>(r.out);
  }
};

std::set<std::string> Ids(const google::protobuf::RepeatedPtrField<v1::Envelope>& envelopes) {
  std::set<std::string> ids;
  for (const v1::Envelope& e : envelopes) ids.insert(e.message_id());
  return ids;
}

// The arguments of a "Next page: retryctl ..." hint (its values need no quoting here).
std::vector<std::string> HintArgs(const std::string& err) {
  const size_t start = err.find("Next page: retryctl ");
  if (start == std::string::npos) return {};
  std::string line = err.substr(start + std::string("Next page: retryctl ").size());
  line = line.substr(0, line.find('\n'));
  return absl::StrSplit(line, ' ', absl::SkipEmpty());
}

TEST_F(RetryctlDlqTest, ListFollowsPagesByHintAllAndLimit) {
  SeedDeadLetters("billing", "b", 5);
  SeedDeadLetters("orders", "o", 2);

  Result r = Run({"-o", "json", "dlq", "list", "--service", "billing", "--page-size", "2"});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto first = ParseJson<v1::ListDeadLettersResponse>(r.out);
  ASSERT_EQ(first.dead_letters_size(), 2);
  ASSERT_FALSE(first.next_page_token().empty());
  EXPECT_THAT(r.err, HasSubstr(absl::StrCat(
                         "Next page: retryctl dlq list --service billing --page-size 2 "
                         "--page-token ",
                         first.next_page_token())));

  // The hint, run as printed, gives the next page.
  std::vector<std::string> next = {"-o", "json"};
  for (const std::string& a : HintArgs(r.err)) next.push_back(a);
  r = Run(next);
  ASSERT_EQ(r.code, 0) << r.err;
  const auto second = ParseJson<v1::ListDeadLettersResponse>(r.out);
  ASSERT_EQ(second.dead_letters_size(), 2);
  for (const std::string& id : Ids(second.dead_letters())) {
    EXPECT_EQ(Ids(first.dead_letters()).count(id), 0u) << id;
  }

  r = Run({"-o", "json", "dlq", "list", "--service", "billing", "--page-size", "2", "--all"});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto all = ParseJson<v1::ListDeadLettersResponse>(r.out);
  EXPECT_EQ(Ids(all.dead_letters()),
            (std::set<std::string>{"b-0", "b-1", "b-2", "b-3", "b-4"}));
  EXPECT_EQ(all.next_page_token(), "");
  EXPECT_THAT(r.err, Not(HasSubstr("Next page")));

  // An age in the filter is printed as the time it stood for, so the hint's page token (bound
  // to the filter) is still accepted later.
  r = Run({"-o", "json", "dlq", "list", "--service", "billing", "--after", "1h", "--page-size",
           "2"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.err, ::testing::ContainsRegex(
                         "--after [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z --page-size 2"));
  next = {"-o", "json"};
  for (const std::string& a : HintArgs(r.err)) next.push_back(a);
  sleep(1);  // A re-resolved "1h" would now differ.
  r = Run(next);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(ParseJson<v1::ListDeadLettersResponse>(r.out).dead_letters_size(), 2);

  r = Run({"-o", "json", "dlq", "list", "--limit", "3", "--page-size", "2"});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto limited = ParseJson<v1::ListDeadLettersResponse>(r.out);
  EXPECT_EQ(limited.dead_letters_size(), 3);
  EXPECT_FALSE(limited.next_page_token().empty());

  r = Run({"dlq", "list", "--service", "orders"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, AllOf(StartsWith("SERVICE  MESSAGE_ID  REASON"), HasSubstr("o-0"),
                           HasSubstr("o-1"), HasSubstr("NON_RETRYABLE"),
                           HasSubstr("INVALID_SCHEMA"), Not(HasSubstr("b-0"))));

  r = Run({"dlq", "list", "--service", "nobody"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("No dead letters found."));

  r = Run({"dlq", "list", "--page-token", "not-a-token"});
  EXPECT_EQ(r.code, 64 + 3) << r.err;  // INVALID_ARGUMENT
  EXPECT_THAT(r.err, AllOf(StartsWith("Error: "), HasSubstr("page_token")));
}

TEST_F(RetryctlDlqTest, ListFiltersByEveryFlag) {
  SeedDeadLetters("billing", "schema", 3, "INVALID_SCHEMA");
  SeedDeadLetters("billing", "sig", 2, "BAD_SIGNATURE");
  SeedDeadLetters("orders", "o", 1, "BAD_SIGNATURE");

  Result r = Run({"-o", "json", "dlq", "list", "--error-code", "BAD_SIGNATURE"});
  SKIP_IF_UNIMPLEMENTED(r);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Ids(ParseJson<v1::ListDeadLettersResponse>(r.out).dead_letters()),
            (std::set<std::string>{"sig-0", "sig-1", "o-0"}));

  r = Run({"-o", "json", "dlq", "list", "--service", "billing", "--error-code", "BAD_SIGNATURE",
           "--error-code", "INVALID_SCHEMA", "--class", "permanent", "--reason", "NON_RETRYABLE",
           "--schema-version", "v1", "--after", "1h"});
  SKIP_IF_UNIMPLEMENTED(r);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(ParseJson<v1::ListDeadLettersResponse>(r.out).dead_letters_size(), 5);

  r = Run({"-o", "json", "dlq", "list", "--message-id", "sig-1", "--message-id", "o-0"});
  SKIP_IF_UNIMPLEMENTED(r);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Ids(ParseJson<v1::ListDeadLettersResponse>(r.out).dead_letters()),
            (std::set<std::string>{"sig-1", "o-0"}));

  // Nothing matches: a reason none has, a schema version none has, a window in the past.
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"--reason", "RETRY_EXHAUSTED"},
           {"--schema-version", "v9"},
           {"--class", "TRANSIENT"},
           {"--before", "1h"}}) {
    std::vector<std::string> full = {"-o", "json", "dlq", "list"};
    full.insert(full.end(), args.begin(), args.end());
    r = Run(full);
    SKIP_IF_UNIMPLEMENTED(r);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(ParseJson<v1::ListDeadLettersResponse>(r.out).dead_letters_size(), 0) << args[0];
  }
}

TEST_F(RetryctlDlqTest, RetriesListAndShow) {
  SeedRetries("billing", "r", 3);
  SeedDeadLetters("billing", "d", 1);

  Result r = Run({"retries", "list", "--service", "billing"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, AllOf(StartsWith("SERVICE  MESSAGE_ID  ATTEMPTS"), HasSubstr("r-0"),
                           HasSubstr("r-2"), HasSubstr("UPSTREAM_TIMEOUT"),
                           Not(HasSubstr("d-0"))));
  // Filters on retries: next_retry_at is still ahead, so "--before now" leaves nothing.
  r = Run({"-o", "json", "retries", "list", "--error-code", "UPSTREAM_TIMEOUT", "--class",
           "TRANSIENT", "--schema-version", "v1", "--message-id", "r-1", "--after", "now"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Ids(ParseJson<v1::ListRetriesResponse>(r.out).retries()),
            (std::set<std::string>{"r-1"}));
  r = Run({"-o", "json", "retries", "list", "--service", "billing", "--before", "now"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(ParseJson<v1::ListRetriesResponse>(r.out).retries_size(), 0);

  r = Run({"-o", "json", "retries", "list", "--service", "billing", "--page-size", "1", "--all"});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto retries = ParseJson<v1::ListRetriesResponse>(r.out);
  EXPECT_EQ(Ids(retries.retries()), (std::set<std::string>{"r-0", "r-1", "r-2"}));
  for (const v1::Envelope& e : retries.retries()) EXPECT_EQ(e.state(), v1::SCHEDULED);

  r = Run({"dlq", "show", "billing", "d-0"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, AllOf(HasSubstr("DEAD_LETTERED"), HasSubstr("NON_RETRYABLE"),
                           HasSubstr("field 0 is missing"), HasSubstr("{\"order\": \"d-0\"}")));
  EXPECT_EQ(r.err, "");
  r = Run({"-o", "json", "dlq", "show", "billing", "d-0"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(ParseJson<v1::GetEnvelopeResponse>(r.out).envelope().state(), v1::DEAD_LETTERED);

  r = Run({"dlq", "show", "billing", "r-0"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("Note: billing/r-0 is not a dead letter (state SCHEDULED)"));
  r = Run({"dlq", "show", "billing", "nope"});
  EXPECT_EQ(r.code, 64 + 5) << r.err;  // NOT_FOUND
  EXPECT_THAT(r.err, HasSubstr("code=NOT_FOUND"));
}

TEST_F(RetryctlDlqTest, StatsAndFailureGroups) {
  SeedDeadLetters("billing", "schema", 3, "INVALID_SCHEMA");
  SeedDeadLetters("billing", "sig", 2, "BAD_SIGNATURE");

  Result r = Run({"-o", "json", "dlq", "stats"});
  SKIP_IF_UNIMPLEMENTED(r);
  ASSERT_EQ(r.code, 0) << r.err;
  const auto stats = ParseJson<v1::GetDeadLetterStatsResponse>(r.out);
  EXPECT_EQ(stats.total(), 5);
  EXPECT_EQ(stats.dead_lettered_last_hour(), 5);
  EXPECT_DOUBLE_EQ(stats.non_retryable_ratio(), 1.0);
  r = Run({"dlq", "stats", "--service", "billing"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, AllOf(StartsWith("Dead letters:      5\n"), HasSubstr("NON_RETRYABLE"),
                           HasSubstr("\n  INVALID_SCHEMA  3\n  BAD_SIGNATURE   2\n")));

  r = Run({"-o", "json", "dlq", "groups", "--service", "billing"});
  SKIP_IF_UNIMPLEMENTED(r);
  ASSERT_EQ(r.code, 0) << r.err;
  const auto groups = ParseJson<v1::ListFailureGroupsResponse>(r.out);
  // Messages that differ only in numbers group together: one group per error code.
  ASSERT_EQ(groups.groups_size(), 2);
  EXPECT_EQ(groups.groups(0).count(), 3);
  EXPECT_EQ(groups.groups(0).error_code(), "INVALID_SCHEMA");
  r = Run({"dlq", "groups"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, AllOf(StartsWith("FINGERPRINT "), HasSubstr("BAD_SIGNATURE"),
                           HasSubstr(groups.groups(0).fingerprint() + "  3  "),
                           HasSubstr("field <id> is missing")));

  // A group's fingerprint selects exactly its dead letters.
  r = Run({"-o", "json", "dlq", "list", "--fingerprint", groups.groups(1).fingerprint()});
  SKIP_IF_UNIMPLEMENTED(r);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Ids(ParseJson<v1::ListDeadLettersResponse>(r.out).dead_letters()),
            (std::set<std::string>{"sig-0", "sig-1"}));
}

TEST_F(RetryctlDlqTest, PurgeDryRunConfirmationAndAudit) {
  SeedDeadLetters("bulk", "x", 101);
  SeedDeadLetters("keep", "k", 1);

  Result r = Run({"-o", "json", "dlq", "purge", "--service", "bulk", "--dry-run"});
  SKIP_IF_UNIMPLEMENTED(r);
  ASSERT_EQ(r.code, 0) << r.err;
  const auto dry = ParseJson<v1::PurgeDeadLettersResponse>(r.out);
  EXPECT_EQ(dry.count(), 101);
  EXPECT_EQ(dry.sample_size(), 100);
  r = Run({"dlq", "purge", "--service", "bulk", "--dry-run"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, StartsWith("Dry run: 101 dead letters would be purged (service=bulk); "
                                "nothing was changed.\nSample (100 of 101):\n"));

  // More than 100, no terminal, no --yes: refused, nothing purged.
  r = Run({"dlq", "purge", "--service", "bulk"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_THAT(r.err, AllOf(HasSubstr("this would purge 101 dead letters (more than 100)"),
                           HasSubstr("--yes"), HasSubstr("retryctl dlq purge --help")));
  EXPECT_EQ(DeadLetters("bulk").dead_letters_size(), 101);

  r = Run({"dlq", "purge", "--service", "bulk", "--yes", "--note", "bad deploy"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "Purged 101 dead letters (service=bulk).\n");
  EXPECT_EQ(DeadLetters("bulk").dead_letters_size(), 0);
  EXPECT_EQ(DeadLetters("keep").dead_letters_size(), 1);

  // Up to 100 needs no confirmation.
  r = Run({"-o", "json", "dlq", "purge", "--service", "keep"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(ParseJson<v1::PurgeDeadLettersResponse>(r.out).count(), 1);

  r = Run({"-o", "json", "audit"});
  SKIP_IF_UNIMPLEMENTED(r);
  ASSERT_EQ(r.code, 0) << r.err;
  const auto audit = ParseJson<v1::ListAuditEventsResponse>(r.out);
  bool found = false;
  for (const v1::AuditEvent& e : audit.events()) {
    if (e.method() == "PurgeDeadLetters" && !e.dry_run() && e.note() == "bad deploy") {
      found = true;
      EXPECT_EQ(e.affected_count(), 101);
      EXPECT_EQ(e.filter().service(), "bulk");
      EXPECT_THAT(e.request_id(), StartsWith("retryctl-"));
    }
  }
  EXPECT_TRUE(found) << r.out;
  r = Run({"audit", "list", "--limit", "1"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, AllOf(StartsWith("ID  TIME"), HasSubstr("PurgeDeadLetters")));
}

TEST_F(RetryctlDlqTest, ADryRunThenTheRealCallWithTheSameRequestIdDoesTheRealThing) {
  SeedDeadLetters("p", "d", 2);
  SeedDeadLetters("r", "d", 2);
  Result r = Run({"dlq", "purge", "--service", "p", "--dry-run", "--request-id", "same-1"});
  SKIP_IF_UNIMPLEMENTED(r);
  ASSERT_EQ(r.code, 0) << r.err;
  r = Run({"dlq", "purge", "--service", "p", "--request-id", "same-1"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "Purged 2 dead letters (service=p).\n");
  EXPECT_EQ(DeadLetters("p").dead_letters_size(), 0);
  // Retried with the same id: answered, nothing purged twice.
  SeedDeadLetters("p", "e", 1);
  r = Run({"dlq", "purge", "--service", "p", "--request-id", "same-1", "--yes"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(DeadLetters("p").dead_letters_size(), 1);

  r = Run({"dlq", "replay", "--service", "r", "--dry-run", "--request-id", "same-2"});
  ASSERT_EQ(r.code, 0) << r.err;
  r = Run({"-o", "json", "dlq", "replay", "--service", "r", "--request-id", "same-2", "--watch",
           "--interval", "100ms"});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto replay = ParseJson<v1::Replay>(r.out);
  EXPECT_FALSE(replay.dry_run());
  EXPECT_EQ(replay.replayed(), 2);
  EXPECT_EQ(DeadLetters("r").dead_letters_size(), 0);
}

TEST_F(RetryctlDlqTest, PurgeEverythingNeedsAllServices) {
  SeedDeadLetters("a", "a", 1);
  SeedDeadLetters("b", "b", 1);
  Result r = Run({"dlq", "purge", "--yes"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("--all-services"));
  r = Run({"-o", "json", "dlq", "purge", "--all-services"});
  SKIP_IF_UNIMPLEMENTED(r);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(ParseJson<v1::PurgeDeadLettersResponse>(r.out).count(), 2);
  EXPECT_EQ(DeadLetters("a").dead_letters_size(), 0);
  EXPECT_EQ(DeadLetters("b").dead_letters_size(), 0);
}

TEST_F(RetryctlDlqTest, ReplayDryRunThenWatchToTheEnd) {
  SeedDeadLetters("rp", "d", 3);

  Result r = Run({"-o", "json", "dlq", "replay", "--service", "rp", "--dry-run"});
  SKIP_IF_UNIMPLEMENTED(r);
  ASSERT_EQ(r.code, 0) << r.err;
  const auto dry = ParseJson<v1::Replay>(r.out);
  EXPECT_TRUE(dry.dry_run());
  EXPECT_EQ(dry.state(), v1::REPLAY_SUCCEEDED);
  EXPECT_EQ(dry.matched(), 3);
  EXPECT_EQ(DeadLetters("rp").dead_letters_size(), 3);  // A dry run changes nothing.

  r = Run({"dlq", "replay", "--service", "rp", "--max-per-second", "50", "--note", "fixed",
           "--watch", "--interval", "100ms"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, AllOf(HasSubstr("State:                     SUCCEEDED"),
                           HasSubstr("Replayed:                  3")));
  // No terminal: plain progress lines, the last one final.
  EXPECT_THAT(r.err, HasSubstr(" SUCCEEDED 3/3 handled (replayed 3, skipped 0, failed 0)\n"));
  EXPECT_THAT(r.err, Not(HasSubstr("\r")));
  EXPECT_EQ(DeadLetters("rp").dead_letters_size(), 0);
  r = Run({"-o", "json", "retries", "list", "--service", "rp"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Ids(ParseJson<v1::ListRetriesResponse>(r.out).retries()),
            (std::set<std::string>{"d-0", "d-1", "d-2"}));

  r = Run({"-o", "json", "replay", "list"});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto list = ParseJson<v1::ListReplaysResponse>(r.out);
  ASSERT_GE(list.replays_size(), 1);
  const v1::Replay& newest = list.replays(0);
  EXPECT_FALSE(newest.dry_run());
  EXPECT_EQ(newest.note(), "fixed");
  r = Run({"replay", "list"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, AllOf(StartsWith("NAME"), HasSubstr(newest.name())));

  // "replay status" takes the name or the bare id.
  const std::string id(absl::StripPrefix(newest.name(), "replays/"));
  r = Run({"-o", "json", "replay", "status", id, "--watch"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(ParseJson<v1::Replay>(r.out).state(), v1::REPLAY_SUCCEEDED);
  r = Run({"replay", "status", newest.name()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("Filter:                    service=rp"));

  r = Run({"replay", "status", "replays/999999"});
  EXPECT_EQ(r.code, 64 + 5) << r.err;  // NOT_FOUND
}

TEST_F(RetryctlDlqTest, ReplayOverAHundredNeedsYesWithoutATerminal) {
  SeedDeadLetters("big", "d", 101);
  Result r = Run({"dlq", "replay", "--service", "big"});
  SKIP_IF_UNIMPLEMENTED(r);
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("this would replay 101 dead letters (more than 100)"));
  EXPECT_EQ(DeadLetters("big").dead_letters_size(), 101);

  // A limit within the threshold needs no confirmation.
  r = Run({"-o", "json", "dlq", "replay", "--service", "big", "--limit", "100",
           "--max-per-second", "1000", "--watch", "--interval", "100ms"});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto done = ParseJson<v1::Replay>(r.out);
  EXPECT_EQ(done.state(), v1::REPLAY_SUCCEEDED);
  EXPECT_EQ(done.replayed(), 100);
  EXPECT_EQ(DeadLetters("big").dead_letters_size(), 1);
}

TEST_F(RetryctlDlqTest, ReplayWithTheSameRequestIdStartsOnce) {
  SeedDeadLetters("idem", "d", 2);
  Result r = Run({"-o", "json", "dlq", "replay", "--service", "idem", "--request-id", "op-1"});
  SKIP_IF_UNIMPLEMENTED(r);
  ASSERT_EQ(r.code, 0) << r.err;
  const auto first = ParseJson<v1::Replay>(r.out);
  r = Run({"-o", "json", "dlq", "replay", "--service", "idem", "--request-id", "op-1"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(ParseJson<v1::Replay>(r.out).name(), first.name());
  EXPECT_EQ(first.request_id(), "op-1");
}

TEST_F(RetryctlDlqTest, WatchExitsFiveWhenTheCanaryDeadLettersAgain) {
  SeedDeadLetters("canary", "d", 3);
  const pid_t cli = Spawn({"dlq", "replay", "--service", "canary", "--canary", "1", "--watch",
                           "--interval", "100ms"});
  ASSERT_GT(cli, 0);
  // Play the worker: the canary comes back and fails for good.
  const v1::LeaseResponse leased = LeaseUntil(*retry_, "canary", 1, absl::Seconds(20));
  if (leased.envelopes_size() == 1) {
    v1::ReportFailureRequest req = LeasedFailure(leased.envelopes(0), "INVALID_SCHEMA");
    req.mutable_failure()->set_error_class(v1::PERMANENT);
    v1::ReportFailureResponse resp;
    EXPECT_TRUE(Report(*retry_, req, &resp).ok());
  }
  const Result r = Wait(cli);
  SKIP_IF_UNIMPLEMENTED(r);
  ASSERT_EQ(leased.envelopes_size(), 1) << r.err;
  EXPECT_EQ(r.code, 5) << r.err;
  EXPECT_THAT(r.err, AllOf(HasSubstr(" FAILED 1/3 handled"), HasSubstr("Error: replays/"),
                           HasSubstr("canary")));
  EXPECT_THAT(r.out, HasSubstr("State:                     FAILED"));
  // The two that were not replayed are still dead letters, and so is the canary.
  EXPECT_EQ(DeadLetters("canary").dead_letters_size(), 3);
}

TEST_F(RetryctlDlqTest, WatchShowsBlockedSchemaVersionsAsSkipped) {
  SeedDeadLetters("schemas", "d", 2);
  const Result r = Run({"dlq", "replay", "--service", "schemas", "--watch", "--interval",
                        "100ms"});
  SKIP_IF_UNIMPLEMENTED(r);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr(" SUCCEEDED 2/2 handled (replayed 0, skipped 2, failed 0)\n"));
  EXPECT_THAT(r.out, HasSubstr("Skipped (blocked schema):  2\n"));
  EXPECT_EQ(DeadLetters("schemas").dead_letters_size(), 2);
}

TEST_F(RetryctlDlqTest, CancelStopsAReplay) {
  SeedDeadLetters("slow", "d", 20);
  Result r = Run({"-o", "json", "dlq", "replay", "--service", "slow", "--max-per-second", "1"});
  SKIP_IF_UNIMPLEMENTED(r);
  ASSERT_EQ(r.code, 0) << r.err;
  const auto started = ParseJson<v1::Replay>(r.out);
  EXPECT_THAT(r.err, HasSubstr("retryctl replay status " + started.name() + " --watch"));

  r = Run({"replay", "cancel", started.name()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("State:                     CANCELLED"));
  // Watching a cancelled replay ends at once, exit 0.
  r = Run({"-o", "json", "replay", "status", started.name(), "--watch"});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto cancelled = ParseJson<v1::Replay>(r.out);
  EXPECT_EQ(cancelled.state(), v1::REPLAY_CANCELLED);
  EXPECT_LT(cancelled.replayed(), 20);
  EXPECT_EQ(DeadLetters("slow").dead_letters_size(), 20 - cancelled.replayed());
}

}  // namespace
}  // namespace retryd::testing
