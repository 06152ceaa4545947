#include "server/core/filter.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace retryd {
namespace {

// Appends "<tag>[<len>:<value>...]" with the values sorted and deduplicated.
void AppendList(std::string* out, char tag, std::vector<std::string> values) {
  std::sort(values.begin(), values.end());
  values.erase(std::unique(values.begin(), values.end()), values.end());
  absl::StrAppend(out, std::string(1, tag), "[");
  for (const std::string& v : values) absl::StrAppend(out, v.size(), ":", v);
  absl::StrAppend(out, "]");
}

template <typename Enum>
std::vector<std::string> EnumStrings(const std::vector<Enum>& values) {
  std::vector<std::string> out;
  for (Enum v : values) out.push_back(absl::StrCat(static_cast<int>(v)));
  return out;
}

}  // namespace

std::string CanonicalFilterKey(const EnvelopeFilter& f) {
  std::string out;
  AppendList(&out, 's', f.service.empty() ? std::vector<std::string>{}
                                          : std::vector<std::string>{f.service});
  AppendList(&out, 'e', f.error_codes);
  AppendList(&out, 'c', EnumStrings(f.error_classes));
  AppendList(&out, 'r', EnumStrings(f.reasons));
  AppendList(&out, 'v', f.schema_versions);
  AppendList(&out, 'm', f.message_ids);
  AppendList(&out, 'f', f.fingerprints);
  absl::StrAppend(&out, "a", absl::FormatTime(f.after), "b", absl::FormatTime(f.before));
  return out;
}

}  // namespace retryd
