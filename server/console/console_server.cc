#include "server/console/console_server.h"

#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "civetweb.h"
#include "nlohmann/json.hpp"
#include "retryd/v1/admin_service.pb.h"
#include "server/auth/token_table.h"
#include "server/console/assets.h"
#include "server/console/request_guard.h"
#include "server/util/log.h"
#include "server/util/status_macros.h"

namespace retryd {
namespace {

constexpr long long kMaxBodyBytes = 256 * 1024;
constexpr absl::string_view kApiPrefix = "/api/";

const char* ReasonPhrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Internal Server Error";
  }
}

// Answers the request; returns the status for civetweb's log.
int Send(mg_connection* conn, int status, absl::string_view content_type, absl::string_view body,
         const std::vector<std::pair<std::string, std::string>>& extra = {}) {
  std::string head = absl::StrCat("HTTP/1.1 ", status, " ", ReasonPhrase(status),
                                  "\r\nContent-Type: ", content_type,
                                  "\r\nContent-Length: ", body.size(), "\r\n");
  for (const auto& [name, value] : SecurityHeaders()) {
    absl::StrAppend(&head, name, ": ", value, "\r\n");
  }
  for (const auto& [name, value] : extra) absl::StrAppend(&head, name, ": ", value, "\r\n");
  absl::StrAppend(&head, "Connection: close\r\n\r\n");
  mg_write(conn, head.data(), head.size());
  mg_write(conn, body.data(), body.size());
  return status;
}

int SendJson(mg_connection* conn, int status, absl::string_view json,
             const std::vector<std::pair<std::string, std::string>>& extra = {}) {
  return Send(conn, status, "application/json; charset=utf-8", json, extra);
}

int SendError(mg_connection* conn, grpc::StatusCode code, absl::string_view message) {
  return SendJson(conn, HttpStatusFor(code), ErrorJson(code, message));
}

std::string Header(mg_connection* conn, const char* name) {
  const char* v = mg_get_header(conn, name);
  return v == nullptr ? "" : v;
}

// The request body, or nullopt when larger than kMaxBodyBytes.
std::optional<std::string> ReadBody(mg_connection* conn) {
  std::string body;
  char buf[8192];
  int n;
  while ((n = mg_read(conn, buf, sizeof(buf))) > 0) {
    body.append(buf, static_cast<size_t>(n));
    if (static_cast<long long>(body.size()) > kMaxBodyBytes) return std::nullopt;
  }
  return body;
}

std::string QueryVar(const mg_request_info* info, const char* name) {
  if (info->query_string == nullptr) return "";
  std::string out(4096, '\0');
  const int n = mg_get_var(info->query_string, std::strlen(info->query_string), name, out.data(),
                           out.size());
  if (n < 0) return "";
  out.resize(static_cast<size_t>(n));
  return out;
}

// A file name made of the safe characters of `id`.
std::string SafeFileName(absl::string_view id) {
  std::string out;
  for (char c : id) {
    if (out.size() >= 64) break;
    if (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.') {
      out.push_back(c);
    }
  }
  return out.empty() ? "payload" : out;
}

int BeginRequest(mg_connection* conn) {
  const mg_request_info* info = mg_get_request_info(conn);
  if (info == nullptr || info->user_data == nullptr) return 0;
  return static_cast<ConsoleServer*>(info->user_data)->HandleRequest(conn);
}

}  // namespace

ConsoleServer::ConsoleServer(ConsoleOptions options, std::shared_ptr<grpc::Channel> channel,
                             const Clock* clock)
    : options_(std::move(options)),
      tls_(options_.tls_cert_pem.has_value()),
      relay_(std::move(channel)),
      sessions_(clock, options_.session_idle) {}

