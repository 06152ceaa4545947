// The console's HTTP safety rules, as pure functions of a request's headers: which requests may
// change anything (cross-site request forgery), the cookie, and the headers every response
// carries. console_server.cc applies them; tests/server/console/request_guard_test.cc checks them.
#ifndef RETRYD_SERVER_CONSOLE_REQUEST_GUARD_H_
#define RETRYD_SERVER_CONSOLE_REQUEST_GUARD_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace retryd {

// What a POST tells about where it comes from. Empty = header absent.
struct RequestOrigin {
  std::string host;            // Host header, e.g. "127.0.0.1:8081".
  std::string origin;          // Origin header.
  std::string sec_fetch_site;  // Sec-Fetch-Site header.
  bool tls = false;            // Whether the console is served over HTTPS.
};

// Whether a POST may come from the console's own pages: Sec-Fetch-Site, when sent, must be
// "same-origin"; Origin, when sent, must be this console's own (scheme, Host); a request with
// neither is let through to the CSRF token check (browsers send at least one; non-browser
// clients have no ambient cookie to abuse). PERMISSION_DENIED naming the header otherwise.
absl::Status CheckSameOrigin(const RequestOrigin& request);

// The CSRF check of a mutating request: `presented` (the X-CSRF-Token header) must equal the
// session's token, compared in constant time. PERMISSION_DENIED when missing or different.
absl::Status CheckCsrfToken(absl::string_view presented, absl::string_view expected);

// The value of cookie `name` in a Cookie header ("" when absent).
std::string CookieValue(absl::string_view cookie_header, absl::string_view name);

// The session cookie's name: "__Host-retryd_console" over HTTPS (the browser then insists on
// Secure, Path=/ and no Domain), else "retryd_console".
std::string SessionCookieName(bool tls);

// The Set-Cookie value that stores `session_id` (HttpOnly, SameSite=Strict, Path=/, Secure over
// HTTPS); an empty id clears the cookie.
std::string SessionCookie(absl::string_view session_id, bool tls);

// Headers on every console response: a strict Content-Security-Policy (scripts and styles from
// the console itself only, no inline script, no framing), nosniff, no referrer, no caching.
const std::vector<std::pair<std::string, std::string>>& SecurityHeaders();

}  // namespace retryd

#endif  // RETRYD_SERVER_CONSOLE_REQUEST_GUARD_H_
