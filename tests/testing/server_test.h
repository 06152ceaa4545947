// ServerTest: the gtest fixture of the tests that run one real retryd process (through its
// stubs or through retryctl). StartServer(config) (from SetUp, or from a test that picks its own
// config) starts it in a fresh temp dir and connects `retry_` and `admin_`; TearDown stops it and
// removes the dir.
#ifndef RETRYD_TESTS_TESTING_SERVER_TEST_H_
#define RETRYD_TESTS_TESTING_SERVER_TEST_H_

#include <memory>
#include <string>
#include <utility>

#include "gtest/gtest.h"
#include "retryd/v1/admin_service.grpc.pb.h"
#include "retryd/v1/retry_service.grpc.pb.h"
#include "tests/testing/server_process.h"

namespace retryd::testing {

class ServerTest : public ::testing::Test {
 protected:
  void StartServer(const std::string& config) {
    dir_ = MakeTempDir();
    auto server = ServerProcess::Start(dir_, config);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    ConnectStubs();
  }
  // New stubs for the current process (after a restart the old port is gone).
  void ConnectStubs() {
    retry_ = server_->RetryStub();
    admin_ = server_->AdminStub();
  }
  void TearDown() override {
    server_.reset();
    if (!dir_.empty()) RemoveTree(dir_);
  }

  std::string dir_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<v1::RetryService::Stub> retry_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
};

}  // namespace retryd::testing

#endif  // RETRYD_TESTS_TESTING_SERVER_TEST_H_
