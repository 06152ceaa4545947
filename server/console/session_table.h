// SessionTable: the console's logged-in operators. A session id (a random secret in an HttpOnly
// cookie) maps, on the server only, to the operator's bearer token and a per-session CSRF token;
// a session unused for the idle timeout is gone. The browser never holds the bearer token after
// the login request.
//
// Sessions are kept by the SHA-256 of their id, so a lookup's timing says nothing about a stored
// id. Thread-safe.
#ifndef RETRYD_SERVER_CONSOLE_SESSION_TABLE_H_
#define RETRYD_SERVER_CONSOLE_SESSION_TABLE_H_

#include <cstddef>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/util/clock.h"

namespace retryd {

struct ConsoleSession {
  std::string id;          // The cookie's value (64 hex digits).
  std::string csrf_token;  // Sent back in X-CSRF-Token on every POST (64 hex digits).
  std::string bearer_token;
  std::string identity;    // The token's name, for the page header.
};

class SessionTable {
 public:
  // `idle`: a session unused this long is logged out. At most `max_sessions` live at once; a new
  // one beyond that evicts the least recently used.
  SessionTable(const Clock* clock, absl::Duration idle, size_t max_sessions = 1024)
      : clock_(clock), idle_(idle), max_sessions_(max_sessions) {}

  // A new session for `bearer_token`. INTERNAL when the CSPRNG fails.
  absl::StatusOr<ConsoleSession> Create(absl::string_view bearer_token,
                                        absl::string_view identity);

  // The live session with this id, its idle clock restarted; nullopt when unknown or idle too
  // long (then it is removed).
  std::optional<ConsoleSession> Lookup(absl::string_view id);

  // Logs the session out (nothing when unknown).
  void Remove(absl::string_view id);

  size_t size() const;

 private:
  struct Entry {
    ConsoleSession session;
    absl::Time last_used;
  };
  static std::string KeyOf(absl::string_view id);
  void DropExpiredLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Clock* const clock_;
  const absl::Duration idle_;
  const size_t max_sessions_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> by_key_ ABSL_GUARDED_BY(mu_);
};

}  // namespace retryd

#endif  // RETRYD_SERVER_CONSOLE_SESSION_TABLE_H_
