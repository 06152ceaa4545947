#include "client/cli/filter_flags.h"

#include <cstdint>
#include <limits>

#include "CLI/CLI.hpp"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/cli/format.h"
#include "google/protobuf/descriptor.h"

namespace retryd::cli {
namespace {

// Every named value of an enum but UNSPECIFIED (0), for CLI::IsMember.
std::vector<std::string> EnumNames(const google::protobuf::EnumDescriptor* descriptor) {
  std::vector<std::string> names;
  for (int i = 0; i < descriptor->value_count(); ++i) {
    if (descriptor->value(i)->number() != 0) names.push_back(descriptor->value(i)->name());
  }
  return names;
}

// "7d" -> 7 days. absl::ParseDuration has no day unit; operators think in days for DLQ ages.
bool ParseDays(const std::string& text, absl::Duration* out) {
  if (text.size() < 2 || text.back() != 'd') return false;
  int64_t days = 0;
  if (!absl::SimpleAtoi(text.substr(0, text.size() - 1), &days) || days < 0 ||
      days > 100 * 365) {
    return false;
  }
  *out = absl::Hours(24 * days);
  return true;
}

CLI::Validator TimeBoundValidator() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        absl::Time unused;
        std::string error;
        if (!ParseTimeBound(value, absl::Now(), &unused, &error)) return error;
        return "";
      },
      "TIME");
}

void SetTimestamp(absl::Time t, google::protobuf::Timestamp* ts) {
  const int64_t seconds = absl::ToUnixSeconds(t);
  ts->set_seconds(seconds);
  ts->set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(t - absl::FromUnixSeconds(seconds))));
}

absl::Time FromTimestamp(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

// Exact RFC 3339 in UTC ("Z"), fractions only when there are some.
std::string ExactTime(const google::protobuf::Timestamp& ts) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E*SZ", FromTimestamp(ts), absl::UTCTimeZone());
}

template <typename Values, typename Label>
void AppendSummary(const std::string& key, const Values& values, Label label,
                   std::vector<std::string>* parts) {
  if (values.empty()) return;
  std::vector<std::string> labels;
  for (const auto& v : values) labels.push_back(SanitizeCell(label(v)));
  parts->push_back(absl::StrCat(key, "=", absl::StrJoin(labels, "|")));
}

template <typename Values, typename Label>
void AppendFlags(const std::string& flag, const Values& values, Label label, std::string* out) {
  for (const auto& v : values) absl::StrAppend(out, " ", flag, " ", ShellQuote(label(v)));
}

}  // namespace

const char kFilterHelp[] =
    R"(Filters: the values of one repeatable flag are ORed, different flags ANDed.
Times: RFC 3339 (2025-01-02T15:04:05Z, any offset), "now", or an age meaning
that long ago (90m, 2h, 7d; "-2h" is the same as "2h").)";

bool FilterFlags::empty() const {
  return service.empty() && error_codes.empty() && classes.empty() && reasons.empty() &&
         schema_versions.empty() && message_ids.empty() && fingerprints.empty() &&
         after.empty() && before.empty();
}

