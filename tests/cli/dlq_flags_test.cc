// The dead-letter operation commands without a server: filter and time-bound parsing, the
// filter's summary and flag forms, page following, the confirmation rules, usage errors (exit 2)
// and an unreachable server (exit 78) for every new command.
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/cli/app.h"
#include "client/cli/bulk.h"
#include "client/cli/filter_flags.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "retryd/v1/admin_service.pb.h"
#include "tests/testing/retryctl_runner.h"

namespace retryd::cli {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

// 2025-01-02T03:04:05Z
constexpr int64_t kT0 = 1735787045;
const absl::Time kNow = absl::FromUnixSeconds(kT0) + absl::Milliseconds(750);

using Result = ::retryd::testing::CliResult;
using ::retryd::testing::RunCli;
using ::retryd::testing::UnusedAddress;

// --- time bounds ---------------------------------------------------------------------------

absl::Time MustParse(const std::string& text) {
  absl::Time t;
  std::string error;
  EXPECT_TRUE(ParseTimeBound(text, kNow, &t, &error)) << text << ": " << error;
  return t;
}

TEST(TimeBoundTest, Rfc3339WithOffsetsAndFractions) {
  EXPECT_EQ(MustParse("2025-01-02T03:04:05Z"), absl::FromUnixSeconds(kT0));
  EXPECT_EQ(MustParse("2025-01-02T04:04:05+01:00"), absl::FromUnixSeconds(kT0));
  EXPECT_EQ(MustParse("2025-01-02T03:04:05.25Z"),
            absl::FromUnixSeconds(kT0) + absl::Milliseconds(250));
}

TEST(TimeBoundTest, AgesMeanThatLongBeforeNowInWholeSeconds) {
  const absl::Time now_s = absl::FromUnixSeconds(kT0);  // kNow without its 750 ms.
  EXPECT_EQ(MustParse("now"), now_s);
  EXPECT_EQ(MustParse("90m"), now_s - absl::Minutes(90));
  EXPECT_EQ(MustParse("2h"), now_s - absl::Hours(2));
  EXPECT_EQ(MustParse("-2h"), now_s - absl::Hours(2));
  EXPECT_EQ(MustParse("1h30m"), now_s - absl::Minutes(90));
  EXPECT_EQ(MustParse("7d"), now_s - absl::Hours(7 * 24));
  EXPECT_EQ(MustParse("-7d"), now_s - absl::Hours(7 * 24));
  EXPECT_EQ(MustParse("1.5s"), now_s - absl::Seconds(2));  // Rounded to whole seconds.
  EXPECT_EQ(MustParse("0s"), now_s);
}

TEST(TimeBoundTest, RejectsWhatIsNeitherATimeNorAnAge) {
  for (const std::string bad :
       {"", "yesterday", "2025-01-02", "2025-01-02 03:04:05", "--2h", "2x", "d", "-d", "1.5d",
        "inf", "2025-13-02T03:04:05Z"}) {
    absl::Time t;
    std::string error;
    EXPECT_FALSE(ParseTimeBound(bad, kNow, &t, &error)) << bad;
    EXPECT_THAT(error, HasSubstr("invalid time")) << bad;
  }
}

// --- filters -------------------------------------------------------------------------------

TEST(BuildFilterTest, EveryFlagMapsToItsField) {
  FilterFlags flags;
  flags.service = "billing";
  flags.error_codes = {"A", "B"};
  flags.classes = {"TRANSIENT", "permanent"};
  flags.reasons = {"RETRY_EXHAUSTED"};
  flags.schema_versions = {"v1", "v2"};
  flags.message_ids = {"m 1"};
  flags.fingerprints = {"fp1"};
  flags.after = "2h";
  flags.before = "2025-01-02T03:04:05Z";
  retryd::v1::Filter f;
  std::string error;
  ASSERT_TRUE(BuildFilter(flags, kNow, &f, &error)) << error;
  EXPECT_EQ(f.service(), "billing");
  EXPECT_THAT(f.error_codes(), ::testing::ElementsAre("A", "B"));
  EXPECT_THAT(f.error_classes(),
              ::testing::ElementsAre(retryd::v1::TRANSIENT, retryd::v1::PERMANENT));
  EXPECT_THAT(f.reasons(), ::testing::ElementsAre(retryd::v1::RETRY_EXHAUSTED));
  EXPECT_THAT(f.schema_versions(), ::testing::ElementsAre("v1", "v2"));
  EXPECT_THAT(f.message_ids(), ::testing::ElementsAre("m 1"));
  EXPECT_THAT(f.fingerprints(), ::testing::ElementsAre("fp1"));
  EXPECT_EQ(f.after().seconds(), kT0 - 7200);
  EXPECT_EQ(f.after().nanos(), 0);
  EXPECT_EQ(f.before().seconds(), kT0);
  EXPECT_FALSE(flags.empty());
  EXPECT_TRUE(FilterFlags().empty());
}

TEST(BuildFilterTest, EmptyFlagsGiveAnEmptyFilter) {
  retryd::v1::Filter f;
  f.set_service("stale");
  std::string error;
  ASSERT_TRUE(BuildFilter(FilterFlags(), kNow, &f, &error));
  EXPECT_EQ(f.ByteSizeLong(), 0u);
}

TEST(BuildFilterTest, AfterMustBeEarlierThanBefore) {
  FilterFlags flags;
  flags.after = "1h";
  flags.before = "2h";
  retryd::v1::Filter f;
  std::string error;
  EXPECT_FALSE(BuildFilter(flags, kNow, &f, &error));
  EXPECT_THAT(error, HasSubstr("--after (2025-01-02T02:04:05Z) must be earlier than --before"));
  flags.before = "1h";
  EXPECT_FALSE(BuildFilter(flags, kNow, &f, &error));
}

retryd::v1::Filter FullFilter() {
  retryd::v1::Filter f;
  f.set_service("billing");
  f.add_error_codes("UPSTREAM_TIMEOUT");
  f.add_error_codes("CONN_RESET");
  f.add_error_classes(retryd::v1::TRANSIENT);
  f.add_reasons(retryd::v1::RETRY_EXHAUSTED);
  f.add_schema_versions("v2");
  f.add_message_ids("order 42");
  f.add_message_ids("it's");
  f.add_fingerprints("fp1");
  f.mutable_after()->set_seconds(kT0);
  f.mutable_before()->set_seconds(kT0 + 60);
  f.mutable_before()->set_nanos(500000000);
  return f;
}

TEST(FilterSummaryTest, Golden) {
  EXPECT_EQ(FilterSummary(retryd::v1::Filter()), "(all)");
  EXPECT_EQ(FilterSummary(FullFilter()),
            "service=billing error_code=UPSTREAM_TIMEOUT|CONN_RESET class=TRANSIENT "
            "reason=RETRY_EXHAUSTED schema_version=v2 message_id=order 42|it's fingerprint=fp1 "
            "after=2025-01-02T03:04:05Z before=2025-01-02T03:05:05.5Z");
}

TEST(FilterAsFlagsTest, GoldenQuotedAndExact) {
  EXPECT_EQ(FilterAsFlags(retryd::v1::Filter()), "");
  EXPECT_EQ(FilterAsFlags(FullFilter()),
            " --service billing --error-code UPSTREAM_TIMEOUT --error-code CONN_RESET --class "
            "TRANSIENT --reason RETRY_EXHAUSTED --schema-version v2 --message-id 'order 42' "
            "--message-id 'it'\\''s' --fingerprint fp1 --after 2025-01-02T03:04:05Z --before "
            "2025-01-02T03:05:05.5Z");
}

TEST(FilterAsFlagsTest, RoundTripsThroughBuildFilter) {
  // What a next-page hint prints must rebuild the very same filter (page tokens are bound to it).
  FilterFlags flags;
  flags.service = "billing";
  flags.error_codes = {"UPSTREAM_TIMEOUT", "CONN_RESET"};
  flags.classes = {"TRANSIENT"};
  flags.reasons = {"RETRY_EXHAUSTED"};
  flags.schema_versions = {"v2"};
  flags.message_ids = {"order 42", "it's"};
  flags.fingerprints = {"fp1"};
  flags.after = "2025-01-02T03:04:05Z";
  flags.before = "2025-01-02T03:05:05.5Z";
  retryd::v1::Filter built;
  std::string error;
  ASSERT_TRUE(BuildFilter(flags, kNow, &built, &error)) << error;
  EXPECT_EQ(built.SerializeAsString(), FullFilter().SerializeAsString());
}

TEST(ShellQuoteTest, SafeWordsStayQuotedOthersAreQuoted) {
  EXPECT_EQ(ShellQuote("abc-1_2.3:4/5@x=y,z+%"), "abc-1_2.3:4/5@x=y,z+%");
  EXPECT_EQ(ShellQuote(""), "''");
  EXPECT_EQ(ShellQuote("a b"), "'a b'");
  EXPECT_EQ(ShellQuote("$(rm -rf /)"), "'$(rm -rf /)'");
  EXPECT_EQ(ShellQuote("it's"), "'it'\\''s'");
}

TEST(NextPageHintTest, RepeatsEveryFilterFlag) {
  const retryd::v1::Filter filter = FullFilter();
  EXPECT_EQ(NextPageHint("retryctl retries list", &filter, 0, "a b"),
            absl::StrCat("Next page: retryctl retries list", FilterAsFlags(FullFilter()),
                         " --page-token 'a b'"));
}

// --- following pages -----------------------------------------------------------------------

// A listing of `total` rows served `page_size` (default 3) at a time; records each call.
struct FakePages {
  explicit FakePages(int n) : total(n) {}
  int total = 0;
  std::vector<std::pair<std::string, int>> calls;  // (token, page_size)

