// FreeBytes: the space an unprivileged writer may still use on the filesystem that holds a
// directory (statvfs: available blocks × fragment size), for the engine's disk-full check.
#ifndef RETRYD_SERVER_STORE_FREE_SPACE_H_
#define RETRYD_SERVER_STORE_FREE_SPACE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace retryd {

// Bytes free for unprivileged writers on the filesystem of `dir`; an error when statvfs fails.
[[nodiscard]] absl::StatusOr<int64_t> FreeBytes(const std::string& dir);

}  // namespace retryd

#endif  // RETRYD_SERVER_STORE_FREE_SPACE_H_
