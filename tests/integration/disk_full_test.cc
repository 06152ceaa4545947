// A full disk against the real binary: the data directory is a small tmpfs (8 MiB, mounted by the
// test; skipped where mounting is not permitted). Filled by a file of the test's own to below the
// server's reserve (--min-free-bytes), the server refuses first failures with RESOURCE_EXHAUSTED
// ("disk full ..."), keeps running and keeps answering reads; once the file is deleted it takes
// the same requests again by itself. After a restart every acknowledged change is there and the
// database passes SQLite's integrity check.
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/testing/integrity_check.h"
#include "tests/testing/requests.h"
#include "tests/testing/server_process.h"

namespace retryd::testing {
namespace {

constexpr char kService[] = "diskfull";
constexpr int64_t kReserve = int64_t{2} << 20;
constexpr char kConfig[] = R"({"metricsAddr": "off"})";

int64_t FreeBytesOn(const std::string& dir) {
  struct statvfs fs;
  if (statvfs(dir.c_str(), &fs) != 0) return -1;
  return static_cast<int64_t>(fs.f_bavail) * static_cast<int64_t>(fs.f_frsize);
}

// Writes zeros to `path` until the filesystem has no more than `leave` bytes free.
bool FillUntil(const std::string& dir, const std::string& path, int64_t leave) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) return false;
  const std::string chunk(64 << 10, '\0');
  bool ok = true;
  while (ok && FreeBytesOn(dir) > leave) {
    const int64_t room = FreeBytesOn(dir) - leave;
    const size_t n = static_cast<size_t>(std::min<int64_t>(room, chunk.size()));
    ok = write(fd, chunk.data(), n) == static_cast<ssize_t>(n);
  }
  close(fd);
  return ok;
}

class DiskFullTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    data_ = dir_ + "/data";
    ASSERT_EQ(mkdir(data_.c_str(), 0700), 0) << std::strerror(errno);
    if (mount("tmpfs", data_.c_str(), "tmpfs", 0, "size=8m") != 0) {
      const int err = errno;
      RemoveTree(dir_);
      dir_.clear();
      GTEST_SKIP() << "cannot mount a tmpfs (" << std::strerror(err)
                   << "); this test needs root or CAP_SYS_ADMIN";
    }
    mounted_ = true;
  }

  void TearDown() override {
    server_.reset();  // SIGKILL, if still running.
    if (mounted_) umount2(data_.c_str(), MNT_DETACH);
    if (!dir_.empty()) RemoveTree(dir_);
  }

  std::string dir_;
  std::string data_;
  bool mounted_ = false;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(DiskFullTest, RefusesWritesClearlyKeepsServingAndResumesWhenSpaceReturns) {
  absl::StatusOr<std::unique_ptr<ServerProcess>> started = ServerProcess::Start(
      dir_, kConfig, {"--min-free-bytes", std::to_string(kReserve)});
  ASSERT_TRUE(started.ok()) << started.status();
  server_ = *std::move(started);
  auto stub = server_->RetryStub();
  auto admin = server_->AdminStub();

  std::vector<std::string> acknowledged;
  for (int i = 0; i < 20; ++i) {
    const std::string id = absl::StrCat("before-", i);
    v1::ReportFailureResponse resp;
    grpc::Status s = Report(*stub, FirstFailure(kService, id), &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    acknowledged.push_back(id);
  }

  // Fill the filesystem to half the reserve.
  const std::string filler = data_ + "/filler";
  ASSERT_TRUE(FillUntil(data_, filler, kReserve / 2)) << std::strerror(errno);
  for (int i = 0; i < 5; ++i) {
    v1::ReportFailureResponse resp;
    grpc::Status s = Report(*stub, FirstFailure(kService, "while-full"), &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
    EXPECT_TRUE(absl::StrContains(s.error_message(), "disk full: ")) << s.error_message();
    EXPECT_TRUE(absl::StrContains(s.error_message(), absl::StrCat("below the reserve of ", kReserve)))
        << s.error_message();
    EXPECT_TRUE(absl::StrContains(s.error_message(), "nothing was changed")) << s.error_message();
  }
  // Reads are answered, and the refused request changed nothing.
  v1::Envelope e;
  grpc::Status read = GetEnvelope(*admin, kService, "before-0", &e);
  EXPECT_TRUE(read.ok()) << read.error_message();
  read = GetEnvelope(*admin, kService, "while-full", &e);
  EXPECT_EQ(read.error_code(), grpc::StatusCode::NOT_FOUND) << read.error_message();
  EXPECT_TRUE(server_->running());
  EXPECT_TRUE(absl::StrContains(server_->log(), "\"disk_low\"")) << server_->log();

  // Space returns: the same request is taken, without a restart.
  ASSERT_EQ(unlink(filler.c_str()), 0) << std::strerror(errno);
  v1::ReportFailureResponse resp;
  grpc::Status s = Report(*stub, FirstFailure(kService, "while-full"), &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  acknowledged.push_back("while-full");
  EXPECT_TRUE(absl::StrContains(server_->log(), "\"disk_ok\"")) << server_->log();

  // Nothing acknowledged is lost, and the file is sound.
  absl::StatusOr<int> code = server_->Terminate(absl::Seconds(20));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0) << server_->log();
  EXPECT_EQ(IntegrityCheck(data_ + "/retryd.db"), "ok");
  ASSERT_TRUE(server_->Restart().ok()) << server_->log();
  admin = server_->AdminStub();
  for (const std::string& id : acknowledged) {
    grpc::Status got = GetEnvelope(*admin, kService, id, &e);
    EXPECT_TRUE(got.ok()) << id << ": " << got.error_message();
  }
}

}  // namespace
}  // namespace retryd::testing
