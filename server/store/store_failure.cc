#include "server/store/store_failure.h"

#include <utility>

#include "absl/strings/cord.h"

namespace retryd {
namespace {

constexpr absl::string_view kPayloadUrl = "type.retryd.dev/store-failure";
constexpr absl::string_view kFencedUrl = "type.retryd.dev/store-fenced";

}  // namespace

absl::Status MarkStoreFailure(absl::Status status) {
  if (!status.ok()) status.SetPayload(kPayloadUrl, absl::Cord("1"));
  return status;
}

bool IsStoreFailure(const absl::Status& status) {
  return !status.ok() && status.GetPayload(kPayloadUrl).has_value();
}

absl::Status MarkFenced(absl::Status status) {
  if (!status.ok()) status.SetPayload(kFencedUrl, absl::Cord("1"));
  return MarkStoreFailure(std::move(status));
}

bool IsFenced(const absl::Status& status) {
  return !status.ok() && status.GetPayload(kFencedUrl).has_value();
}

}  // namespace retryd
