#include "server/console/session_table.h"

#include <string>
#include <utility>

#include "server/auth/token_table.h"
#include "server/util/secure_random.h"
#include "server/util/status_macros.h"

namespace retryd {

std::string SessionTable::KeyOf(absl::string_view id) {
  const Sha256Digest digest = Sha256(id);
  return std::string(reinterpret_cast<const char*>(digest.data()), digest.size());
}

void SessionTable::DropExpiredLocked(absl::Time now) {
  for (auto it = by_key_.begin(); it != by_key_.end();) {
    if (now - it->second.last_used >= idle_) {
      by_key_.erase(it++);
    } else {
      ++it;
    }
  }
}

absl::StatusOr<ConsoleSession> SessionTable::Create(absl::string_view bearer_token,
                                                    absl::string_view identity) {
  ConsoleSession session;
  ASSIGN_OR_RETURN(session.id, SecureRandomHex(32));
  ASSIGN_OR_RETURN(session.csrf_token, SecureRandomHex(32));
  session.bearer_token = std::string(bearer_token);
  session.identity = std::string(identity);
  const absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  DropExpiredLocked(now);
  while (!by_key_.empty() && by_key_.size() >= max_sessions_) {
    auto oldest = by_key_.begin();
    for (auto it = by_key_.begin(); it != by_key_.end(); ++it) {
      if (it->second.last_used < oldest->second.last_used) oldest = it;
    }
    by_key_.erase(oldest);
  }
  by_key_[KeyOf(session.id)] = Entry{session, now};
  return session;
}

std::optional<ConsoleSession> SessionTable::Lookup(absl::string_view id) {
  if (id.empty()) return std::nullopt;
  const absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  auto it = by_key_.find(KeyOf(id));
  if (it == by_key_.end()) return std::nullopt;
  if (now - it->second.last_used >= idle_) {
    by_key_.erase(it);
    return std::nullopt;
  }
  it->second.last_used = now;
  return it->second.session;
}

void SessionTable::Remove(absl::string_view id) {
  absl::MutexLock lock(&mu_);
  by_key_.erase(KeyOf(id));
}

size_t SessionTable::size() const {
  absl::MutexLock lock(&mu_);
  return by_key_.size();
}

}  // namespace retryd
