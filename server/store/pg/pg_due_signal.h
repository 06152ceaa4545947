// Waking long-polls across replicas. A Lease that finds nothing parks on the replica that got
// it; work that becomes due may be committed by another replica. Two paths wake it:
//
//  - the low-rate notifier: after a replica commits work that is due (a requeue, a re-decided
//    expired lease, a replay), DueNotifier sends NOTIFY retryd_due '<service>' on a connection of
//    its own, outside every submit transaction (a NOTIFY in the transaction would serialise all
//    commits on the notification queue's lock), at most once per service per `min_interval`; a
//    DueListener on every replica hears it and wakes that service's parked polls at once;
//  - polling: a parked poll also re-reads its service's next due time (NextDueAt, one index
//    seek) with backoff, so a lost or coalesced notification (a listener reconnecting, a
//    retry that simply came due with nobody committing) delays a wake by at most the backoff cap.
#ifndef RETRYD_SERVER_STORE_PG_PG_DUE_SIGNAL_H_
#define RETRYD_SERVER_STORE_PG_PG_DUE_SIGNAL_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/store/pg/pg_conn.h"

namespace retryd::pg {

// The channel of the due-work notifications.
inline constexpr char kDueChannel[] = "retryd_due";

// When the earliest scheduled envelope of `service` is due (InfiniteFuture: none).
absl::StatusOr<absl::Time> NextDueAt(Connection& conn, absl::string_view service);

class DueNotifier {
 public:
  // Connects with `dsn` and starts the sending thread.
  static absl::StatusOr<std::unique_ptr<DueNotifier>> Start(const std::string& dsn,
                                                            absl::Duration min_interval);
  ~DueNotifier();

  // `service` has work due (call after the commit that made it). Thread-safe, never blocks on
  // the database; signals of one service within min_interval are sent as one. When a send
  // fails, the notifier connects again (at most once a second) and sends what is pending.
  void Signal(const std::string& service);
  // Notifications sent so far.
  int64_t sent() const { return sent_.load(); }

 private:
  DueNotifier(std::string dsn, std::unique_ptr<Connection> conn, absl::Duration min_interval);
  void Loop();
  // Sends one notification, connecting again first when the last send failed.
  absl::Status Send(const std::string& service);

  const std::string dsn_;
  std::unique_ptr<Connection> conn_;  // Sending thread only; null after a failure.
  const absl::Duration min_interval_;
  absl::Mutex mu_;
  absl::flat_hash_set<std::string> pending_ ABSL_GUARDED_BY(mu_);
  int64_t signals_ ABSL_GUARDED_BY(mu_) = 0;  // Signal() calls so far.
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_map<std::string, absl::Time> last_sent_;  // Sending thread only.
  std::atomic<int64_t> sent_{0};
  std::thread thread_;
};

class DueListener {
 public:
  // Connects with `dsn`, LISTENs on kDueChannel and calls `on_due(service)` on its own thread
  // for each notification. When the connection is lost it reconnects (every second) and calls
  // on_due("") once reconnected: notifications may have been missed, re-check every service.
  static absl::StatusOr<std::unique_ptr<DueListener>> Start(
      const std::string& dsn, std::function<void(const std::string&)> on_due);
  ~DueListener();

 private:
  DueListener(std::string dsn, std::function<void(const std::string&)> on_due)
      : dsn_(std::move(dsn)), on_due_(std::move(on_due)) {}
  absl::StatusOr<std::unique_ptr<Connection>> Listen();
  void Loop(std::unique_ptr<Connection> conn);

  const std::string dsn_;
  const std::function<void(const std::string&)> on_due_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace retryd::pg

#endif  // RETRYD_SERVER_STORE_PG_PG_DUE_SIGNAL_H_
