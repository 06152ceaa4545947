#include "server/store/store_failure.h"

#include "absl/strings/cord.h"

namespace retryd {
namespace {

constexpr absl::string_view kPayloadUrl = "type.retryd.dev/store-failure";

}  // namespace

absl::Status MarkStoreFailure(absl::Status status) {
  if (!status.ok()) status.SetPayload(kPayloadUrl, absl::Cord("1"));
  return status;
}

bool IsStoreFailure(const absl::Status& status) {
  return !status.ok() && status.GetPayload(kPayloadUrl).has_value();
}

}  // namespace retryd
