// ConsoleServer: the operator web console, served by retryd on its own listen address
// (ServerConfig.console.listen / --console-addr). civetweb answers every request from one
// callback (HandleRequest):
//
//   GET  /, /login, /static/*      the bundled pages (assets.h), compiled into the binary
//   POST /login                    {"token": "..."}: checked by calling ListServices with it; an
//                                  operator token gets a session cookie, a worker token is refused
//   GET  /api/session              the session's CSRF token and identity (401 without a session)
//   POST /logout                   ends the session
//   POST /api/<service>/<method>   ApiRelay, with the session's token (ConsoleMethods() only)
//   GET  /api/payload?service=&message_id=   one envelope's payload as a download
//
// Every POST except /login needs the session cookie and its CSRF token (X-CSRF-Token), and every
// POST passes the Origin / Sec-Fetch-Site checks (request_guard.h). GET never changes anything.
// With TLS, civetweb listens on a private loopback port behind a TlsFront on `listen`.
#ifndef RETRYD_SERVER_CONSOLE_CONSOLE_SERVER_H_
#define RETRYD_SERVER_CONSOLE_CONSOLE_SERVER_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <grpcpp/channel.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/console/api_relay.h"
#include "server/console/session_table.h"
#include "server/console/tls_front.h"
#include "server/util/clock.h"

struct mg_context;
struct mg_connection;

namespace retryd {

struct ConsoleOptions {
  std::string listen;  // "host:port".
  absl::Duration session_idle = absl::Minutes(30);
  // PEM material: HTTPS when set.
  std::optional<std::string> tls_cert_pem;
  std::optional<std::string> tls_key_pem;
  // Whether the server checks tokens; without, the login page asks for none.
  bool auth_enabled = false;
  // The identity (token name) of a bearer token, for the page header.
  std::function<std::string(const std::string&)> identity_of;
};

class ConsoleServer {
 public:
  // Starts serving; `channel` reaches retryd's own gRPC services (grpc::Server::InProcessChannel).
  static absl::StatusOr<std::unique_ptr<ConsoleServer>> Start(
      ConsoleOptions options, std::shared_ptr<grpc::Channel> channel, const Clock* clock);
  ~ConsoleServer();  // Stops serving.

  // The port the console listens on, and its URL.
  int port() const { return port_; }
  std::string url() const;

  // civetweb's begin_request callback target. Public for the C callback only.
  int HandleRequest(mg_connection* conn);

 private:
  ConsoleServer(ConsoleOptions options, std::shared_ptr<grpc::Channel> channel,
                const Clock* clock);
  int Login(mg_connection* conn, const std::string& body);

  const ConsoleOptions options_;
  const bool tls_;
  ApiRelay relay_;
  SessionTable sessions_;
  mg_context* ctx_ = nullptr;
  std::unique_ptr<TlsFront> front_;
  int port_ = 0;
};

}  // namespace retryd

#endif  // RETRYD_SERVER_CONSOLE_CONSOLE_SERVER_H_
