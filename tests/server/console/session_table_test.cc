// SessionTable: sessions are random, expire when idle, are refreshed by use, and are bounded.
#include "server/console/session_table.h"

#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"

namespace retryd {
namespace {

TEST(SessionTableTest, CreateGivesRandomIdAndCsrfTokenAndKeepsTheBearerToken) {
  testing::FakeClock clock;
  SessionTable table(&clock, absl::Minutes(30));
  absl::StatusOr<ConsoleSession> a = table.Create("tok-a", "ops");
  absl::StatusOr<ConsoleSession> b = table.Create("tok-b", "ops");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->id.size(), 64u);
  EXPECT_EQ(a->csrf_token.size(), 64u);
  EXPECT_NE(a->id, b->id);
  EXPECT_NE(a->id, a->csrf_token);
  EXPECT_NE(a->csrf_token, b->csrf_token);
  std::optional<ConsoleSession> found = table.Lookup(a->id);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->bearer_token, "tok-a");
  EXPECT_EQ(found->csrf_token, a->csrf_token);
  EXPECT_EQ(found->identity, "ops");
}

TEST(SessionTableTest, UnknownAndEmptyIdsFindNothing) {
  testing::FakeClock clock;
  SessionTable table(&clock, absl::Minutes(30));
  ASSERT_TRUE(table.Create("t", "ops").ok());
  EXPECT_FALSE(table.Lookup("").has_value());
  EXPECT_FALSE(table.Lookup(std::string(64, '0')).has_value());
}

TEST(SessionTableTest, IdleSessionExpiresAndUseRefreshesIt) {
  testing::FakeClock clock;
  SessionTable table(&clock, absl::Minutes(30));
  absl::StatusOr<ConsoleSession> s = table.Create("t", "ops");
  ASSERT_TRUE(s.ok());
  clock.Advance(absl::Minutes(29));
  EXPECT_TRUE(table.Lookup(s->id).has_value());  // Used: the idle clock restarts.
  clock.Advance(absl::Minutes(29));
  EXPECT_TRUE(table.Lookup(s->id).has_value());
  clock.Advance(absl::Minutes(30));
  EXPECT_FALSE(table.Lookup(s->id).has_value());
  EXPECT_EQ(table.size(), 0u);
}

TEST(SessionTableTest, RemoveLogsOut) {
  testing::FakeClock clock;
  SessionTable table(&clock, absl::Minutes(30));
  absl::StatusOr<ConsoleSession> s = table.Create("t", "ops");
  ASSERT_TRUE(s.ok());
  table.Remove(s->id);
  EXPECT_FALSE(table.Lookup(s->id).has_value());
}

TEST(SessionTableTest, BoundedEvictingTheLeastRecentlyUsed) {
  testing::FakeClock clock;
  SessionTable table(&clock, absl::Minutes(30), /*max_sessions=*/2);
  absl::StatusOr<ConsoleSession> a = table.Create("a", "ops");
  clock.Advance(absl::Seconds(1));
  absl::StatusOr<ConsoleSession> b = table.Create("b", "ops");
  clock.Advance(absl::Seconds(1));
  ASSERT_TRUE(table.Lookup(a->id).has_value());  // a is now the most recent.
  absl::StatusOr<ConsoleSession> c = table.Create("c", "ops");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(table.size(), 2u);
  EXPECT_TRUE(table.Lookup(a->id).has_value());
  EXPECT_FALSE(table.Lookup(b->id).has_value());
  EXPECT_TRUE(table.Lookup(c->id).has_value());
}

}  // namespace
}  // namespace retryd
