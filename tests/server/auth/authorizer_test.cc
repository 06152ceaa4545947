// The method -> role table against the services' descriptors: every RPC of retryd.v1 has exactly
// one rule (a new RPC cannot ship without one), RetryService is open to WORKER tokens and
// AdminService to OPERATOR tokens only. The calls themselves are tested against the real server
// in tests/integration/auth_test.cc.
#include "server/auth/authorizer.h"

#include <map>
#include <set>
#include <string>

#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"
#include "retryd/v1/admin_service.pb.h"
#include "retryd/v1/retry_service.pb.h"

namespace retryd {
namespace {

// "/retryd.v1.RetryService/Lease" -> the service's full name, for every method of every service
// declared in the proto files of retryd.v1 that define services.
std::map<std::string, std::string> DeclaredMethods() {
  std::map<std::string, std::string> methods;
  const google::protobuf::FileDescriptor* files[] = {
      v1::LeaseRequest::descriptor()->file(), v1::ListServicesRequest::descriptor()->file()};
  for (const google::protobuf::FileDescriptor* file : files) {
    for (int s = 0; s < file->service_count(); ++s) {
      const google::protobuf::ServiceDescriptor* service = file->service(s);
      for (int m = 0; m < service->method_count(); ++m) {
        methods["/" + service->full_name() + "/" + service->method(m)->name()] =
            service->full_name();
      }
    }
  }
  return methods;
}

TEST(MethodRulesTest, EveryDeclaredMethodHasARule) {
  const std::map<std::string, std::string> declared = DeclaredMethods();
  ASSERT_GE(declared.size(), 19u);
  std::set<std::string> ruled;
  for (const MethodRule& r : MethodRules()) ruled.insert(std::string(r.method));
  for (const auto& [method, service] : declared) {
    EXPECT_TRUE(ruled.count(method)) << method << " has no rule in server/auth/authorizer.cc";
  }
}

TEST(MethodRulesTest, EveryRuleNamesADeclaredMethodOnce) {
  const std::map<std::string, std::string> declared = DeclaredMethods();
  std::set<std::string> seen;
  for (const MethodRule& r : MethodRules()) {
    const std::string method(r.method);
    EXPECT_TRUE(declared.count(method)) << method << " is not an RPC of retryd.v1";
    EXPECT_TRUE(seen.insert(method).second) << method << " has two rules";
  }
}

TEST(MethodRulesTest, WorkersGetRetryServiceAndOperatorsEverything) {
  const std::map<std::string, std::string> declared = DeclaredMethods();
  for (const MethodRule& r : MethodRules()) {
    auto it = declared.find(std::string(r.method));
    if (it == declared.end()) continue;
    if (it->second == "retryd.v1.RetryService") {
      EXPECT_EQ(r.access, Access::kWorker) << r.method;
    } else {
      EXPECT_EQ(r.access, Access::kOperator) << r.method;
    }
  }
}

}  // namespace
}  // namespace retryd
