// Opaque keyset page tokens: base64url("<kind>:<filter hash>:<time us>:<id>:<check>"). The check
// and filter hash make a tampered token, or one reused with another filter, INVALID_ARGUMENT.
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
};

// `kind` names the listing ("dl", "rt"); `filter` is a canonical serialization of its filter.
std::string EncodePageToken(absl::string_view kind, absl::string_view filter, const PageKey& key);
// INVALID_ARGUMENT "page_token: ..." when the token is malformed, tampered with, from another
// listing, or issued for another filter.
absl::StatusOr<PageKey> DecodePageToken(absl::string_view kind, absl::string_view filter,
                                        absl::string_view token);

}  // namespace retryd

#endif  // RETRYD_SERVER_RPC_PAGE_TOKEN_H_
