#include "server/store/reader_pool.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"

namespace retryd {

struct ReaderPool::Connection {
  std::unique_ptr<sqlite::Database> db;
  // When the current read must stop (set by Acquire; read by the progress handler, on the
  // borrowing thread only).
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
};

namespace {

// SQLite calls this every kProgressSteps virtual-machine steps of a running statement; a
// non-zero answer interrupts it (SQLITE_INTERRUPT).
constexpr int kProgressSteps = 1000;

}  // namespace

ReaderPool::Reader::Reader(Reader&& other) noexcept
    : pool_(other.pool_), connection_(std::exchange(other.connection_, nullptr)) {}

ReaderPool::Reader::~Reader() {
  if (connection_ != nullptr) pool_->Release(connection_);
}

sqlite::Database& ReaderPool::Reader::db() const { return *connection_->db; }

absl::StatusOr<std::unique_ptr<ReaderPool>> ReaderPool::Open(const std::string& path,
                                                             Options options) {
  options.size = std::max(options.size, 1);
  std::unique_ptr<ReaderPool> pool(new ReaderPool(options));
  for (int i = 0; i < options.size; ++i) {
    auto c = std::make_unique<Connection>();
    absl::StatusOr<std::unique_ptr<sqlite::Database>> db =
        sqlite::Database::Open(path, /*read_only=*/true);
    if (!db.ok()) return db.status();
    c->db = std::move(*db);
    if (options.read_timeout != absl::InfiniteDuration()) {
      sqlite3_progress_handler(
          c->db->raw(), kProgressSteps,
          +[](void* arg) -> int {
            const auto* conn = static_cast<const Connection*>(arg);
            return std::chrono::steady_clock::now() >= conn->deadline ? 1 : 0;
          },
          c.get());
    }
    pool->connections_.push_back(std::move(c));
  }
  absl::MutexLock lock(&pool->mu_);
  for (const auto& c : pool->connections_) pool->free_.push_back(c.get());
  return pool;
}

ReaderPool::ReaderPool(Options options) : options_(options) {}

ReaderPool::~ReaderPool() = default;

absl::StatusOr<ReaderPool::Reader> ReaderPool::Acquire() {
  Connection* c = nullptr;
  {
    absl::MutexLock lock(&mu_);
    auto has_free = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !free_.empty(); };
    if (!mu_.AwaitWithTimeout(absl::Condition(&has_free), options_.wait)) {
      return absl::UnavailableError(absl::StrCat(
          "the store's ", connections_.size(), " read connections stayed busy for ",
          absl::FormatDuration(options_.wait), " (long reads running); retry later"));
    }
    c = free_.back();
    free_.pop_back();
  }
  if (options_.read_timeout == absl::InfiniteDuration()) {
    c->deadline = std::chrono::steady_clock::time_point::max();
  } else {
    c->deadline = std::chrono::steady_clock::now() +
                  std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                      absl::ToChronoNanoseconds(options_.read_timeout));
  }
  return Reader(this, c);
}

int ReaderPool::idle() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(free_.size());
}

void ReaderPool::Release(Connection* connection) {
  absl::MutexLock lock(&mu_);
  free_.push_back(connection);
}

}  // namespace retryd