  grpc::Status operator()(const std::string& token, int page_size,
                          retryd::v1::ListReplaysResponse* page) {
    calls.emplace_back(token, page_size);
    const int start = token.empty() ? 0 : std::stoi(token);
    const int size = page_size == 0 ? 3 : page_size;
    int i = start;
    for (; i < total && i < start + size; ++i) page->add_replays()->set_matched(i);
    if (i < total) page->set_next_page_token(absl::StrCat(i));
    return grpc::Status::OK;
  }
};

auto ReplayRows() {
  return [](retryd::v1::ListReplaysResponse* r) { return r->mutable_replays(); };
}

TEST(FetchPagesTest, OnePageByDefault) {
  FakePages fake(7);
  retryd::v1::ListReplaysResponse merged;
  ASSERT_TRUE(FetchPages(PageFlags(), std::ref(fake), ReplayRows(), &merged).ok());
  EXPECT_EQ(merged.replays_size(), 3);
  EXPECT_EQ(merged.next_page_token(), "3");
  EXPECT_EQ(fake.calls.size(), 1u);
}

TEST(FetchPagesTest, AllFollowsEveryPageFromTheGivenToken) {
  FakePages fake(7);
  PageFlags flags;
  flags.all = true;
  flags.page_token = "1";
  retryd::v1::ListReplaysResponse merged;
  ASSERT_TRUE(FetchPages(flags, std::ref(fake), ReplayRows(), &merged).ok());
  ASSERT_EQ(merged.replays_size(), 6);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(merged.replays(i).matched(), i + 1);
  EXPECT_EQ(merged.next_page_token(), "");
  EXPECT_EQ(fake.calls.size(), 2u);
}

TEST(FetchPagesTest, LimitShrinksTheLastPageSoTheTokenStaysValid) {
  FakePages fake(10);
  PageFlags flags;
  flags.limit = 5;
  flags.page_size = 3;
  retryd::v1::ListReplaysResponse merged;
  ASSERT_TRUE(FetchPages(flags, std::ref(fake), ReplayRows(), &merged).ok());
  EXPECT_EQ(merged.replays_size(), 5);
  EXPECT_EQ(merged.next_page_token(), "5");
  ASSERT_EQ(fake.calls.size(), 2u);
  EXPECT_EQ(fake.calls[0], std::make_pair(std::string(), 3));
  EXPECT_EQ(fake.calls[1], std::make_pair(std::string("3"), 2));
}

TEST(FetchPagesTest, StopsOnARepeatedTokenAndOnErrors) {
  PageFlags flags;
  flags.all = true;
  retryd::v1::ListReplaysResponse merged;
  const auto stuck = [](const std::string&, int, retryd::v1::ListReplaysResponse* page) {
    page->set_next_page_token("same");
    return grpc::Status::OK;
  };
  flags.page_token = "same";
  EXPECT_EQ(FetchPages(flags, stuck, ReplayRows(), &merged).error_code(),
            grpc::StatusCode::INTERNAL);
  const auto failing = [](const std::string&, int, retryd::v1::ListReplaysResponse*) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "page_token: tampered");
  };
  EXPECT_EQ(FetchPages(flags, failing, ReplayRows(), &merged).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

// --- confirmation --------------------------------------------------------------------------

struct Confirm {
  int rc = -1;
  std::string err;
};

Confirm Ask(int64_t count, bool yes, bool terminal, const std::string& answer) {
  CliContext ctx;
  std::istringstream in(answer);
  std::ostringstream out;
  std::ostringstream err;
  ctx.in = &in;
  ctx.out = &out;
  ctx.err = &err;
  ctx.terminal.stdin_is_terminal = terminal;
  Confirm c;
  c.rc = ConfirmBulk(ctx, yes, count, "retryctl dlq purge", "purge", "Purge 101 dead letters?",
                     "SAMPLE\n");
  c.err = err.str();
  EXPECT_THAT(out.str(), IsEmpty());
  return c;
}

TEST(ConfirmBulkTest, UpToTheThresholdOrWithYesNoQuestionIsAsked) {
  for (const bool terminal : {false, true}) {
    Confirm c = Ask(kConfirmThreshold, /*yes=*/false, terminal, "");
    EXPECT_EQ(c.rc, kExitOk);
    EXPECT_THAT(c.err, IsEmpty());
    c = Ask(1000000, /*yes=*/true, terminal, "");
    EXPECT_EQ(c.rc, kExitOk);
    EXPECT_THAT(c.err, IsEmpty());
  }
}

TEST(ConfirmBulkTest, WithoutATerminalItRefusesAsAUsageError) {
  const Confirm c = Ask(kConfirmThreshold + 1, /*yes=*/false, /*terminal=*/false, "y\n");
  EXPECT_EQ(c.rc, kExitUsage);
  EXPECT_EQ(c.err,
            "Error: this would purge 101 dead letters (more than 100) and there is no terminal "
            "to confirm on; add --yes to go ahead, or --dry-run to see what matches\n"
            "Run 'retryctl dlq purge --help' for usage.\n");
}

TEST(ConfirmBulkTest, OnATerminalOnlyYesGoesAhead) {
  for (const std::string yes : {"y\n", "Y\n", "yes\n", " YES \n", "y"}) {
    const Confirm c = Ask(101, false, true, yes);
    EXPECT_EQ(c.rc, kExitOk) << yes;
    EXPECT_EQ(c.err, "SAMPLE\nPurge 101 dead letters? [y/N] ");
  }
  for (const std::string no : {"n\n", "\n", "", "no\n", "yess\n", "sure\n"}) {
    const Confirm c = Ask(101, false, true, no);
    EXPECT_EQ(c.rc, kExitDeclined) << no;
    EXPECT_EQ(c.err, "SAMPLE\nPurge 101 dead letters? [y/N] Aborted; nothing was changed.\n");
  }
}

TEST(RequestIdTest, RandomAndPrefixed) {
  const std::string a = NewRequestId();
  const std::string b = NewRequestId();
  EXPECT_THAT(a, ::testing::MatchesRegex("retryctl-[0-9a-f]{32}"));
  EXPECT_NE(a, b);
}

// --- usage errors --------------------------------------------------------------------------

class DlqUsageErrorTest : public ::testing::TestWithParam<std::vector<std::string>> {};

TEST_P(DlqUsageErrorTest, ExitsTwoWithMessageAndHint) {
  std::vector<std::string> args = {"--server", UnusedAddress(), "--timeout", "2s"};
  for (const std::string& a : GetParam()) args.push_back(a);
  const Result r = RunCli(args);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, AllOf(StartsWith("Error: "), HasSubstr("--help' for usage.")));
  EXPECT_THAT(r.out, IsEmpty());
}

