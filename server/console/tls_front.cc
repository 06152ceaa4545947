#include "server/console/tls_front.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace retryd {
namespace {

constexpr int kIdleMillis = 120 * 1000;

std::string OpenSslError() {
  const unsigned long e = ERR_get_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  return buf;
}

int ConnectBackend(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Writes all of `data` to the TLS connection; false when it is gone.
bool SslWriteAll(SSL* ssl, const char* data, int n) {
  while (n > 0) {
    const int w = SSL_write(ssl, data, n);
    if (w <= 0) return false;
    data += w;
    n -= w;
  }
  return true;
}

bool WriteAll(int fd, const char* data, ssize_t n) {
  while (n > 0) {
    const ssize_t w = send(fd, data, static_cast<size_t>(n), MSG_NOSIGNAL);
    if (w <= 0) return false;
    data += w;
    n -= w;
  }
  return true;
}

}  // namespace

bool SplitHostPort(absl::string_view addr, std::string* host, int* port) {
  const size_t colon = addr.rfind(':');
  if (colon == absl::string_view::npos || colon == 0) return false;
  absl::string_view h = addr.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  if (!absl::SimpleAtoi(addr.substr(colon + 1), port) || *port < 0 || *port > 65535) return false;
  *host = std::string(h == "localhost" ? "127.0.0.1" : h);
  return !host->empty();
}

absl::StatusOr<std::unique_ptr<TlsFront>> TlsFront::Start(absl::string_view listen,
                                                          absl::string_view cert_pem,
                                                          absl::string_view key_pem,
                                                          int backend_port) {
  std::string host;
  int port = 0;
  if (!SplitHostPort(listen, &host, &port)) {
    return absl::InvalidArgumentError(
        absl::StrCat("console.listen: must be \"host:port\", got \"", listen, "\""));
  }
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr) return absl::InternalError("console TLS: " + OpenSslError());
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
  auto fail = [ctx](absl::Status s) {
    SSL_CTX_free(ctx);
    return s;
  };
  BIO* cert_bio = BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size()));
  X509* leaf = PEM_read_bio_X509(cert_bio, nullptr, nullptr, nullptr);
  bool ok = leaf != nullptr && SSL_CTX_use_certificate(ctx, leaf) == 1;
  X509_free(leaf);
  while (ok) {  // The rest of the chain.
    X509* extra = PEM_read_bio_X509(cert_bio, nullptr, nullptr, nullptr);
    if (extra == nullptr) break;
    if (SSL_CTX_add_extra_chain_cert(ctx, extra) != 1) {
      X509_free(extra);
      ok = false;
    }
  }
  ERR_clear_error();
  BIO_free(cert_bio);
  if (!ok) return fail(absl::InvalidArgumentError("console TLS: unusable certificate"));
  BIO* key_bio = BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size()));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(key_bio, nullptr, nullptr, nullptr);
  BIO_free(key_bio);
  ok = key != nullptr && SSL_CTX_use_PrivateKey(ctx, key) == 1 &&
       SSL_CTX_check_private_key(ctx) == 1;
  EVP_PKEY_free(key);
  if (!ok) return fail(absl::InvalidArgumentError("console TLS: unusable key: " + OpenSslError()));

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0 ||
      found == nullptr) {
    return fail(absl::InvalidArgumentError(
        absl::StrCat("console.listen: \"", host, "\" is not a numeric IP address")));
  }
  const int fd = socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (fd < 0 || bind(fd, found->ai_addr, found->ai_addrlen) != 0 || ::listen(fd, 64) != 0) {
    const std::string why = std::strerror(errno);
    freeaddrinfo(found);
    if (fd >= 0) close(fd);
    return fail(absl::UnavailableError(
        absl::StrCat("console.listen ", listen, ": cannot listen (", why, ")")));
  }
  freeaddrinfo(found);
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  const int actual = ntohs(bound.ss_family == AF_INET6
                               ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                               : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  std::unique_ptr<TlsFront> front(new TlsFront(ctx, fd, actual, backend_port));
  front->acceptor_ = std::thread([f = front.get()] { f->AcceptLoop(); });
  return front;
}

TlsFront::TlsFront(SSL_CTX* ctx, int listen_fd, int port, int backend_port)
    : ctx_(ctx), listen_fd_(listen_fd), port_(port), backend_port_(backend_port) {}

TlsFront::~TlsFront() {
  stopping_ = true;
  shutdown(listen_fd_, SHUT_RDWR);
  if (acceptor_.joinable()) acceptor_.join();
  close(listen_fd_);
  // Connections see stopping_ within one poll interval.
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](int* open) { return *open == 0; }, &open_));
  SSL_CTX_free(ctx_);
}

void TlsFront::AcceptLoop() {
  while (!stopping_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) continue;
    const int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    {
      absl::MutexLock lock(&mu_);
      if (open_ >= kMaxConnections || stopping_) {
        close(client);
        continue;
      }
      ++open_;
    }
    std::thread([this, client] {
      Serve(client);
      absl::MutexLock lock(&mu_);
      --open_;
    }).detach();
  }
}

void TlsFront::Serve(int client_fd) {
  timeval handshake_timeout{10, 0};
  setsockopt(client_fd, SOL_SOCKET, SO_RCVTIMEO, &handshake_timeout, sizeof(handshake_timeout));
  SSL* ssl = SSL_new(ctx_);
  int backend = -1;
  if (ssl != nullptr && SSL_set_fd(ssl, client_fd) == 1 && SSL_accept(ssl) == 1) {
    timeval none{0, 0};
    setsockopt(client_fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof(none));
    backend = ConnectBackend(backend_port_);
  }
  if (backend >= 0) {
    char buf[16384];
    int idle = 0;
    while (!stopping_ && idle < kIdleMillis) {
      // Bytes OpenSSL already decrypted do not show on the socket.
      if (SSL_pending(ssl) == 0) {
        pollfd p[2] = {{client_fd, POLLIN, 0}, {backend, POLLIN, 0}};
        const int ready = poll(p, 2, 200);
        if (ready < 0) break;
        if (ready == 0) {
          idle += 200;
          continue;
        }
        idle = 0;
        if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
          const ssize_t n = recv(backend, buf, sizeof(buf), 0);
          if (n <= 0 || !SslWriteAll(ssl, buf, static_cast<int>(n))) break;
          continue;
        }
        if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      }
      const int n = SSL_read(ssl, buf, sizeof(buf));
      if (n <= 0) {
        const int err = SSL_get_error(ssl, n);
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) continue;
        break;
      }
      if (!WriteAll(backend, buf, n)) break;
    }
    close(backend);
    SSL_shutdown(ssl);
  }
  ERR_clear_error();
  if (ssl != nullptr) SSL_free(ssl);
  close(client_fd);
}

}  // namespace retryd