absl::StatusOr<std::unique_ptr<ConsoleServer>> ConsoleServer::Start(
    ConsoleOptions options, std::shared_ptr<grpc::Channel> channel, const Clock* clock) {
  std::string host;
  int port = 0;
  if (!SplitHostPort(options.listen, &host, &port)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "console.listen: must be \"host:port\" (e.g. 127.0.0.1:8081), got \"", options.listen,
        "\""));
  }
  std::unique_ptr<ConsoleServer> server(
      new ConsoleServer(std::move(options), std::move(channel), clock));
  // civetweb listens on the console address itself, or (with TLS) on a private loopback port.
  const std::string civet_listen =
      server->tls_ ? "127.0.0.1:0"
                   : (host.find(':') != std::string::npos ? absl::StrCat("[", host, "]:", port)
                                                          : absl::StrCat(host, ":", port));
  static const bool initialized = [] {
    mg_init_library(0);
    return true;
  }();
  (void)initialized;
  mg_callbacks callbacks{};
  callbacks.begin_request = &BeginRequest;
  const char* civet_options[] = {"listening_ports", civet_listen.c_str(), "num_threads", "8",
                                 "request_timeout_ms", "60000", nullptr};
  server->ctx_ = mg_start(&callbacks, server.get(), civet_options);
  if (server->ctx_ == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("console.listen ", server->options_.listen, ": cannot listen"));
  }
  mg_server_port ports[4];
  const int n = mg_get_server_ports(server->ctx_, 4, ports);
  if (n < 1) return absl::UnavailableError("console: civetweb reports no listening port");
  server->port_ = ports[0].port;
  if (server->tls_) {
    ASSIGN_OR_RETURN(server->front_,
                     TlsFront::Start(server->options_.listen, *server->options_.tls_cert_pem,
                                     *server->options_.tls_key_pem, server->port_));
    server->port_ = server->front_->port();
  }
  return server;
}

ConsoleServer::~ConsoleServer() {
  front_.reset();
  if (ctx_ != nullptr) mg_stop(ctx_);
}

std::string ConsoleServer::url() const {
  std::string host;
  int unused = 0;
  SplitHostPort(options_.listen, &host, &unused);
  if (host == "0.0.0.0" || host == "::") host = "127.0.0.1";
  if (host.find(':') != std::string::npos) host = absl::StrCat("[", host, "]");
  return absl::StrCat(tls_ ? "https://" : "http://", host, ":", port_, "/");
}

int ConsoleServer::Login(mg_connection* conn, const std::string& body) {
  const nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  std::string token;
  if (j.is_object() && j.contains("token") && j["token"].is_string()) {
    token = j["token"].get<std::string>();
  } else if (!j.is_object()) {
    return SendError(conn, grpc::StatusCode::INVALID_ARGUMENT,
                     "body: expected {\"token\": \"...\"}");
  }
  if (token.size() > kMaxBearerTokenBytes) {
    return SendError(conn, grpc::StatusCode::INVALID_ARGUMENT, "token: too long");
  }
  if (options_.auth_enabled && token.empty()) {
    return SendError(conn, grpc::StatusCode::UNAUTHENTICATED,
                     "token: enter an operator token (this server checks tokens)");
  }
  v1::ListServicesRequest request;
  v1::ListServicesResponse response;
  const grpc::Status checked =
      relay_.Invoke("retryd.v1.AdminService/ListServices", request, &response, token);
  if (checked.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
    LogEvent(LogLevel::kWarn, "console_login_refused").Str("reason", "not an operator token");
    return SendError(conn, grpc::StatusCode::PERMISSION_DENIED,
                     "token: this is not an operator token (a worker token cannot use the "
                     "console); sign in with an OPERATOR token");
  }
  if (checked.error_code() == grpc::StatusCode::UNAUTHENTICATED) {
    LogEvent(LogLevel::kWarn, "console_login_refused").Str("reason", "unknown token");
    return SendError(conn, grpc::StatusCode::UNAUTHENTICATED,
                     "token: not a token this server knows");
  }
  if (!checked.ok()) return SendError(conn, checked.error_code(), checked.error_message());
  std::string identity = "anonymous";
  if (!token.empty() && options_.identity_of) identity = options_.identity_of(token);
  absl::StatusOr<ConsoleSession> session = sessions_.Create(token, identity);
  if (!session.ok()) {
    return SendError(conn, grpc::StatusCode::INTERNAL, session.status().message());
  }
  LogEvent(LogLevel::kInfo, "console_login").Str("identity", identity);
  nlohmann::json out;
  out["csrf_token"] = session->csrf_token;
  out["identity"] = identity;
  return SendJson(conn, 200, out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                  {{"Set-Cookie", SessionCookie(session->id, tls_)}});
}

