#include "server/rpc/page_token.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace retryd {
namespace {

// FNV-1a: stable across processes (absl::Hash is not).
uint64_t Fnv1a(absl::string_view data, uint64_t seed = 1469598103934665603ULL) {
  uint64_t h = seed;
  for (unsigned char c : data) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

constexpr uint64_t kCheckSeed = 0x72657472796431ULL;  // Distinct from the filter hash seed.

absl::Status BadToken(absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("page_token: ", why));
}

}  // namespace

std::string EncodePageToken(absl::string_view kind, absl::string_view filter, const PageKey& key) {
  std::string body = absl::StrCat(kind, ":", absl::Hex(Fnv1a(filter)), ":",
                                  absl::ToUnixMicros(key.time), ":", key.id, ":",
                                  absl::BytesToHexString(key.text));
  absl::StrAppend(&body, ":", absl::Hex(Fnv1a(body, kCheckSeed)));
  return absl::WebSafeBase64Escape(body);
}

absl::StatusOr<PageKey> DecodePageToken(absl::string_view kind, absl::string_view filter,
                                        absl::string_view token) {
  std::string body;
  if (!absl::WebSafeBase64Unescape(token, &body)) return BadToken("is not a valid page token");
  const size_t last = body.rfind(':');
  if (last == std::string::npos) return BadToken("is not a valid page token");
  const absl::string_view signed_part = absl::string_view(body).substr(0, last);
  if (absl::StrCat(absl::Hex(Fnv1a(signed_part, kCheckSeed))) != body.substr(last + 1)) {
    return BadToken("is not a valid page token (tampered or truncated)");
  }
  std::vector<absl::string_view> parts = absl::StrSplit(signed_part, ':');
  PageKey key;
  int64_t micros = 0;
  if (parts.size() != 5 || !absl::SimpleAtoi(parts[2], &micros) ||
      !absl::SimpleAtoi(parts[3], &key.id) || parts[4].size() % 2 != 0) {
    return BadToken("is not a valid page token");
  }
  for (char c : parts[4]) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) {
      return BadToken("is not a valid page token");
    }
  }
  key.text = absl::HexStringToBytes(parts[4]);
  if (parts[0] != kind) return BadToken("was issued by another listing");
  if (parts[1] != absl::StrCat(absl::Hex(Fnv1a(filter)))) {
    return BadToken("was issued for a different filter; start again without a token");
  }
  key.time = absl::FromUnixMicros(micros);
  return key;
}

}  // namespace retryd
