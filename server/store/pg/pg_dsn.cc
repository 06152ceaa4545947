#include "server/store/pg/pg_dsn.h"

#include <cctype>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace retryd::pg {

namespace {

constexpr absl::string_view kHidden = "***";

// A URI: the password in the user info (user:secret@) and a password= query parameter.
std::string RedactUri(absl::string_view uri) {
  std::string out;
  const size_t scheme_end = uri.find("://");
  size_t authority = scheme_end + 3;
  size_t authority_end = uri.find_first_of("/?", authority);
  if (authority_end == absl::string_view::npos) authority_end = uri.size();
  absl::string_view auth = uri.substr(authority, authority_end - authority);
  const size_t at = auth.rfind('@');
  if (at != absl::string_view::npos) {
    absl::string_view userinfo = auth.substr(0, at);
    const size_t colon = userinfo.find(':');
    if (colon != absl::string_view::npos) {
      out = absl::StrCat(uri.substr(0, authority), userinfo.substr(0, colon + 1), kHidden,
                         auth.substr(at));
    }
  }
  if (out.empty()) out = std::string(uri.substr(0, authority_end));
  absl::string_view rest = uri.substr(authority_end);
  // The query: key=value pairs separated by '&'.
  const size_t q = rest.find('?');
  if (q == absl::string_view::npos) return absl::StrCat(out, rest);
  absl::StrAppend(&out, rest.substr(0, q + 1));
  absl::string_view query = rest.substr(q + 1);
  bool first = true;
  while (true) {
    const size_t amp = query.find('&');
    absl::string_view pair = query.substr(0, amp);
    if (!first) out.push_back('&');
    first = false;
    if (absl::StartsWithIgnoreCase(pair, "password=")) {
      absl::StrAppend(&out, "password=", kHidden);
    } else {
      absl::StrAppend(&out, pair);
    }
    if (amp == absl::string_view::npos) break;
    query = query.substr(amp + 1);
  }
  return out;
}

// key=value pairs: values may be single-quoted with backslash escapes.
std::string RedactKeyValues(absl::string_view dsn) {
  std::string out;
  size_t i = 0;
  const size_t n = dsn.size();
  while (i < n) {
    if (std::isspace(static_cast<unsigned char>(dsn[i]))) {
      out.push_back(dsn[i++]);
      continue;
    }
    const size_t key_start = i;
    while (i < n && dsn[i] != '=' && !std::isspace(static_cast<unsigned char>(dsn[i]))) ++i;
    absl::string_view key = dsn.substr(key_start, i - key_start);
    // Up to and including '=' and the blanks around it.
    const size_t sep_start = i;
    while (i < n && std::isspace(static_cast<unsigned char>(dsn[i]))) ++i;
    if (i < n && dsn[i] == '=') ++i;
    while (i < n && std::isspace(static_cast<unsigned char>(dsn[i]))) ++i;
    absl::StrAppend(&out, key, dsn.substr(sep_start, i - sep_start));
    const size_t value_start = i;
    if (i < n && dsn[i] == '\'') {
      ++i;
      while (i < n && dsn[i] != '\'') {
        if (dsn[i] == '\\' && i + 1 < n) ++i;
        ++i;
      }
      if (i < n) ++i;
    } else {
      while (i < n && !std::isspace(static_cast<unsigned char>(dsn[i]))) ++i;
    }
    if (key == "password") {
      absl::StrAppend(&out, kHidden);
    } else {
      absl::StrAppend(&out, dsn.substr(value_start, i - value_start));
    }
  }
  return out;
}

}  // namespace

std::string RedactDsn(absl::string_view dsn) {
  if (absl::StartsWith(dsn, "postgresql://") || absl::StartsWith(dsn, "postgres://")) {
    return RedactUri(dsn);
  }
  return RedactKeyValues(dsn);
}

}  // namespace retryd::pg
