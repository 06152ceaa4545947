#include "server/core/fingerprint.h"

#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace retryd {
namespace {

bool IsHex(char c) { return absl::ascii_isxdigit(static_cast<unsigned char>(c)); }
bool IsDigit(char c) { return absl::ascii_isdigit(static_cast<unsigned char>(c)); }
bool IsAlnum(char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)); }

// True when `s` starts with a UUID (8-4-4-4-12 hex digits) not glued to a following alnum.
bool StartsWithUuid(absl::string_view s) {
  static constexpr int kGroups[] = {8, 4, 4, 4, 12};
  size_t pos = 0;
  for (int g = 0; g < 5; ++g) {
    if (g > 0) {
      if (pos >= s.size() || s[pos] != '-') return false;
      ++pos;
    }
    for (int i = 0; i < kGroups[g]; ++i, ++pos) {
      if (pos >= s.size() || !IsHex(s[pos])) return false;
    }
  }
  return pos == s.size() || !IsAlnum(s[pos]);
}

// Replaces one alphanumeric word: a 0x-prefixed or long hex token with a digit → <hex>, an
// all-digit token → <n>, otherwise each digit run inside the word → <n> ("30s" → "<n>s").
void AppendWord(absl::string_view word, std::string* out) {
  bool all_hex = true;
  bool has_digit = false;
  for (char c : word) {
    all_hex = all_hex && IsHex(c);
    has_digit = has_digit || IsDigit(c);
  }
  if (word.size() > 2 && word[0] == '0' && (word[1] == 'x' || word[1] == 'X')) {
    bool rest_hex = true;
    for (char c : word.substr(2)) rest_hex = rest_hex && IsHex(c);
    if (rest_hex) {
      out->append("<hex>");
      return;
    }
  }
  if (all_hex && has_digit && word.size() >= 6) {
    bool all_digits = true;
    for (char c : word) all_digits = all_digits && IsDigit(c);
    out->append(all_digits ? "<n>" : "<hex>");
    return;
  }
  for (size_t i = 0; i < word.size();) {
    if (IsDigit(word[i])) {
      while (i < word.size() && IsDigit(word[i])) ++i;
      out->append("<n>");
    } else {
      out->push_back(word[i++]);
    }
  }
}

uint64_t Fnv1a(absl::string_view data, uint64_t h = 1469598103934665603ULL) {
  for (unsigned char c : data) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

}  // namespace

std::string NormalizeErrorMessage(absl::string_view m) {
  std::string out;
  out.reserve(m.size());
  bool pending_space = false;
  for (size_t i = 0; i < m.size();) {
    const char c = m[i];
    if (absl::ascii_isspace(static_cast<unsigned char>(c))) {
      pending_space = !out.empty();
      ++i;
      continue;
    }
    if (pending_space) {
      out.push_back(' ');
      pending_space = false;
    }
    if (c == '\'' || c == '"' || c == '`') {
      const size_t close = m.find(c, i + 1);
      if (close != absl::string_view::npos) {
        out.append("<q>");
        i = close + 1;
        continue;
      }
      out.push_back(c);
      ++i;
      continue;
    }
    if (IsAlnum(c)) {
      if (StartsWithUuid(m.substr(i))) {
        out.append("<uuid>");
        i += 36;
        continue;
      }
      size_t end = i;
      while (end < m.size() && IsAlnum(m[end])) ++end;
      AppendWord(m.substr(i, end - i), &out);
      i = end;
      continue;
    }
    out.push_back(c);
    ++i;
  }
  return out;
}

std::string FailureFingerprint(absl::string_view service, ErrorClass error_class,
                               absl::string_view error_code, absl::string_view message) {
  // Unit separators keep ("a", "bc") and ("ab", "c") apart.
  const std::string key = absl::StrCat(service, "\x1f", static_cast<int>(error_class), "\x1f",
                                       error_code, "\x1f", NormalizeErrorMessage(message));
  return absl::StrFormat("%016x", Fnv1a(key));
}

std::string FailureFingerprint(const Envelope& e) {
  return FailureFingerprint(e.service, e.last_error_class, e.last_error.error_code,
                            e.last_error.message);
}

bool IsFingerprint(absl::string_view s) {
  if (s.size() != kFingerprintLength) return false;
  for (char c : s) {
    if (!(IsDigit(c) || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace retryd
