// ReaderPool: a fixed set of read-only SQLite connections for the store's read side, so that one
// long read (a DLQ scan, stats over a million dead letters) does not hold up the others (metrics
// scrapes, ListServices, the replay runner). Each connection is used by one thread at a time: a
// reader borrows one with Acquire() and gives it back when its Reader is destroyed.
//
// Bounds: waiting for a free connection is bounded (`wait`): a read that gets none in time is
// answered UNAVAILABLE, never blocked forever. A read's statements are interrupted once the read
// has run for `read_timeout` (DEADLINE_EXCEEDED), so that no read keeps the write-ahead log pinned
// (a read transaction keeps checkpoints from copying past its snapshot) for longer than that.
//
// Threading: thread-safe.
#ifndef RETRYD_SERVER_STORE_READER_POOL_H_
#define RETRYD_SERVER_STORE_READER_POOL_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/store/sqlite_db.h"

namespace retryd {

class ReaderPool {
  struct Connection;

 public:
  struct Options {
    // Read-only connections. Reads are short but for DLQ scans and stats; four lets a scan or
    // two run beside the scrapes and overviews on a two-core machine without piling up.
    int size = 4;
    // Longest wait for a free connection before a read answers UNAVAILABLE.
    absl::Duration wait = absl::Seconds(5);
    // Longest a read may run before its statements are interrupted (DEADLINE_EXCEEDED).
    absl::Duration read_timeout = absl::Seconds(60);
  };

  // A borrowed connection; gives it back to the pool when destroyed. Move-only.
  class Reader {
   public:
    Reader(Reader&& other) noexcept;
    Reader& operator=(Reader&&) = delete;
    Reader(const Reader&) = delete;
    Reader& operator=(const Reader&) = delete;
    ~Reader();

    sqlite::Database& db() const;
    sqlite::Database* operator->() const { return &db(); }

   private:
    friend class ReaderPool;
    Reader(ReaderPool* pool, Connection* connection) : pool_(pool), connection_(connection) {}
    ReaderPool* pool_;
    Connection* connection_;  // Null once moved from.
  };

  // Opens `options.size` (at least 1) read-only connections to `path`.
  static absl::StatusOr<std::unique_ptr<ReaderPool>> Open(const std::string& path,
                                                          Options options);
  ~ReaderPool();

  // A free connection, waiting up to options.wait for one; UNAVAILABLE when none came free.
  absl::StatusOr<Reader> Acquire();

  int size() const { return static_cast<int>(connections_.size()); }
  // Connections not lent out right now.
  int idle() const;

 private:
  explicit ReaderPool(Options options);
  void Release(Connection* connection);

  const Options options_;
  // Fixed after Open.
  std::vector<std::unique_ptr<Connection>> connections_;

  mutable absl::Mutex mu_;
  std::vector<Connection*> free_ ABSL_GUARDED_BY(mu_);
};

}  // namespace retryd

#endif  // RETRYD_SERVER_STORE_READER_POOL_H_
