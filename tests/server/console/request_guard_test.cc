// The console's CSRF and origin rules, the cookie and the security headers.
#include "server/console/request_guard.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace retryd {
namespace {

using ::testing::HasSubstr;

TEST(RequestGuardTest, SameOriginPostsPass) {
  EXPECT_TRUE(CheckSameOrigin({"127.0.0.1:8081", "http://127.0.0.1:8081", "same-origin", false}).ok());
  EXPECT_TRUE(CheckSameOrigin({"console.example:443", "https://console.example:443", "", true}).ok());
  // Neither header (not a browser): left to the CSRF token.
  EXPECT_TRUE(CheckSameOrigin({"127.0.0.1:8081", "", "", false}).ok());
}

TEST(RequestGuardTest, CrossSiteFetchMetadataIsRefused) {
  for (const char* site : {"cross-site", "same-site", "none"}) {
    absl::Status s = CheckSameOrigin({"127.0.0.1:8081", "", site, false});
    EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << site;
    EXPECT_THAT(std::string(s.message()), HasSubstr("Sec-Fetch-Site"));
  }
}

TEST(RequestGuardTest, ForeignOriginIsRefused) {
  for (const char* origin : {"http://evil.example", "http://127.0.0.1:9999", "https://127.0.0.1:8081",
                             "null"}) {
    absl::Status s = CheckSameOrigin({"127.0.0.1:8081", origin, "", false});
    EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << origin;
    EXPECT_THAT(std::string(s.message()), HasSubstr("Origin"));
  }
  // An Origin with no Host to compare with is refused too.
  EXPECT_FALSE(CheckSameOrigin({"", "http://127.0.0.1:8081", "", false}).ok());
}

TEST(RequestGuardTest, CsrfTokenMustMatch) {
  const std::string token(64, 'a');
  EXPECT_TRUE(CheckCsrfToken(token, token).ok());
  absl::Status missing = CheckCsrfToken("", token);
  EXPECT_EQ(missing.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(missing.message()), HasSubstr("X-CSRF-Token: missing"));
  EXPECT_FALSE(CheckCsrfToken(std::string(64, 'b'), token).ok());
  EXPECT_FALSE(CheckCsrfToken(token.substr(1), token).ok());
  EXPECT_FALSE(CheckCsrfToken("x", "").ok());  // A session without a token matches nothing.
}

TEST(RequestGuardTest, CookieValueFindsTheNamedCookie) {
  EXPECT_EQ(CookieValue("a=1; retryd_console=abc; b=2", "retryd_console"), "abc");
  EXPECT_EQ(CookieValue("xretryd_console=abc", "retryd_console"), "");
  EXPECT_EQ(CookieValue("", "retryd_console"), "");
}

TEST(RequestGuardTest, SessionCookieIsHttpOnlyStrictAndSecureOverTls) {
  EXPECT_EQ(SessionCookie("abc", false), "retryd_console=abc; Path=/; HttpOnly; SameSite=Strict");
  EXPECT_EQ(SessionCookie("abc", true),
            "__Host-retryd_console=abc; Path=/; HttpOnly; SameSite=Strict; Secure");
  EXPECT_THAT(SessionCookie("", false), HasSubstr("Max-Age=0"));
}

TEST(RequestGuardTest, SecurityHeadersForbidInlineScriptAndFraming) {
  std::string csp;
  bool nosniff = false;
  for (const auto& [name, value] : SecurityHeaders()) {
    if (name == "Content-Security-Policy") csp = value;
    if (name == "X-Content-Type-Options" && value == "nosniff") nosniff = true;
  }
  EXPECT_THAT(csp, HasSubstr("script-src 'self'"));
  EXPECT_THAT(csp, HasSubstr("frame-ancestors 'none'"));
  EXPECT_THAT(csp, ::testing::Not(HasSubstr("unsafe-inline")));
  EXPECT_TRUE(nosniff);
}

}  // namespace
}  // namespace retryd
