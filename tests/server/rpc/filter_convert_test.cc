#include "server/rpc/filter_convert.h"

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/rpc/page_token.h"
#include "tests/testing/status_matchers.h"

namespace retryd {
namespace {

using ::testing::HasSubstr;
using testing::IsOk;
using testing::StatusIs;

void ExpectInvalid(const v1::Filter& f, absl::string_view field) {
  EXPECT_THAT(FilterFromProto(f, "filter"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(absl::StrCat(field, ":"))))
      << f.ShortDebugString();
}

TEST(FilterFromProtoTest, ConvertsEveryField) {
  v1::Filter f;
  f.set_service("billing");
  f.add_error_codes("E1");
  f.add_error_classes(v1::PERMANENT);
  f.add_reasons(v1::RETRY_EXHAUSTED);
  f.add_schema_versions("v2");
  f.add_schema_versions("");
  f.add_message_ids("m1");
  f.add_fingerprints("0123456789abcdef");
  f.mutable_after()->set_seconds(100);
  f.mutable_before()->set_seconds(200);
  absl::StatusOr<EnvelopeFilter> got = FilterFromProto(f, "filter");
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->service, "billing");
  EXPECT_THAT(got->error_codes, ::testing::ElementsAre("E1"));
  EXPECT_THAT(got->error_classes, ::testing::ElementsAre(ErrorClass::kPermanent));
  EXPECT_THAT(got->reasons, ::testing::ElementsAre(DeadLetterReason::kRetryExhausted));
  EXPECT_THAT(got->schema_versions, ::testing::ElementsAre("v2", ""));
  EXPECT_THAT(got->message_ids, ::testing::ElementsAre("m1"));
  EXPECT_THAT(got->fingerprints, ::testing::ElementsAre("0123456789abcdef"));
  EXPECT_EQ(got->after, absl::FromUnixSeconds(100));
  EXPECT_EQ(got->before, absl::FromUnixSeconds(200));
  EXPECT_TRUE(FilterFromProto(v1::Filter(), "filter")->empty());
}

TEST(FilterFromProtoTest, RejectsBadValuesNamingTheField) {
  v1::Filter f;
  f.set_service("Bad Name");
  ExpectInvalid(f, "filter.service");
  f = v1::Filter();
  f.add_error_codes("");
  ExpectInvalid(f, "filter.error_codes[0]");
  f = v1::Filter();
  f.add_error_codes(std::string(129, 'E'));
  ExpectInvalid(f, "filter.error_codes[0]");
  f = v1::Filter();
  f.add_error_classes(v1::TRANSIENT);
  f.add_error_classes(v1::ERROR_CLASS_UNSPECIFIED);
  ExpectInvalid(f, "filter.error_classes[1]");
  f = v1::Filter();
  f.add_error_classes(static_cast<v1::ErrorClass>(42));
  ExpectInvalid(f, "filter.error_classes[0]");
  f = v1::Filter();
  f.add_reasons(v1::DEAD_LETTER_REASON_UNSPECIFIED);
  ExpectInvalid(f, "filter.reasons[0]");
  f = v1::Filter();
  f.add_reasons(static_cast<v1::DeadLetterReason>(9));
  ExpectInvalid(f, "filter.reasons[0]");
  f = v1::Filter();
  f.add_schema_versions(std::string(65, 'v'));
  ExpectInvalid(f, "filter.schema_versions[0]");
  f = v1::Filter();
  f.add_message_ids("");
  ExpectInvalid(f, "filter.message_ids[0]");
  f = v1::Filter();
  f.add_fingerprints("XYZ");
  ExpectInvalid(f, "filter.fingerprints[0]");
  f = v1::Filter();
  for (int i = 0; i <= kMaxFilterValues; ++i) f.add_message_ids(absl::StrCat("m", i));
  ExpectInvalid(f, "filter.message_ids");
  f = v1::Filter();
  f.mutable_after()->set_seconds(-5);
  ExpectInvalid(f, "filter.after");
  f = v1::Filter();
  f.mutable_before()->set_nanos(-1);
  ExpectInvalid(f, "filter.before");
  f = v1::Filter();
  f.mutable_after()->set_seconds(200);
  f.mutable_before()->set_seconds(100);
  ExpectInvalid(f, "filter.before");
}

TEST(CanonicalFilterKeyTest, IgnoresValueOrderAndDuplicatesButNotValues) {
  EnvelopeFilter a;
  a.error_codes = {"B", "A", "A"};
  EnvelopeFilter b;
  b.error_codes = {"A", "B"};
  EXPECT_EQ(CanonicalFilterKey(a), CanonicalFilterKey(b));
  b.error_codes = {"A", "C"};
  EXPECT_NE(CanonicalFilterKey(a), CanonicalFilterKey(b));
  EnvelopeFilter c;
  c.schema_versions = {"A", "B"};  // Same values in another field.
  EXPECT_NE(CanonicalFilterKey(c), CanonicalFilterKey(b));
}

TEST(PageTokenTest, CarriesTheKeyAndRefusesTamperingAndOtherFilters) {
  const PageKey key{absl::FromUnixMicros(1234567), 42, "0123456789abcdef"};
  const std::string token = EncodePageToken("fg", "filter-a", key);
  absl::StatusOr<PageKey> back = DecodePageToken("fg", "filter-a", token);
  ASSERT_THAT(back, IsOk());
  EXPECT_EQ(back->time, key.time);
  EXPECT_EQ(back->id, key.id);
  EXPECT_EQ(back->text, key.text);
  EXPECT_THAT(DecodePageToken("fg", "filter-b", token),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("different filter")));
  EXPECT_THAT(DecodePageToken("dl", "filter-a", token),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("page_token")));
  for (size_t i = 0; i < token.size(); ++i) {
    std::string bad = token;
    bad[i] = bad[i] == 'A' ? 'B' : 'A';
    EXPECT_THAT(DecodePageToken("fg", "filter-a", bad),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("page_token")))
        << "byte " << i;
  }
}

}  // namespace
}  // namespace retryd