void AddFilterFlags(CLI::App* cmd, FilterFlags* flags, FilterTarget target) {
  const bool dead_letters = target == FilterTarget::kDeadLetters;
  const std::string time_field = dead_letters ? "dead_lettered_at" : "next_retry_at";
  cmd->footer(kFilterHelp);
  cmd->add_option("--service", flags->service, "Only this service (exact name)")
      ->multi_option_policy(CLI::MultiOptionPolicy::Throw);
  cmd->add_option("--error-code", flags->error_codes,
                  "Only this last error code (repeatable; values ORed)");
  cmd->add_option("--class", flags->classes,
                  "Only this error class: TRANSIENT, RECOVERABLE, PERMANENT (repeatable)")
      ->transform(CLI::IsMember(EnumNames(retryd::v1::ErrorClass_descriptor()), CLI::ignore_case));
  if (dead_letters) {
    cmd->add_option("--reason", flags->reasons,
                    "Only this dead-letter reason: NON_RETRYABLE, RETRY_EXHAUSTED, "
                    "DEADLINE_EXCEEDED, BUDGET_EXHAUSTED (repeatable)")
        ->transform(CLI::IsMember(EnumNames(retryd::v1::DeadLetterReason_descriptor()),
                                  CLI::ignore_case));
  }
  cmd->add_option("--schema-version", flags->schema_versions,
                  "Only this payload schema version (repeatable)");
  cmd->add_option("--message-id", flags->message_ids, "Only this message id (repeatable)");
  if (dead_letters) {
    cmd->add_option("--fingerprint", flags->fingerprints,
                    "Only this failure group (from 'dlq groups'; repeatable)");
  }
  cmd->add_option("--after", flags->after,
                  absl::StrCat("Only ", time_field,
                               " at or after this time: RFC 3339, or an age like 2h or 7d "
                               "(= that long ago)"))
      ->check(TimeBoundValidator())
      ->multi_option_policy(CLI::MultiOptionPolicy::Throw);
  cmd->add_option("--before", flags->before,
                  absl::StrCat("Only ", time_field, " before this time (same forms as --after)"))
      ->check(TimeBoundValidator())
      ->multi_option_policy(CLI::MultiOptionPolicy::Throw);
}

bool ParseTimeBound(const std::string& text, absl::Time now, absl::Time* out,
                    std::string* error) {
  if (text == "now") {
    *out = absl::FromUnixSeconds(absl::ToUnixSeconds(now));
    return true;
  }
  std::string parse_error;
  if (absl::ParseTime(absl::RFC3339_full, text, out, &parse_error)) return true;
  std::string age_text = text;
  if (!age_text.empty() && age_text.front() == '-') age_text.erase(0, 1);
  absl::Duration age;
  if (ParseDays(age_text, &age) ||
      (!age_text.empty() && age_text.front() != '-' &&
       ParseNonNegativeDuration(age_text, &age))) {
    // Whole seconds, so the time prints back exactly in a next-page hint.
    *out = absl::FromUnixSeconds(absl::ToUnixSeconds(now)) - absl::Ceil(age, absl::Seconds(1));
    return true;
  }
  *error = absl::StrCat("invalid time \"", text,
                        "\" (expected RFC 3339 like 2025-01-02T15:04:05Z, \"now\", or an age "
                        "like 90m, 2h, 7d)");
  return false;
}

bool BuildFilter(const FilterFlags& flags, absl::Time now, retryd::v1::Filter* filter,
                 std::string* error) {
  filter->Clear();
  filter->set_service(flags.service);
  for (const std::string& code : flags.error_codes) filter->add_error_codes(code);
  for (const std::string& name : flags.classes) {
    retryd::v1::ErrorClass value;
    if (!retryd::v1::ErrorClass_Parse(absl::AsciiStrToUpper(name), &value)) {
      *error = absl::StrCat("--class: unknown error class \"", name, "\"");
      return false;
    }
    filter->add_error_classes(value);
  }
  for (const std::string& name : flags.reasons) {
    retryd::v1::DeadLetterReason value;
    if (!retryd::v1::DeadLetterReason_Parse(absl::AsciiStrToUpper(name), &value)) {
      *error = absl::StrCat("--reason: unknown dead-letter reason \"", name, "\"");
      return false;
    }
    filter->add_reasons(value);
  }
  for (const std::string& v : flags.schema_versions) filter->add_schema_versions(v);
  for (const std::string& id : flags.message_ids) filter->add_message_ids(id);
  for (const std::string& fp : flags.fingerprints) filter->add_fingerprints(fp);
  absl::Time after;
  absl::Time before;
  if (!flags.after.empty()) {
    if (!ParseTimeBound(flags.after, now, &after, error)) {
      *error = absl::StrCat("--after: ", *error);
      return false;
    }
    SetTimestamp(after, filter->mutable_after());
  }
  if (!flags.before.empty()) {
    if (!ParseTimeBound(flags.before, now, &before, error)) {
      *error = absl::StrCat("--before: ", *error);
      return false;
    }
    SetTimestamp(before, filter->mutable_before());
  }
  if (!flags.after.empty() && !flags.before.empty() && after >= before) {
    *error = absl::StrCat("--after (", ExactTime(filter->after()),
                          ") must be earlier than --before (", ExactTime(filter->before()), ")");
    return false;
  }
  return true;
}