INSTANTIATE_TEST_SUITE_P(
    All, DlqUsageErrorTest,
    ::testing::Values(
        std::vector<std::string>{"dlq", "list", "--class", "fatal"},
        std::vector<std::string>{"dlq", "list", "--reason", "EXHAUSTED"},
        std::vector<std::string>{"dlq", "list", "--after", "yesterday"},
        std::vector<std::string>{"dlq", "list", "--before", "2025-01-02"},
        std::vector<std::string>{"dlq", "list", "--after", "1h", "--before", "2h"},
        std::vector<std::string>{"dlq", "list", "--service", "a", "--service", "b"},
        std::vector<std::string>{"dlq", "list", "--after", "1h", "--after", "2h"},
        std::vector<std::string>{"dlq", "list", "--limit", "-3"},
        std::vector<std::string>{"dlq", "list", "--error-code"},
        std::vector<std::string>{"dlq", "show", "billing"},
        std::vector<std::string>{"dlq", "stats", "extra"},
        std::vector<std::string>{"dlq", "groups", "--page-size", "x"},
        std::vector<std::string>{"dlq", "groups", "--class", "TRANSIENT,PERMANENT"},
        std::vector<std::string>{"dlq", "replay", "--max-per-second", "-1"},
        std::vector<std::string>{"dlq", "replay", "--max-per-second", "fast"},
        std::vector<std::string>{"dlq", "replay", "--limit", "-1"},
        std::vector<std::string>{"dlq", "replay", "--canary", "-1"},
        std::vector<std::string>{"dlq", "replay", "--interval", "0s", "--watch"},
        std::vector<std::string>{"dlq", "replay", "--after", "2h", "--before", "3h"},
        std::vector<std::string>{"dlq", "purge"},
        std::vector<std::string>{"dlq", "purge", "--yes", "--dry-run"},
        std::vector<std::string>{"dlq", "purge", "--all-services", "--service", "billing"},
        std::vector<std::string>{"dlq", "purge", "--reason", "nope", "--yes"},
        std::vector<std::string>{"replay"},
        std::vector<std::string>{"replay", "status"},
        std::vector<std::string>{"replay", "status", "7", "--interval", "soon"},
        std::vector<std::string>{"replay", "cancel"},
        std::vector<std::string>{"replay", "list", "--page-size", "-1"},
        std::vector<std::string>{"retries"},
        std::vector<std::string>{"retries", "list", "--reason", "x"},
        std::vector<std::string>{"audit", "--page-size", "-5"},
        std::vector<std::string>{"audit", "list", "extra"}));

