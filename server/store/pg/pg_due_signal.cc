#include "server/store/pg/pg_due_signal.h"

#include <poll.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/util/status_macros.h"

namespace retryd::pg {

namespace {
// How often the threads look at their stop flag while idle.
constexpr absl::Duration kIdleTick = absl::Milliseconds(50);
constexpr absl::Duration kReconnectDelay = absl::Seconds(1);
}  // namespace

absl::StatusOr<absl::Time> NextDueAt(Connection& conn, absl::string_view service) {
  ASSIGN_OR_RETURN(Result r, conn.Exec("SELECT min(sort_at) FROM envelopes"
                                       " WHERE service = $1 AND state = 1",
                                       Params().Text(service)));
  if (r.IsNull(0, 0)) return absl::InfiniteFuture();
  return absl::FromUnixMicros(r.Int(0, 0));
}

absl::StatusOr<std::unique_ptr<DueNotifier>> DueNotifier::Start(const std::string& dsn,
                                                                 absl::Duration min_interval) {
  ASSIGN_OR_RETURN(std::unique_ptr<Connection> conn, Connection::Open(dsn));
  std::unique_ptr<DueNotifier> n(new DueNotifier(dsn, std::move(conn), min_interval));
  n->thread_ = std::thread([p = n.get()] { p->Loop(); });
  return n;
}

DueNotifier::DueNotifier(std::string dsn, std::unique_ptr<Connection> conn,
                         absl::Duration min_interval)
    : dsn_(std::move(dsn)), conn_(std::move(conn)), min_interval_(min_interval) {}

absl::Status DueNotifier::Send(const std::string& service) {
  if (conn_ == nullptr) {
    ASSIGN_OR_RETURN(conn_, Connection::Open(dsn_));
  }
  // An autocommitted statement of its own: never part of a submit transaction.
  absl::Status s =
      conn_->Exec("SELECT pg_notify($1, $2)", Params().Text(kDueChannel).Text(service)).status();
  if (!s.ok()) conn_.reset();
  return s;
}

DueNotifier::~DueNotifier() {
  {
    absl::MutexLock l(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

void DueNotifier::Signal(const std::string& service) {
  absl::MutexLock l(&mu_);
  pending_.insert(service);
  ++signals_;
}

void DueNotifier::Loop() {
  absl::Time resume_at = absl::InfinitePast();  // After a failed send: not before this.
  for (;;) {
    std::vector<std::string> batch;
    {
      absl::MutexLock l(&mu_);
      if (stopping_) return;
      const absl::Time now = absl::Now();
      // The pending services whose interval has passed go now; the others wait for theirs.
      absl::Time next_due = absl::InfiniteFuture();
      if (now >= resume_at) {
        for (auto it = pending_.begin(); it != pending_.end();) {
          auto last = last_sent_.find(*it);
          if (last == last_sent_.end() || now - last->second >= min_interval_) {
            batch.push_back(*it);
            pending_.erase(it++);
          } else {
            next_due = std::min(next_due, last->second + min_interval_);
            ++it;
          }
        }
      } else if (!pending_.empty()) {
        next_due = resume_at;
      }
      if (batch.empty()) {
        // Sleep until a new signal, the next service's interval ends, or the idle tick.
        const int64_t seen = signals_;
        auto woken = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return stopping_ || signals_ != seen;
        };
        mu_.AwaitWithTimeout(absl::Condition(&woken),
                             std::max(absl::ZeroDuration(), std::min(next_due - now, kIdleTick)));
        continue;
      }
    }
    for (const std::string& service : batch) {
      if (!Send(service).ok()) {
        // Parked polls fall back to polling until the next try; the service stays pending.
        resume_at = absl::Now() + kReconnectDelay;
        absl::MutexLock l(&mu_);
        pending_.insert(service);
        continue;
      }
      last_sent_[service] = absl::Now();
      sent_.fetch_add(1);
    }
  }
}

absl::StatusOr<std::unique_ptr<DueListener>> DueListener::Start(
    const std::string& dsn, std::function<void(const std::string&)> on_due) {
  std::unique_ptr<DueListener> l(new DueListener(dsn, std::move(on_due)));
  ASSIGN_OR_RETURN(std::unique_ptr<Connection> conn, l->Listen());
  l->thread_ = std::thread([p = l.get(), c = std::move(conn)]() mutable { p->Loop(std::move(c)); });
  return l;
}

DueListener::~DueListener() {
  stopping_.store(true);
  thread_.join();
}

absl::StatusOr<std::unique_ptr<Connection>> DueListener::Listen() {
  ASSIGN_OR_RETURN(std::unique_ptr<Connection> conn, Connection::Open(dsn_));
  RETURN_IF_ERROR(conn->ExecScript(absl::StrCat("LISTEN ", kDueChannel)));
  return conn;
}

void DueListener::Loop(std::unique_ptr<Connection> conn) {
  while (!stopping_.load()) {
    if (conn == nullptr || !conn->ok()) {
      absl::SleepFor(kReconnectDelay);
      absl::StatusOr<std::unique_ptr<Connection>> c = Listen();
      if (!c.ok()) continue;
      conn = *std::move(c);
      on_due_("");  // Notifications may have been missed while disconnected.
      continue;
    }
    pollfd fd{PQsocket(conn->raw()), POLLIN, 0};
    const int ready = ::poll(&fd, 1, static_cast<int>(absl::ToInt64Milliseconds(kIdleTick)));
    if (ready <= 0) continue;
    if (PQconsumeInput(conn->raw()) == 0) {
      conn.reset();
      continue;
    }
    while (PGnotify* n = PQnotifies(conn->raw())) {
      std::string service = n->extra != nullptr ? n->extra : "";
      PQfreemem(n);
      if (!service.empty()) on_due_(service);
    }
  }
}

}  // namespace retryd::pg