std::string FilterSummary(const retryd::v1::Filter& filter) {
  std::vector<std::string> parts;
  const auto same = [](const std::string& s) { return s; };
  if (!filter.service().empty()) parts.push_back("service=" + SanitizeCell(filter.service()));
  AppendSummary("error_code", filter.error_codes(), same, &parts);
  AppendSummary("class", filter.error_classes(), [](int v) {
    return EnumLabel(retryd::v1::ErrorClass_descriptor(), v);
  }, &parts);
  AppendSummary("reason", filter.reasons(), [](int v) {
    return EnumLabel(retryd::v1::DeadLetterReason_descriptor(), v);
  }, &parts);
  AppendSummary("schema_version", filter.schema_versions(), same, &parts);
  AppendSummary("message_id", filter.message_ids(), same, &parts);
  AppendSummary("fingerprint", filter.fingerprints(), same, &parts);
  if (filter.has_after()) parts.push_back("after=" + ExactTime(filter.after()));
  if (filter.has_before()) parts.push_back("before=" + ExactTime(filter.before()));
  return parts.empty() ? "(all)" : absl::StrJoin(parts, " ");
}

std::string FilterAsFlags(const retryd::v1::Filter& filter) {
  std::string out;
  const auto same = [](const std::string& s) { return s; };
  if (!filter.service().empty()) absl::StrAppend(&out, " --service ", ShellQuote(filter.service()));
  AppendFlags("--error-code", filter.error_codes(), same, &out);
  AppendFlags("--class", filter.error_classes(), [](int v) {
    return EnumLabel(retryd::v1::ErrorClass_descriptor(), v);
  }, &out);
  AppendFlags("--reason", filter.reasons(), [](int v) {
    return EnumLabel(retryd::v1::DeadLetterReason_descriptor(), v);
  }, &out);
  AppendFlags("--schema-version", filter.schema_versions(), same, &out);
  AppendFlags("--message-id", filter.message_ids(), same, &out);
  AppendFlags("--fingerprint", filter.fingerprints(), same, &out);
  if (filter.has_after()) absl::StrAppend(&out, " --after ", ExactTime(filter.after()));
  if (filter.has_before()) absl::StrAppend(&out, " --before ", ExactTime(filter.before()));
  return out;
}

std::string ShellQuote(const std::string& s) {
  bool safe = !s.empty();
  for (const char c : s) {
    const bool word_char = absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
                           absl::StrContains("-_.:/@%+=,", c);
    if (!word_char) {
      safe = false;
      break;
    }
  }
  if (safe) return s;
  std::string out = "'";
  for (const char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out.push_back(c);
    }
  }
  out.push_back('\'');
  return out;
}

void AddPageFlags(CLI::App* cmd, PageFlags* flags, const std::string& noun) {
  cmd->add_option("--page-size", flags->page_size,
                  absl::StrCat(noun, " per page (0 = server default 50, max 1000)"))
      ->check(NonNegativeIntValidator());
  cmd->add_option("--page-token", flags->page_token, "Continue from this page token");
  cmd->add_flag("--all", flags->all, "Follow page tokens and list every page");
  cmd->add_option("--limit", flags->limit,
                  absl::StrCat("Follow page tokens until this many ", noun, " (0 = one page)"))
      ->check(NonNegativeIntValidator());
}

std::string NextPageHint(const std::string& command, const retryd::v1::Filter* filter,
                         int page_size, const std::string& next_page_token) {
  std::string hint = absl::StrCat("Next page: ", command);
  if (filter != nullptr) hint += FilterAsFlags(*filter);
  if (page_size > 0) absl::StrAppend(&hint, " --page-size ", page_size);
  absl::StrAppend(&hint, " --page-token ", ShellQuote(next_page_token));
  return hint;
}

}  // namespace retryd::cli
