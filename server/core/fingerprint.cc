#include "server/core/fingerprint.h"

#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace retryd {
namespace {

bool IsHex(char c) { return absl::ascii_isxdigit(static_cast<unsigned char>(c)); }
bool IsDigit(char c) { return absl::ascii_isdigit(static_cast<unsigned char>(c)); }

// Characters of one token: letters, digits and the joiners ids are written with ("ord_9f1c",
// UUIDs, "req-42").
bool IsTokenChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
}

// Shortest run of hex letters without a digit that is taken for an id ("deadbeef"); shorter ones
// are words ("face", "added").
constexpr size_t kMinLetterOnlyHexId = 8;

// True when a token is an id or a number: it holds a digit (decimal, hex, UUID, "ord_9f1c",
// "30s"), or it is a long run of hex letters.
bool IsIdToken(absl::string_view token) {
  bool all_hex = true;
  for (char c : token) {
    if (IsDigit(c)) return true;
    all_hex = all_hex && IsHex(c);
  }
  return all_hex && token.size() >= kMinLetterOnlyHexId;
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
    if (IsTokenChar(c)) {
      size_t end = i;
      while (end < m.size() && IsTokenChar(m[end])) ++end;
      const absl::string_view token = m.substr(i, end - i);
      if (IsIdToken(token)) {
        out.append(kIdPlaceholder);
      } else {
        out.append(token.data(), token.size());
      }
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
