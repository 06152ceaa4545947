#include "server/metrics/metrics_page.h"

#include <cstring>
#include <utility>

#include "CivetServer.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "civetweb.h"

namespace retryd {
namespace {

// The renderers by listening port. Rendering holds the lock, so a route's destructor (which
// takes it) cannot return while its page is being rendered.
struct Routes {
  absl::Mutex mu;
  absl::flat_hash_map<int, std::function<std::string()>> by_port ABSL_GUARDED_BY(mu);
};

Routes& AllRoutes() {
  static Routes* const routes = new Routes;  // Never destroyed: civetweb threads may outlive main.
  return *routes;
}

void Send(mg_connection* conn, const char* status, const char* content_type,
          const std::string& body) {
  mg_printf(conn,
            "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
            status, content_type, body.size());
  mg_write(conn, body.data(), body.size());
}

// civetweb's begin_request: nonzero (the HTTP status, for its log) means "answered".
int AnswerMetricsPage(mg_connection* conn) {
  const mg_request_info* info = mg_get_request_info(conn);
  if (info == nullptr || info->local_uri == nullptr || info->request_method == nullptr ||
      std::strcmp(info->local_uri, "/metrics") != 0 ||
      std::strcmp(info->request_method, "GET") != 0) {
    return 0;
  }
  std::string body;
  bool routed = false;
  {
    Routes& routes = AllRoutes();
    absl::MutexLock lock(&routes.mu);
    auto it = routes.by_port.find(info->server_port);
    if (it != routes.by_port.end()) {
      routed = true;
      body = it->second();
    }
  }
  if (!routed) {
    Send(conn, "503 Service Unavailable", "text/plain; charset=utf-8", "not serving metrics\n");
    return 503;
  }
  Send(conn, "200 OK", "text/plain; version=0.0.4; charset=utf-8", body);
  return 200;
}

}  // namespace

const CivetCallbacks* MetricsPageCallbacks() {
  static const CivetCallbacks* const callbacks = [] {
    auto* c = new CivetCallbacks;  // Never destroyed, as the routes.
    c->begin_request = &AnswerMetricsPage;
    return c;
  }();
  return callbacks;
}

MetricsPageRoute::MetricsPageRoute(int port, std::function<std::string()> render) : port_(port) {
  Routes& routes = AllRoutes();
  absl::MutexLock lock(&routes.mu);
  routes.by_port[port] = std::move(render);
}

MetricsPageRoute::~MetricsPageRoute() {
  Routes& routes = AllRoutes();
  absl::MutexLock lock(&routes.mu);
  routes.by_port.erase(port_);
}

}  // namespace retryd
