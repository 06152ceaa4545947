// PgPool: a fixed number of PostgreSQL connections for PgStore's read side, so reads from any
// thread run side by side and beside the writer. A reader borrows one with Acquire() and gives it
// back when its Lease is destroyed. A connection found broken is opened again on its next loan.
// Waiting for a free connection is bounded (UNAVAILABLE after `wait`); each connection has a
// statement_timeout of `read_timeout` (a longer read is DEADLINE_EXCEEDED).
//
// Threading: thread-safe.
#ifndef RETRYD_SERVER_STORE_PG_PG_POOL_H_
#define RETRYD_SERVER_STORE_PG_PG_POOL_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/store/pg/pg_conn.h"

namespace retryd::pg {

class Pool {
 public:
  struct Options {
    int size = 4;
    absl::Duration wait = absl::Seconds(5);
    absl::Duration read_timeout = absl::Seconds(60);
  };

  class Lease {
   public:
    Lease(Lease&& o) noexcept : pool_(o.pool_), conn_(std::move(o.conn_)) { o.pool_ = nullptr; }
    Lease& operator=(Lease&&) = delete;
    ~Lease();
    Connection* operator->() const { return conn_.get(); }
    Connection& operator*() const { return *conn_; }

   private:
    friend class Pool;
    Lease(Pool* pool, std::unique_ptr<Connection> conn) : pool_(pool), conn_(std::move(conn)) {}
    Pool* pool_;
    std::unique_ptr<Connection> conn_;
  };

  // Opens one connection at once (so a bad DSN fails here); the others on first need.
  static absl::StatusOr<std::unique_ptr<Pool>> Open(std::string dsn, Options options);

  // A free, working connection; UNAVAILABLE when none came free in time or none could be opened.
  absl::StatusOr<Lease> Acquire();

 private:
  Pool(std::string dsn, Options options) : dsn_(std::move(dsn)), options_(options) {}
  absl::StatusOr<std::unique_ptr<Connection>> Connect();
  void Release(std::unique_ptr<Connection> conn);

  const std::string dsn_;
  const Options options_;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<Connection>> idle_ ABSL_GUARDED_BY(mu_);
  int lent_ ABSL_GUARDED_BY(mu_) = 0;  // Connections out on loan (or being opened).
};

}  // namespace retryd::pg

#endif  // RETRYD_SERVER_STORE_PG_PG_POOL_H_
