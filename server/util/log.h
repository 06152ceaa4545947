// Structured logs: one JSON object per line on stderr, e.g.
//   {"ts":"2026-11-23T10:00:00.123Z","level":"warn","event":"dead_lettered","service":"billing",...}
// Build a line with LogEvent(level, "event").Str("service", s).Int("attempt", n); it is written
// when the temporary is destroyed. Lines below the configured level cost one comparison.
// Never log payloads, header values or tokens.
#ifndef RETRYD_SERVER_UTIL_LOG_H_
#define RETRYD_SERVER_UTIL_LOG_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"

namespace retryd {

enum class LogLevel : int { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// Thread-safe. Default kInfo.
void SetLogLevel(LogLevel level);
// Parses "debug", "info", "warn" or "error".
bool ParseLogLevel(absl::string_view text, LogLevel* level);
// "json" (default) or "text" (a human-readable line, for local runs).
bool SetLogFormat(absl::string_view format);

class LogEvent {
 public:
  LogEvent(LogLevel level, absl::string_view event);
  ~LogEvent();
  LogEvent(const LogEvent&) = delete;
  LogEvent& operator=(const LogEvent&) = delete;

  LogEvent& Str(absl::string_view key, absl::string_view value);
  LogEvent& Int(absl::string_view key, int64_t value);
  LogEvent& Double(absl::string_view key, double value);
  LogEvent& Bool(absl::string_view key, bool value);

 private:
  struct Fields;
  std::unique_ptr<Fields> fields_;  // Null when the level is filtered out.
};

}  // namespace retryd

#endif  // RETRYD_SERVER_UTIL_LOG_H_
