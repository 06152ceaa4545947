// The /metrics page of retryd's metrics port. prometheus-cpp 1.0's Exposer always serves its own
// families next to the registered ones (exposer_transferred_bytes_total, exposer_scrapes_total and
// exposer_request_latencies, a summary in microseconds), with no option to leave them out; every
// retryd metric is in base units. So GET /metrics is answered from civetweb's begin_request
// callback, which the Exposer takes and which runs before its handler: the page then holds what
// the route's renderer returns, retryd's families only. Other paths and methods go on to the
// Exposer as before.
#ifndef RETRYD_SERVER_METRICS_METRICS_PAGE_H_
#define RETRYD_SERVER_METRICS_METRICS_PAGE_H_

#include <functional>
#include <string>

struct CivetCallbacks;

namespace retryd {

// Callbacks to give the Exposer: GET /metrics on a port with a MetricsPageRoute is answered with
// its renderer's text; on a port without one (not yet, or no longer, routed) with 503.
const CivetCallbacks* MetricsPageCallbacks();

// While it lives, GET /metrics on `port` is answered with `render()` (text exposition format).
// The destructor waits for a page being rendered to finish.
class MetricsPageRoute {
 public:
  MetricsPageRoute(int port, std::function<std::string()> render);
  ~MetricsPageRoute();
  MetricsPageRoute(const MetricsPageRoute&) = delete;
  MetricsPageRoute& operator=(const MetricsPageRoute&) = delete;

 private:
  int port_;
};

}  // namespace retryd

#endif  // RETRYD_SERVER_METRICS_METRICS_PAGE_H_
