// TLS and mTLS against the real retryd, with certificates made at test time: a plaintext client
// cannot talk to a TLS server, a client that trusts the CA can; `require` refuses a client
// without a certificate (or with one from another CA) and accepts one signed by the client CA;
// `request` accepts both and audits the certificate's name; tokens still apply over TLS;
// retryctl connects with --tls-ca (health too); missing files stop the start with the flag
// named; /metrics stays plain HTTP.
#include <sys/wait.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/auth_channel.h"
#include "tests/testing/requests.h"
#include "tests/testing/server_process.h"
#include "tests/testing/test_certs.h"

namespace retryd::testing {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kOpsToken[] = "op-tls-4c1d77";

struct Result {
  int code = -1;
  std::string out;
  std::string err;
};

class TlsServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    auto ca = MakeCa(dir_, "ca", "retryd test CA");
    ASSERT_TRUE(ca.ok()) << ca.status();
    ca_ = *ca;
    auto server_cert = IssueCert(dir_, "server", ca_, "retryd", "DNS:localhost,IP:127.0.0.1");
    ASSERT_TRUE(server_cert.ok()) << server_cert.status();
    server_cert_ = *server_cert;
    auto client_ca = MakeCa(dir_, "client-ca", "retryd client CA");
    ASSERT_TRUE(client_ca.ok()) << client_ca.status();
    client_ca_ = *client_ca;
    auto client = IssueCert(dir_, "client", client_ca_, "worker-7", "DNS:worker-7.example");
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = *client;
    // Same names, another CA: must never be accepted.
    auto rogue_ca = MakeCa(dir_, "rogue-ca", "retryd client CA");
    ASSERT_TRUE(rogue_ca.ok()) << rogue_ca.status();
    auto rogue = IssueCert(dir_, "rogue", *rogue_ca, "worker-7", "DNS:worker-7.example");
    ASSERT_TRUE(rogue.ok()) << rogue.status();
    rogue_ = *rogue;
  }
  void TearDown() override {
    server_.reset();
    RemoveTree(dir_);
  }

  // Starts retryd with TLS and `client_auth` ("" = none), plus `extra` flags.
  void StartTls(const std::string& client_auth, std::vector<std::string> extra = {},
                const std::string& config = "") {
    std::vector<std::string> args = {"--tls-cert", server_cert_.cert, "--tls-key",
                                     server_cert_.key};
    if (!client_auth.empty()) {
      for (const std::string& a : {std::string("--tls-client-auth"), client_auth,
                                   std::string("--tls-client-ca"), client_ca_.cert}) {
        args.push_back(a);
      }
    }
    for (std::string& a : extra) args.push_back(std::move(a));
    auto server = ServerProcess::Start(dir_, config, std::move(args));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }

  // TLS credentials trusting the test CA, with a client certificate when `client` is set.
  std::shared_ptr<grpc::ChannelCredentials> Tls(const CertPaths* client = nullptr) const {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = ReadFile(ca_.cert);
    if (client != nullptr) {
      options.pem_cert_chain = ReadFile(client->cert);
      options.pem_private_key = ReadFile(client->key);
    }
    return grpc::SslCredentials(options);
  }

  grpc::Status ListServices(std::shared_ptr<grpc::ChannelCredentials> creds,
                            const std::string& token = "") {
    auto stub = v1::AdminService::NewStub(ChannelWithToken(server_->address(), token, creds));
    v1::ListServicesResponse resp;
    return stub->ListServices(Context(absl::Seconds(5)).get(), v1::ListServicesRequest(), &resp);
  }

  // Sets a circuit override over `creds` and returns the identity its audit event recorded.
  std::string AuditedIdentity(std::shared_ptr<grpc::ChannelCredentials> creds,
                              const std::string& token = "") {
    auto admin = v1::AdminService::NewStub(ChannelWithToken(server_->address(), token, creds));
    v1::SetCircuitOverrideRequest set;
    set.set_service("orders");
    set.set_override(v1::FORCE_OPEN);
    v1::SetCircuitOverrideResponse set_resp;
    grpc::Status s = admin->SetCircuitOverride(Context().get(), set, &set_resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    v1::ListAuditEventsResponse audit;
    s = admin->ListAuditEvents(Context().get(), v1::ListAuditEventsRequest(), &audit);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return audit.events_size() > 0 ? audit.events(0).identity() : "";
  }

  Result Retryctl(std::vector<std::string> args) {
    std::string cmd = std::string(getenv("RETRYCTL_BIN")) + " --server " + server_->address();
    for (const auto& a : args) cmd += " '" + a + "'";
    cmd += " >" + dir_ + "/out 2>" + dir_ + "/err </dev/null";
    const int rc = std::system(cmd.c_str());
    return Result{WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, ReadFile(dir_ + "/out"),
                  ReadFile(dir_ + "/err")};
  }

  std::string dir_;
  CertPaths ca_;
  CertPaths server_cert_;
  CertPaths client_ca_;
  CertPaths client_;
  CertPaths rogue_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(TlsServerTest, APlaintextClientCannotTalkToATlsServer) {
  StartTls("");
  EXPECT_THAT(server_->log(), AllOf(HasSubstr("\"tls\":\"on\""),
                                    HasSubstr("\"tls_client_auth\":\"none\"")));
  EXPECT_EQ(ListServices(grpc::InsecureChannelCredentials()).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  std::string response;
  EXPECT_EQ(RawUnaryCall(server_->address(), "/grpc.health.v1.Health/Check", "", &response)
                .error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TlsServerTest, AClientThatTrustsTheCaConnects) {
  StartTls("");
  grpc::Status s = ListServices(Tls());
  EXPECT_TRUE(s.ok()) << s.error_message();
  // Health over TLS, no token needed.
  std::string response;
  s = RawUnaryCall(grpc::CreateChannel(server_->address(), Tls()), "/grpc.health.v1.Health/Check",
                   "", "", &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(response, std::string("\x08\x01", 2));
  // A client that trusts another CA does not.
  grpc::SslCredentialsOptions other;
  other.pem_root_certs = ReadFile(client_ca_.cert);
  EXPECT_EQ(ListServices(grpc::SslCredentials(other)).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  // Without a client CA the identity is never taken from a certificate.
  EXPECT_EQ(AuditedIdentity(Tls(&client_)), "anonymous");
}

TEST_F(TlsServerTest, RequireRefusesClientsWithoutACertificateFromTheClientCa) {
  StartTls("require");
  EXPECT_EQ(ListServices(Tls()).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(ListServices(Tls(&rogue_)).error_code(), grpc::StatusCode::UNAVAILABLE);
  grpc::Status s = ListServices(Tls(&client_));
  EXPECT_TRUE(s.ok()) << s.error_message();
  // Without tokens the certificate's SAN is the identity in the audit log.
  EXPECT_EQ(AuditedIdentity(Tls(&client_)), "worker-7.example");
  EXPECT_THAT(server_->log(), AllOf(HasSubstr(R"("event":"audit","identity":"worker-7.example")"),
                                    HasSubstr("any client with a certificate")));
}

TEST_F(TlsServerTest, RequestAcceptsClientsWithOrWithoutACertificateButVerifiesIt) {
  StartTls("request");
  grpc::Status s = ListServices(Tls());
  EXPECT_TRUE(s.ok()) << s.error_message();
  s = ListServices(Tls(&client_));
  EXPECT_TRUE(s.ok()) << s.error_message();
  // A certificate that does not verify is refused, not ignored.
  EXPECT_EQ(ListServices(Tls(&rogue_)).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(AuditedIdentity(Tls(&client_)), "worker-7.example");
}

TEST_F(TlsServerTest, TokensStillApplyOverMtlsAndNameTheCaller) {
  const std::string config = absl::StrCat(
      R"({"auth": {"tokens": [{"name": "ops", "sha256": ")", Sha256Hex(kOpsToken),
      R"(", "role": "OPERATOR"}]}})");
  StartTls("require", {}, config);
  EXPECT_EQ(ListServices(Tls(&client_)).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  grpc::Status s = ListServices(Tls(&client_), kOpsToken);
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(AuditedIdentity(Tls(&client_), kOpsToken), "ops");
  EXPECT_THAT(server_->log(), Not(HasSubstr(kOpsToken)));
}

TEST_F(TlsServerTest, RetryctlConnectsWithTheCaAndAClientCertificate) {
  if (getenv("RETRYCTL_BIN") == nullptr) GTEST_SKIP() << "RETRYCTL_BIN is not set";
  StartTls("require");
  Result r = Retryctl({"--tls-ca", ca_.cert, "--tls-cert", client_.cert, "--tls-key", client_.key,
                       "health"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("SERVING"));
  r = Retryctl({"--tls", "--tls-ca", ca_.cert, "--tls-cert", client_.cert, "--tls-key",
                client_.key, "services"});
  EXPECT_EQ(r.code, 0) << r.err;
  // No client certificate: the handshake fails (UNAVAILABLE, 64 + 14).
  r = Retryctl({"--tls-ca", ca_.cert, "health"});
  EXPECT_EQ(r.code, 78) << r.err;
  // Plaintext against TLS.
  r = Retryctl({"health"});
  EXPECT_EQ(r.code, 78) << r.err;
}

TEST_F(TlsServerTest, RetryctlHealthWithTheCaAndAServerName) {
  if (getenv("RETRYCTL_BIN") == nullptr) GTEST_SKIP() << "RETRYCTL_BIN is not set";
  StartTls("");
  Result r = Retryctl({"--tls-ca", ca_.cert, "--timeout", "2s", "health"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("SERVING"));
  // The probe's case: dialled by IP, the certificate checked for the service's DNS name.
  r = Retryctl({"--tls-ca", ca_.cert, "--tls-server-name", "localhost", "health"});
  EXPECT_EQ(r.code, 0) << r.err;
  r = Retryctl({"--tls-ca", ca_.cert, "--tls-server-name", "retryd.other.svc", "health"});
  EXPECT_EQ(r.code, 78) << r.err;
}

TEST_F(TlsServerTest, MetricsStayPlainHttp) {
  StartTls("require");
  ASSERT_GT(server_->metrics_port(), 0);
  auto body = HttpGet(server_->metrics_port(), "/metrics");
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_THAT(*body, HasSubstr("retryd_"));
}

TEST_F(TlsServerTest, BadTlsSettingsStopTheStartWithTheFlagNamed) {
  struct Case {
    std::vector<std::string> args;
    std::string error;
  };
  const Case cases[] = {
      {{"--tls-cert", dir_ + "/nope.crt", "--tls-key", server_cert_.key},
       "--tls-cert " + dir_ + "/nope.crt: cannot read"},
      {{"--tls-cert", server_cert_.cert}, "--tls-key (tls.key_file): missing"},
      {{"--tls-cert", server_cert_.cert, "--tls-key", client_.key},
       "does not match the certificate"},
      {{"--tls-cert", server_cert_.cert, "--tls-key", server_cert_.key, "--tls-client-auth",
        "require"},
       "--tls-client-ca (tls.client_ca_file): missing; --tls-client-auth require needs"},
      {{"--tls-cert", server_cert_.cert, "--tls-key", server_cert_.key, "--tls-client-auth",
        "maybe", "--tls-client-ca", client_ca_.cert},
       "--tls-client-auth: must be none, request or require"},
  };
  for (const Case& c : cases) {
    auto server = ServerProcess::Start(dir_, "", c.args);
    ASSERT_FALSE(server.ok()) << c.error;
    EXPECT_THAT(std::string(server.status().message()),
                AllOf(HasSubstr("invalid configuration"), HasSubstr(c.error)));
  }
  // From the config file, the field is named.
  auto server = ServerProcess::Start(
      dir_, absl::StrCat(R"({"tls": {"certFile": ")", server_cert_.cert, R"(", "keyFile": ")",
                         dir_, R"(/missing.key"}})"));
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(std::string(server.status().message()),
              HasSubstr("tls.key_file " + dir_ + "/missing.key: cannot read"));
}

TEST_F(TlsServerTest, ANonLoopbackAddressNeedsMoreThanServerTls) {
  auto check = [&](std::vector<std::string> args) {
    std::string cmd = std::string(getenv("RETRYD_BIN")) +
                      " --grpc-addr 0.0.0.0:7000 --check-config --tls-cert " + server_cert_.cert +
                      " --tls-key " + server_cert_.key;
    for (const auto& a : args) cmd += " '" + a + "'";
    cmd += " >/dev/null 2>&1";
    const int rc = std::system(cmd.c_str());
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  };
  EXPECT_EQ(check({}), 2);  // TLS authenticates the server, not the caller.
  EXPECT_EQ(check({"--tls-client-auth", "request", "--tls-client-ca", client_ca_.cert}), 2);
  EXPECT_EQ(check({"--tls-client-auth", "require", "--tls-client-ca", client_ca_.cert}), 0);
}

}  // namespace
}  // namespace retryd::testing