int ConsoleServer::HandleRequest(mg_connection* conn) {
  const mg_request_info* info = mg_get_request_info(conn);
  if (info->local_uri == nullptr || info->request_method == nullptr) return 0;
  const std::string uri = info->local_uri;
  const std::string method = info->request_method;
  const std::optional<ConsoleSession> session =
      sessions_.Lookup(CookieValue(Header(conn, "Cookie"), SessionCookieName(tls_)));

  if (method == "GET" || method == "HEAD") {
    if (const ConsoleAsset* asset = FindConsoleAsset(uri == "/index.html" ? "/" : uri)) {
      return Send(conn, 200, asset->content_type, method == "HEAD" ? "" : asset->body);
    }
    if (uri == "/api/session") {
      if (!session) {
        return SendError(conn, grpc::StatusCode::UNAUTHENTICATED, "session: not signed in");
      }
      nlohmann::json out;
      out["csrf_token"] = session->csrf_token;
      out["identity"] = session->identity;
      out["auth_enabled"] = options_.auth_enabled;
      return SendJson(conn, 200,
                      out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    }
    if (uri == "/api/payload") {
      if (!session) {
        return SendError(conn, grpc::StatusCode::UNAUTHENTICATED, "session: not signed in");
      }
      v1::GetEnvelopeRequest request;
      request.set_service(QueryVar(info, "service"));
      request.set_message_id(QueryVar(info, "message_id"));
      v1::GetEnvelopeResponse response;
      const grpc::Status got = relay_.Invoke("retryd.v1.AdminService/GetEnvelope", request,
                                             &response, session->bearer_token);
      if (!got.ok()) return SendError(conn, got.error_code(), got.error_message());
      return Send(conn, 200, "application/octet-stream", response.envelope().payload(),
                  {{"Content-Disposition",
                    absl::StrCat("attachment; filename=\"",
                                 SafeFileName(request.message_id()), ".bin\"")}});
    }
    return Send(conn, 404, "text/plain; charset=utf-8", "not found\n");
  }
  if (method != "POST") {
    return Send(conn, 405, "text/plain; charset=utf-8", "method not allowed\n",
                {{"Allow", "GET, HEAD, POST"}});
  }

  // Every POST: from the console's own pages only, with a bounded body.
  RequestOrigin origin{Header(conn, "Host"), Header(conn, "Origin"),
                       Header(conn, "Sec-Fetch-Site"), tls_};
  if (absl::Status same = CheckSameOrigin(origin); !same.ok()) {
    return SendError(conn, grpc::StatusCode::PERMISSION_DENIED, same.message());
  }
  std::optional<std::string> body = ReadBody(conn);
  if (!body) {
    return SendError(conn, grpc::StatusCode::RESOURCE_EXHAUSTED, "body: larger than 256 KiB");
  }
  if (uri == "/login") return Login(conn, *body);

  if (!session) {
    return SendError(conn, grpc::StatusCode::UNAUTHENTICATED,
                     "session: not signed in, or signed out after being idle; sign in again");
  }
  if (absl::Status csrf = CheckCsrfToken(Header(conn, "X-CSRF-Token"), session->csrf_token);
      !csrf.ok()) {
    return SendError(conn, grpc::StatusCode::PERMISSION_DENIED, csrf.message());
  }
  if (uri == "/logout") {
    sessions_.Remove(CookieValue(Header(conn, "Cookie"), SessionCookieName(tls_)));
    return SendJson(conn, 200, "{}", {{"Set-Cookie", SessionCookie("", tls_)}});
  }
  if (absl::StartsWith(uri, kApiPrefix)) {
    const RelayResult result =
        relay_.Call(absl::string_view(uri).substr(kApiPrefix.size()), *body,
                    session->bearer_token);
    return SendJson(conn, result.http_status, result.json);
  }
  return SendError(conn, grpc::StatusCode::NOT_FOUND, "path: not a console endpoint");
}

}  // namespace retryd
