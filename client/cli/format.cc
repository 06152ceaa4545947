#include "client/cli/format.h"

#include <cstdint>

#include "absl/strings/str_cat.h"

namespace retryd::cli {
namespace {

bool IsContinuationByte(unsigned char c) { return (c & 0xC0) == 0x80; }

// Length of the UTF-8 sequence starting at s[i] if it is valid (no overlongs, no surrogates,
// at most U+10FFFF), else 0.
size_t ValidUtf8SequenceLength(std::string_view s, size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) return 1;
  size_t len = 0;
  uint32_t cp = 0;
  if ((c & 0xE0) == 0xC0) {
    len = 2;
    cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3;
    cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    const auto cc = static_cast<unsigned char>(s[i + k]);
    if (!IsContinuationByte(cc)) return 0;
    cp = (cp << 6) | (cc & 0x3F);
  }
  static constexpr uint32_t kMinForLength[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMinForLength[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

}  // namespace

absl::Duration FromProtoDuration(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

void ToProtoDuration(absl::Duration d, google::protobuf::Duration* out) {
  const absl::Duration whole = absl::Trunc(d, absl::Seconds(1));
  out->set_seconds(absl::ToInt64Seconds(whole));
  out->set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(d - whole)));
}

std::string FormatTimestamp(const google::protobuf::Timestamp& ts) {
  if (ts.seconds() == 0 && ts.nanos() == 0) return kNone;
  const absl::Time t = absl::FromUnixSeconds(ts.seconds());
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

std::string HumanDuration(absl::Duration d) {
  if (d == absl::ZeroDuration()) return "0s";
  const absl::Duration magnitude = d < absl::ZeroDuration() ? -d : d;
  if (magnitude >= absl::Minutes(1)) return absl::FormatDuration(absl::Trunc(d, absl::Seconds(1)));
  if (magnitude >= absl::Milliseconds(1)) {
    return absl::FormatDuration(absl::Trunc(d, absl::Milliseconds(1)));
  }
  return absl::FormatDuration(d);
}

std::string HumanDuration(const google::protobuf::Duration& d) {
  return HumanDuration(FromProtoDuration(d));
}

std::string EnumLabel(const google::protobuf::EnumDescriptor* descriptor, int value,
                      std::string_view strip_prefix) {
  if (value == 0) return kNone;
  const google::protobuf::EnumValueDescriptor* v =
      descriptor == nullptr ? nullptr : descriptor->FindValueByNumber(value);
  if (v == nullptr) return absl::StrCat(value);
  std::string_view name = v->name();
  if (!strip_prefix.empty() && name.size() > strip_prefix.size() &&
      name.substr(0, strip_prefix.size()) == strip_prefix) {
    name.remove_prefix(strip_prefix.size());
  }
  return std::string(name);
}

std::string OrNone(std::string s) { return s.empty() ? std::string(kNone) : s; }

bool IsPrintableUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') return false;
    if (c == 0x7F) return false;
    const size_t len = ValidUtf8SequenceLength(s, i);
    if (len == 0) return false;
    if (len == 2) {
      // C1 control characters U+0080..U+009F.
      const uint32_t cp = ((c & 0x1F) << 6) | (static_cast<unsigned char>(s[i + 1]) & 0x3F);
      if (cp < 0xA0) return false;
    }
    i += len;
  }
  return true;
}

size_t DisplayWidth(std::string_view s) {
  size_t width = 0;
  for (const char c : s) {
    if (!IsContinuationByte(static_cast<unsigned char>(c))) ++width;
  }
  return width;
}

std::string SanitizeCell(std::string_view s, size_t max_width) {
  std::string clean;
  clean.reserve(s.size());
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '\t' || c == '\n' || c == '\r') {
      clean.push_back(' ');
    } else if (c < 0x20 || c == 0x7F) {
      clean.push_back('?');
    } else {
      clean.push_back(ch);
    }
  }
  if (max_width == 0 || DisplayWidth(clean) <= max_width) return clean;
  // Keep max_width - 3 code points, then "...".
  const size_t keep = max_width > 3 ? max_width - 3 : 0;
  size_t points = 0;
  size_t end = 0;
  for (; end < clean.size(); ++end) {
    if (!IsContinuationByte(static_cast<unsigned char>(clean[end]))) {
      if (points == keep) break;
      ++points;
    }
  }
  clean.resize(end);
  clean += "...";
  return clean;
}

}  // namespace retryd::cli
