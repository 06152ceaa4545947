#include "client/cli/format.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "retryd/v1/envelope.pb.h"

namespace retryd::cli {
namespace {

google::protobuf::Timestamp Ts(int64_t seconds, int32_t nanos = 0) {
  google::protobuf::Timestamp ts;
  ts.set_seconds(seconds);
  ts.set_nanos(nanos);
  return ts;
}

TEST(FormatTimestampTest, Rfc3339UtcTruncatedToSeconds) {
  EXPECT_EQ(FormatTimestamp(Ts(1735787045, 999999999)), "2025-01-02T03:04:05Z");
  EXPECT_EQ(FormatTimestamp(Ts(1, 0)), "1970-01-01T00:00:01Z");
}

TEST(FormatTimestampTest, UnsetIsDash) { EXPECT_EQ(FormatTimestamp(Ts(0, 0)), "-"); }

TEST(HumanDurationTest, ReadableUnits) {
  EXPECT_EQ(HumanDuration(absl::ZeroDuration()), "0s");
  EXPECT_EQ(HumanDuration(absl::Milliseconds(250)), "250ms");
  EXPECT_EQ(HumanDuration(absl::Milliseconds(1500)), "1.5s");
  EXPECT_EQ(HumanDuration(absl::Microseconds(1500123)), "1.5s");
  EXPECT_EQ(HumanDuration(absl::Seconds(90)), "1m30s");
  EXPECT_EQ(HumanDuration(absl::Seconds(90) + absl::Milliseconds(700)), "1m30s");
  EXPECT_EQ(HumanDuration(absl::Hours(2)), "2h");
  EXPECT_EQ(HumanDuration(absl::Hours(26) + absl::Minutes(3)), "26h3m");
  EXPECT_EQ(HumanDuration(-absl::Seconds(5)), "-5s");
  EXPECT_EQ(HumanDuration(absl::Microseconds(36047)), "36ms");
  EXPECT_EQ(HumanDuration(absl::Microseconds(250)), "250us");
}

TEST(HumanDurationTest, FromProto) {
  google::protobuf::Duration d;
  d.set_seconds(6);
  d.set_nanos(500000000);
  EXPECT_EQ(HumanDuration(d), "6.5s");
  EXPECT_EQ(HumanDuration(google::protobuf::Duration()), "0s");
}

TEST(ProtoDurationTest, RoundTripsIncludingNegative) {
  for (const absl::Duration d : {absl::Milliseconds(1500), absl::Seconds(30),
                                 -absl::Milliseconds(1500), absl::ZeroDuration()}) {
    google::protobuf::Duration p;
    ToProtoDuration(d, &p);
    EXPECT_EQ(FromProtoDuration(p), d);
    EXPECT_TRUE((p.seconds() >= 0 && p.nanos() >= 0) || (p.seconds() <= 0 && p.nanos() <= 0));
  }
}

TEST(EnumLabelTest, NamesDashForUnspecifiedNumberForUnknown) {
  const auto* circuit = retryd::v1::CircuitState_descriptor();
  EXPECT_EQ(EnumLabel(circuit, retryd::v1::OPEN), "OPEN");
  EXPECT_EQ(EnumLabel(circuit, 0), "-");
  EXPECT_EQ(EnumLabel(circuit, 42), "42");
  EXPECT_EQ(EnumLabel(retryd::v1::DecisionKind_descriptor(), retryd::v1::DECISION_SCHEDULED,
                      "DECISION_"),
            "SCHEDULED");
}

TEST(IsPrintableUtf8Test, TextAndBinary) {
  EXPECT_TRUE(IsPrintableUtf8(""));
  EXPECT_TRUE(IsPrintableUtf8("{\"a\": 1}\n\tok\r\n"));
  EXPECT_TRUE(IsPrintableUtf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
  EXPECT_FALSE(IsPrintableUtf8(std::string("a\0b", 3)));
  EXPECT_FALSE(IsPrintableUtf8("\x1b[31mred"));
  EXPECT_FALSE(IsPrintableUtf8("\x7f"));
  EXPECT_FALSE(IsPrintableUtf8("\xff\xfe"));
  EXPECT_FALSE(IsPrintableUtf8("\xc3"));          // truncated sequence
  EXPECT_FALSE(IsPrintableUtf8("\xc0\xaf"));      // overlong '/'
  EXPECT_FALSE(IsPrintableUtf8("\xed\xa0\x80"));  // surrogate U+D800
  EXPECT_FALSE(IsPrintableUtf8("\xc2\x85"));      // C1 control U+0085
}

TEST(SanitizeCellTest, TruncatesOnCodePointBoundaries) {
  EXPECT_EQ(SanitizeCell("abcdefghij", 8), "abcde...");
  EXPECT_EQ(SanitizeCell("abcdefgh", 8), "abcdefgh");
  EXPECT_EQ(SanitizeCell("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 4), "\xc3\xa9...");
  EXPECT_EQ(SanitizeCell("a\nb"), "a b");
}

TEST(DisplayWidthTest, CountsCodePoints) {
  EXPECT_EQ(DisplayWidth("abc"), 3u);
  EXPECT_EQ(DisplayWidth("caf\xc3\xa9"), 4u);
  EXPECT_EQ(DisplayWidth(""), 0u);
}

}  // namespace
}  // namespace retryd::cli
