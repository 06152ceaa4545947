// TlsFront: HTTPS for the console. Debian 12's civetweb 1.15 crashes in its TLS code with
// OpenSSL 3, so civetweb serves plain HTTP on a private loopback port and this front, which
// uses OpenSSL directly, terminates TLS on the console's listen address and relays each
// connection's bytes to it. The certificate and key are the server's own (tls.cert_file/key_file).
//
// One thread accepts; each connection gets a thread of its own (at most kMaxConnections at once;
// more are closed at once). A connection idle for 2 minutes is closed. TLS 1.2 or newer.
#ifndef RETRYD_SERVER_CONSOLE_TLS_FRONT_H_
#define RETRYD_SERVER_CONSOLE_TLS_FRONT_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

typedef struct ssl_ctx_st SSL_CTX;

namespace retryd {

class TlsFront {
 public:
  static constexpr int kMaxConnections = 64;

  // Listens on `listen` ("host:port", port 0 = any) with the PEM certificate chain and key, and
  // relays to 127.0.0.1:`backend_port`. INVALID_ARGUMENT for unusable PEM, UNAVAILABLE when the
  // address cannot be bound.
  static absl::StatusOr<std::unique_ptr<TlsFront>> Start(absl::string_view listen,
                                                         absl::string_view cert_pem,
                                                         absl::string_view key_pem,
                                                         int backend_port);
  ~TlsFront();  // Stops accepting and waits for open connections to end (closing them).

  int port() const { return port_; }

 private:
  TlsFront(SSL_CTX* ctx, int listen_fd, int port, int backend_port);
  void AcceptLoop();
  void Serve(int client_fd);

  SSL_CTX* const ctx_;
  const int listen_fd_;
  const int port_;
  const int backend_port_;
  std::atomic<bool> stopping_{false};
  absl::Mutex mu_;
  int open_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread acceptor_;
};

// Splits "host:port" / "[v6]:port" into host and port. False when malformed.
bool SplitHostPort(absl::string_view addr, std::string* host, int* port);

}  // namespace retryd

#endif  // RETRYD_SERVER_CONSOLE_TLS_FRONT_H_
