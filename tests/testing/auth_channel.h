// Channels for the auth and TLS tests: every call on a ChannelWithToken() carries
// `authorization: Bearer <token>` (added by a client interceptor, so the stubs and the request
// helpers of requests.h work unchanged), over plaintext or the given credentials.
#ifndef RETRYD_TESTS_TESTING_AUTH_CHANNEL_H_
#define RETRYD_TESTS_TESTING_AUTH_CHANNEL_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/client_interceptor.h>
#include <openssl/sha.h>

#include "absl/strings/str_cat.h"

namespace retryd::testing {

class AddAuthorizationInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit AddAuthorizationInterceptor(std::string value) : value_(std::move(value)) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->insert({"authorization", value_});
    }
    methods->Proceed();
  }

 private:
  std::string value_;
};

class AddAuthorizationFactory final
    : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit AddAuthorizationFactory(std::string value) : value_(std::move(value)) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo* /*info*/) override {
    return new AddAuthorizationInterceptor(value_);
  }

 private:
  std::string value_;
};

// A channel to `address` whose calls send `authorization: <authorization>` (none when empty),
// e.g. "Bearer s3cret".
inline std::shared_ptr<grpc::Channel> ChannelWithAuthorization(
    const std::string& address, const std::string& authorization,
    std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials(),
    const std::string& server_name = "") {
  grpc::ChannelArguments args;
  if (!server_name.empty()) args.SetSslTargetNameOverride(server_name);
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> factories;
  if (!authorization.empty()) {
    factories.push_back(std::make_unique<AddAuthorizationFactory>(authorization));
  }
  return grpc::experimental::CreateCustomChannelWithInterceptors(address, creds, args,
                                                                 std::move(factories));
}

// The same with `authorization: Bearer <token>`.
inline std::shared_ptr<grpc::Channel> ChannelWithToken(
    const std::string& address, const std::string& token,
    std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials()) {
  return ChannelWithAuthorization(address, token.empty() ? "" : "Bearer " + token,
                                  std::move(creds));
}

// The hex SHA-256 of `token`, as `printf %s "$TOKEN" | sha256sum` prints it (for configs).
inline std::string Sha256Hex(const std::string& token) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), digest);
  std::string hex;
  for (unsigned char b : digest) absl::StrAppend(&hex, absl::Hex(b, absl::kZeroPad2));
  return hex;
}

}  // namespace retryd::testing

#endif  // RETRYD_TESTS_TESTING_AUTH_CHANNEL_H_
