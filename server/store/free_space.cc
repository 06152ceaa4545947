#include "server/store/free_space.h"

#include <sys/statvfs.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace retryd {

absl::StatusOr<int64_t> FreeBytes(const std::string& dir) {
  struct statvfs fs;
  if (statvfs(dir.c_str(), &fs) != 0) {
    const int err = errno;
    return absl::UnavailableError(
        absl::StrCat("statvfs(", dir, ") failed: ", std::strerror(err)));
  }
  return static_cast<int64_t>(fs.f_bavail) * static_cast<int64_t>(fs.f_frsize);
}

}  // namespace retryd
