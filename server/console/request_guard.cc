#include "server/console/request_guard.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/util/secure_random.h"

namespace retryd {

absl::Status CheckSameOrigin(const RequestOrigin& request) {
  if (!request.sec_fetch_site.empty() &&
      absl::AsciiStrToLower(request.sec_fetch_site) != "same-origin") {
    return absl::PermissionDeniedError(absl::StrCat(
        "Sec-Fetch-Site: the console only takes changes from its own pages, this request is \"",
        request.sec_fetch_site, "\""));
  }
  if (!request.origin.empty()) {
    const std::string expected =
        absl::StrCat(request.tls ? "https://" : "http://", request.host);
    if (request.host.empty() || absl::AsciiStrToLower(request.origin) !=
                                    absl::AsciiStrToLower(expected)) {
      return absl::PermissionDeniedError(
          "Origin: the request comes from another site than this console");
    }
  }
  return absl::OkStatus();
}

absl::Status CheckCsrfToken(absl::string_view presented, absl::string_view expected) {
  if (presented.empty()) {
    return absl::PermissionDeniedError(
        "X-CSRF-Token: missing; reload the console page to get a fresh one");
  }
  if (expected.empty() || !ConstantTimeEquals(presented, expected)) {
    return absl::PermissionDeniedError(
        "X-CSRF-Token: does not match this session; reload the console page");
  }
  return absl::OkStatus();
}

std::string CookieValue(absl::string_view cookie_header, absl::string_view name) {
  for (absl::string_view part : absl::StrSplit(cookie_header, ';')) {
    part = absl::StripAsciiWhitespace(part);
    const size_t eq = part.find('=');
    if (eq == absl::string_view::npos) continue;
    if (part.substr(0, eq) == name) return std::string(part.substr(eq + 1));
  }
  return "";
}

std::string SessionCookieName(bool tls) {
  return tls ? "__Host-retryd_console" : "retryd_console";
}

std::string SessionCookie(absl::string_view session_id, bool tls) {
  return absl::StrCat(SessionCookieName(tls), "=", session_id,
                      "; Path=/; HttpOnly; SameSite=Strict", tls ? "; Secure" : "",
                      session_id.empty() ? "; Max-Age=0" : "");
}

const std::vector<std::pair<std::string, std::string>>& SecurityHeaders() {
  static const auto* const headers = new std::vector<std::pair<std::string, std::string>>{
      {"Content-Security-Policy",
       "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"},
      {"X-Content-Type-Options", "nosniff"},
      {"X-Frame-Options", "DENY"},
      {"Referrer-Policy", "no-referrer"},
      {"Cross-Origin-Opener-Policy", "same-origin"},
      {"Cross-Origin-Resource-Policy", "same-origin"},
      {"Cache-Control", "no-store"},
  };
  return *headers;
}

}  // namespace retryd