TEST(DlqUsageMessageTest, NamesTheBadValue) {
  Result r = RunCli({"--server", UnusedAddress(), "dlq", "list", "--after", "yesterday"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("invalid time \"yesterday\""));
  r = RunCli({"--server", UnusedAddress(), "dlq", "purge"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err,
            "Error: no filter given: that would purge every dead letter; give filter flags, or "
            "--all-services to really purge them all\n"
            "Run 'retryctl dlq purge --help' for usage.\n");
}

TEST(DlqHelpTest, DocumentsTheFlags) {
  Result r = RunCli({"dlq", "replay", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  for (const char* flag :
       {"--service", "--error-code", "--class", "--reason", "--schema-version", "--message-id",
        "--fingerprint", "--after", "--before", "--max-per-second", "--limit", "--canary",
        "--no-reset-attempts", "--note", "--request-id", "--dry-run", "--yes", "--watch",
        "--interval"}) {
    EXPECT_THAT(r.out, HasSubstr(flag));
  }
  EXPECT_THAT(r.out, AllOf(HasSubstr("refuses (exit 2) unless --yes"), HasSubstr("exits 5"),
                           HasSubstr("that long ago (90m, 2h, 7d")));
  r = RunCli({"dlq", "purge", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, AllOf(HasSubstr("--all-services"), HasSubstr("--dry-run"),
                           HasSubstr("--yes"), HasSubstr("--note"),
                           HasSubstr("refuses (exit 2) unless --yes")));
  r = RunCli({"retries", "list", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, AllOf(HasSubstr("next_retry_at"), HasSubstr("--error-code"),
                           ::testing::Not(HasSubstr("--reason")),
                           ::testing::Not(HasSubstr("--fingerprint"))));
  r = RunCli({"--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, AllOf(HasSubstr("replay"), HasSubstr("retries"), HasSubstr("audit"),
                           HasSubstr("declined"), HasSubstr("FAILED")));
  r = RunCli({"dlq", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  for (const char* sub : {"list", "show", "stats", "groups", "replay", "purge"}) {
    EXPECT_THAT(r.out, HasSubstr(sub));
  }
}

// --- unreachable server --------------------------------------------------------------------

class DlqUnreachableTest : public ::testing::TestWithParam<std::vector<std::string>> {};

TEST_P(DlqUnreachableTest, ExitsSeventyEightWithErrorOnStderr) {
  std::vector<std::string> args = {"--server", UnusedAddress(), "--timeout", "2s"};
  for (const std::string& a : GetParam()) args.push_back(a);
  const Result r = RunCli(args);
  EXPECT_EQ(r.exit_code, 78) << r.err;
  EXPECT_THAT(r.err, AllOf(StartsWith("Error: "), HasSubstr("(code=UNAVAILABLE")));
  EXPECT_THAT(r.out, IsEmpty());
}

INSTANTIATE_TEST_SUITE_P(
    All, DlqUnreachableTest,
    ::testing::Values(
        std::vector<std::string>{"dlq", "list", "--error-code", "X", "--after", "1h"},
        std::vector<std::string>{"dlq", "show", "s", "m"},
        std::vector<std::string>{"dlq", "stats"},
        std::vector<std::string>{"dlq", "groups", "--limit", "10"},
        std::vector<std::string>{"dlq", "replay", "--service", "s"},
        std::vector<std::string>{"dlq", "replay", "--service", "s", "--dry-run"},
        std::vector<std::string>{"dlq", "purge", "--service", "s"},
        std::vector<std::string>{"dlq", "purge", "--all-services", "--dry-run"},
        std::vector<std::string>{"replay", "status", "7", "--watch"},
        std::vector<std::string>{"replay", "list", "--all"},
        std::vector<std::string>{"replay", "cancel", "replays/7"},
        std::vector<std::string>{"retries", "list", "--service", "s"},
        std::vector<std::string>{"audit"},
        std::vector<std::string>{"-o", "json", "audit", "list"}));

TEST(MutationRetryTest, AFailedPurgeOrReplayTellsTheRequestIdToRetryWith) {
  // --yes skips the counting dry run, so the mutation itself fails (after its retries).
  Result r = RunCli({"--server", UnusedAddress(), "--timeout", "2s", "dlq", "purge", "--service",
                     "s", "--yes", "--request-id", "rid-1"});
  EXPECT_EQ(r.exit_code, 78);
  EXPECT_THAT(r.err, HasSubstr("with --request-id rid-1 is safe"));
  r = RunCli({"--server", UnusedAddress(), "--timeout", "2s", "dlq", "replay", "--limit", "5"});
  EXPECT_EQ(r.exit_code, 78);
  EXPECT_THAT(r.err, HasSubstr("with --request-id retryctl-"));
  // A counting dry run that fails changed nothing: no hint.
  r = RunCli({"--server", UnusedAddress(), "--timeout", "2s", "dlq", "purge", "--service", "s"});
  EXPECT_EQ(r.exit_code, 78);
  EXPECT_THAT(r.err, ::testing::Not(HasSubstr("--request-id")));
}

}  // namespace
}  // namespace retryd::cli
