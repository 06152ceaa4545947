#include "server/auth/token_table.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/core/policy_set.h"

namespace retryd {
namespace {

constexpr size_t kMaxNameBytes = 64;

bool IsNameChar(char c) {
  return absl::ascii_isalnum(c) || c == '.' || c == '_' || c == '-' || c == ':' || c == '@';
}

bool IsValidTokenName(absl::string_view name) {
  if (name.empty() || name.size() > kMaxNameBytes) return false;
  for (char c : name) {
    if (!IsNameChar(c)) return false;
  }
  return true;
}

// "billing" for "billing.*"; "" when `pattern` is not such a pattern.
absl::string_view PatternStem(absl::string_view pattern) {
  if (!absl::EndsWith(pattern, ".*")) return absl::string_view();
  const absl::string_view stem = pattern.substr(0, pattern.size() - 2);
  return IsValidServiceName(stem) ? stem : absl::string_view();
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  return absl::ascii_tolower(c) - 'a' + 10;
}

bool ParseDigest(absl::string_view hex, Sha256Digest* out) {
  if (hex.size() != 2 * out->size()) return false;
  for (char c : hex) {
    if (!absl::ascii_isxdigit(c)) return false;
  }
  for (size_t i = 0; i < out->size(); ++i) {
    (*out)[i] = static_cast<uint8_t>(HexValue(hex[2 * i]) * 16 + HexValue(hex[2 * i + 1]));
  }
  return true;
}

absl::Status Invalid(absl::string_view path, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
}

}  // namespace

absl::string_view RoleName(Role role) { return role == Role::kOperator ? "OPERATOR" : "WORKER"; }

Sha256Digest Sha256(absl::string_view data) {
  Sha256Digest digest;
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest.data());
  return digest;
}

bool TokenEntry::MayActFor(absl::string_view service) const {
  if (!restricted()) return true;
  for (const std::string& allowed : services) {
    const absl::string_view stem = PatternStem(allowed);
    if (stem.empty()) {
      if (service == allowed) return true;
    } else if (service.size() > stem.size() + 1 && absl::StartsWith(service, stem) &&
               service[stem.size()] == '.') {
      return true;
    }
  }
  return false;
}

absl::StatusOr<TokenTable> TokenTable::FromConfig(const v1::AuthConfig& auth,
                                                  absl::string_view field_path) {
  TokenTable table;
  absl::flat_hash_set<std::string> names;
  absl::flat_hash_set<std::string> digests;
  for (int i = 0; i < auth.tokens_size(); ++i) {
    const v1::TokenConfig& t = auth.tokens(i);
    const std::string path = absl::StrCat(field_path, ".tokens[", i, "]");
    TokenEntry entry;
    if (!IsValidTokenName(t.name())) {
      return Invalid(absl::StrCat(path, ".name"),
                     absl::StrCat("must be 1 to 64 characters of [A-Za-z0-9._:@-], got \"",
                                  absl::CEscape(t.name()), "\""));
    }
    if (!names.insert(t.name()).second) {
      return Invalid(absl::StrCat(path, ".name"), absl::StrCat("duplicate token name \"",
                                                               t.name(), "\""));
    }
    entry.name = t.name();
    if (!ParseDigest(t.sha256(), &entry.digest)) {
      return Invalid(absl::StrCat(path, ".sha256"),
                     absl::StrCat("must be the 64 hex digits of the token's SHA-256 (printf %s "
                                  "\"$TOKEN\" | sha256sum), got ",
                                  t.sha256().size(), " characters"));
    }
    if (!digests.insert(absl::AsciiStrToLower(t.sha256())).second) {
      return Invalid(absl::StrCat(path, ".sha256"),
                     "the same digest as an earlier token: each token needs its own secret");
    }
    switch (t.role()) {
      case v1::WORKER: entry.role = Role::kWorker; break;
      case v1::OPERATOR: entry.role = Role::kOperator; break;
      default:
        return Invalid(absl::StrCat(path, ".role"), "must be WORKER or OPERATOR");
    }
    if (entry.role == Role::kOperator && t.services_size() > 0) {
      return Invalid(absl::StrCat(path, ".services"),
                     "only a WORKER token is limited to services; an OPERATOR may do everything");
    }
    for (int j = 0; j < t.services_size(); ++j) {
      const std::string& s = t.services(j);
      if (!IsValidServiceName(s) && PatternStem(s).empty()) {
        return Invalid(absl::StrCat(path, ".services[", j, "]"),
                       absl::StrCat("must be a service name ([a-z0-9][a-z0-9._-]{0,63}) or a "
                                    "pattern such as \"billing.*\", got \"",
                                    absl::CEscape(s), "\""));
      }
      entry.services.push_back(s);
    }
    table.entries_.push_back(std::move(entry));
  }
  return table;
}

const TokenEntry* TokenTable::Find(absl::string_view token) const {
  if (token.empty() || token.size() > kMaxBearerTokenBytes) return nullptr;
  const Sha256Digest presented = Sha256(token);
  const TokenEntry* found = nullptr;
  for (const TokenEntry& e : entries_) {
    // No early exit: the time taken does not tell which entry matched.
    if (CRYPTO_memcmp(e.digest.data(), presented.data(), presented.size()) == 0) found = &e;
  }
  return found;
}

}  // namespace retryd
