// Opaque keyset page tokens: base64url("<kind>:<filter hash>:<time us>:<id>:<hex text>:<check>").
// The check and filter hash make a tampered token, or one reused with another filter,
// INVALID_ARGUMENT. The check is a checksum, not a signature: it catches corruption and edits,
// and a forged token can only name a position in a listing the caller may read anyway.
#ifndef RETRYD_SERVER_RPC_PAGE_TOKEN_H_
#define RETRYD_SERVER_RPC_PAGE_TOKEN_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace retryd {

struct PageKey {
  absl::Time time;
  int64_t id = 0;
  std::string text;  // A string key part (e.g. a fingerprint); empty for most listings.
};

// `kind` names the listing ("dl", "rt", "fg", "au", "rp"); `filter` is a canonical serialization
// of its filter (e.g. CanonicalFilterKey), of which the token carries a hash.
std::string EncodePageToken(absl::string_view kind, absl::string_view filter, const PageKey& key);
// INVALID_ARGUMENT "page_token: ..." when the token is malformed, tampered with, from another
// listing, or issued for another filter.
absl::StatusOr<PageKey> DecodePageToken(absl::string_view kind, absl::string_view filter,
                                        absl::string_view token);

}  // namespace retryd

#endif  // RETRYD_SERVER_RPC_PAGE_TOKEN_H_
