// ServerTest: the gtest fixture of the tests that run one real retryd process (through its
// stubs or through retryctl). StartServer(config) (from SetUp, or from a test that picks its own
// config) starts it in a fresh temp dir and connects `retry_` and `admin_`; TearDown stops it and
// removes the dir.
//
// StoreServerTest: the same, parametrised over the store (tests/testing/test_stores.h): the
// "Postgres" instance runs retryd with `--store postgres` on a fresh database of the run's test
// cluster. Instantiate with
//   INSTANTIATE_TEST_SUITE_P(Stores, MyTest, AllStoreKinds(), StoreKindName);
#ifndef RETRYD_TESTS_TESTING_SERVER_TEST_H_
#define RETRYD_TESTS_TESTING_SERVER_TEST_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "retryd/v1/admin_service.grpc.pb.h"
#include "retryd/v1/retry_service.grpc.pb.h"
#include "tests/testing/server_process.h"
#include "tests/testing/test_stores.h"

namespace retryd::testing {

template <typename Base>
class BasicServerTest : public Base {
 protected:
  void StartServer(const std::string& config) {
    dir_ = MakeTempDir();
    std::vector<std::string> args;
    ASSERT_NO_FATAL_FAILURE(StoreArgs(&args));
    if (this->IsSkipped()) return;
    auto server = ServerProcess::Start(dir_, config, args);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    ConnectStubs();
  }
  // The retryd flags that select the store (none: SQLite in the temp dir).
  virtual void StoreArgs(std::vector<std::string>* args) {}
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

using ServerTest = BasicServerTest<::testing::Test>;

class StoreServerTest : public BasicServerTest<::testing::TestWithParam<StoreKind>> {
 protected:
  void StoreArgs(std::vector<std::string>* args) override {
    if (GetParam() == StoreKind::kSqlite) return;
    RETRYD_SKIP_IF_NO_POSTGRES(GetParam());
    absl::StatusOr<StoreLocation> where = NewStoreLocation(GetParam());
    ASSERT_TRUE(where.ok()) << where.status();
    *args = StoreFlags(*where);
  }
};

}  // namespace retryd::testing

#endif  // RETRYD_TESTS_TESTING_SERVER_TEST_H_
