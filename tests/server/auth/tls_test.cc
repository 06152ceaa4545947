// LoadTls: real certificates made at test time are accepted; every mistake is refused at
// start-up with the flag or config field named.
#include "server/auth/tls.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/server_process.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_certs.h"

namespace retryd {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using testing::IsOk;
using testing::StatusIs;

constexpr absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;

class LoadTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir();
    auto ca = testing::MakeCa(dir_, "ca", "test-ca");
    ASSERT_THAT(ca, IsOk());
    ca_ = *ca;
    auto server = testing::IssueCert(dir_, "server", ca_, "retryd", "DNS:localhost");
    ASSERT_THAT(server, IsOk());
    server_ = *server;
    auto other = testing::IssueCert(dir_, "other", ca_, "other", "");
    ASSERT_THAT(other, IsOk());
    other_ = *other;
  }
  void TearDown() override { testing::RemoveTree(dir_); }

  TlsPaths Paths(const std::string& client_auth = "") const {
    return TlsPaths{server_.cert, server_.key, "", client_auth};
  }

  std::string dir_;
  testing::CertPaths ca_;
  testing::CertPaths server_;
  testing::CertPaths other_;
};

TEST_F(LoadTlsTest, LoadsACertificateAndItsKey) {
  auto tls = LoadTls(Paths(), TlsSources());
  ASSERT_THAT(tls, IsOk());
  EXPECT_THAT(tls->cert_pem, HasSubstr("BEGIN CERTIFICATE"));
  EXPECT_THAT(tls->key_pem, HasSubstr("PRIVATE KEY"));
  EXPECT_EQ(tls->client_auth, ClientAuth::kNone);
  EXPECT_TRUE(tls->client_ca_pem.empty());
}

TEST_F(LoadTlsTest, RequestAndRequireLoadTheClientCa) {
  for (const char* mode : {"request", "require"}) {
    TlsPaths paths = Paths(mode);
    paths.client_ca_file = ca_.cert;
    auto tls = LoadTls(paths, TlsSources());
    ASSERT_THAT(tls, IsOk()) << mode;
    EXPECT_EQ(ClientAuthName(tls->client_auth), mode);
    EXPECT_THAT(tls->client_ca_pem, HasSubstr("BEGIN CERTIFICATE"));
  }
}

TEST_F(LoadTlsTest, ErrorsNameTheFlagOrField) {
  TlsSources flags;
  flags.cert = "--tls-cert";
  flags.key = "--tls-key";
  flags.client_ca = "--tls-client-ca";
  flags.client_auth = "--tls-client-auth";

  TlsPaths missing = Paths();
  missing.cert_file = dir_ + "/nope.crt";
  EXPECT_THAT(LoadTls(missing, flags),
              StatusIs(kInvalid, StartsWith("--tls-cert " + dir_ + "/nope.crt: cannot read")));
  EXPECT_THAT(LoadTls(missing, TlsSources()),
              StatusIs(kInvalid, StartsWith("tls.cert_file " + dir_ + "/nope.crt")));

  TlsPaths no_key = Paths();
  no_key.key_file = "";
  EXPECT_THAT(LoadTls(no_key, flags),
              StatusIs(kInvalid, StartsWith("--tls-key (tls.key_file): missing")));
  TlsPaths no_cert = Paths();
  no_cert.cert_file = "";
  EXPECT_THAT(LoadTls(no_cert, TlsSources()),
              StatusIs(kInvalid, AllOf(StartsWith("--tls-cert (tls.cert_file): missing"),
                                       HasSubstr("tls.key_file is set"))));

  TlsPaths key_is_cert = Paths();
  key_is_cert.key_file = server_.cert;
  EXPECT_THAT(LoadTls(key_is_cert, flags),
              StatusIs(kInvalid, StartsWith("--tls-key " + server_.cert + ": no unencrypted")));

  TlsPaths wrong_key = Paths();
  wrong_key.key_file = other_.key;
  EXPECT_THAT(LoadTls(wrong_key, flags),
              StatusIs(kInvalid, HasSubstr("does not match the certificate of --tls-cert")));

  TlsPaths cert_is_key = Paths();
  cert_is_key.cert_file = server_.key;
  EXPECT_THAT(LoadTls(cert_is_key, flags),
              StatusIs(kInvalid, StartsWith("--tls-cert " + server_.key + ": no PEM certificate")));

  EXPECT_THAT(LoadTls(Paths("always"), flags),
              StatusIs(kInvalid, StartsWith("--tls-client-auth: must be none, request or require")));
  EXPECT_THAT(LoadTls(Paths("require"), flags),
              StatusIs(kInvalid, StartsWith("--tls-client-ca (tls.client_ca_file): missing; "
                                            "--tls-client-auth require needs")));

  TlsPaths ca_without_mode = Paths("none");
  ca_without_mode.client_ca_file = ca_.cert;
  EXPECT_THAT(LoadTls(ca_without_mode, TlsSources()),
              StatusIs(kInvalid, StartsWith("tls.client_ca_file: a client CA is only used")));

  TlsPaths ca_is_key = Paths("require");
  ca_is_key.client_ca_file = ca_.key;
  EXPECT_THAT(LoadTls(ca_is_key, flags),
              StatusIs(kInvalid, StartsWith("--tls-client-ca " + ca_.key + ": no PEM")));
}

TEST(TlsConfiguredTest, AnyFileOrAClientAuthModeAsksForTls) {
  EXPECT_FALSE(TlsConfigured(TlsPaths{}));
  EXPECT_FALSE(TlsConfigured(TlsPaths{"", "", "", "none"}));
  EXPECT_TRUE(TlsConfigured(TlsPaths{"c", "", "", ""}));
  EXPECT_TRUE(TlsConfigured(TlsPaths{"", "k", "", ""}));
  EXPECT_TRUE(TlsConfigured(TlsPaths{"", "", "ca", ""}));
  EXPECT_TRUE(TlsConfigured(TlsPaths{"", "", "", "require"}));
}

}  // namespace
}  // namespace retryd
