// Pure value formatting shared by the commands' table and detail views: times, durations, enum
// labels, payload text detection and table-cell hygiene. No I/O.
#ifndef RETRYD_CLIENT_CLI_FORMAT_H_
#define RETRYD_CLIENT_CLI_FORMAT_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/timestamp.pb.h"

namespace retryd::cli {

// What an empty or unset value shows as in tables and detail views.
inline constexpr char kNone[] = "-";

absl::Duration FromProtoDuration(const google::protobuf::Duration& d);
void ToProtoDuration(absl::Duration d, google::protobuf::Duration* out);

// RFC 3339 in UTC with seconds precision ("2025-01-02T03:04:05Z"); kNone for an unset (all-zero)
// timestamp. Fractions of a second are truncated.
std::string FormatTimestamp(const google::protobuf::Timestamp& ts);

// A human duration: "0s", "250ms", "1.5s", "1m30s", "2h", "26h3m". From 1 ms to a minute,
// millisecond precision; from a minute up, whole seconds; below 1 ms, as is.
std::string HumanDuration(absl::Duration d);
std::string HumanDuration(const google::protobuf::Duration& d);

// The name of enum value `value`; kNone for 0 (every retryd enum's UNSPECIFIED), the number for
// a value this build does not know. `strip_prefix` is removed from the front of the name
// ("DECISION_" turns DECISION_SCHEDULED into SCHEDULED).
std::string EnumLabel(const google::protobuf::EnumDescriptor* descriptor, int value,
                      std::string_view strip_prefix = "");

// `s`, or kNone when it is empty.
std::string OrNone(std::string s);

// True if `s` is valid UTF-8 without control characters other than tab, CR and LF — safe to
// print to a terminal as text.
bool IsPrintableUtf8(std::string_view s);

// Number of Unicode code points in `s` (bytes that are not UTF-8 continuation bytes): the
// column width used to align tables.
size_t DisplayWidth(std::string_view s);

// Makes `s` fit on one table line: tabs and line breaks become spaces, other control characters
// '?'; at most `max_width` code points, the last three replaced by "..." when cut (0 = no limit).
std::string SanitizeCell(std::string_view s, size_t max_width = 0);

}  // namespace retryd::cli

#endif  // RETRYD_CLIENT_CLI_FORMAT_H_
