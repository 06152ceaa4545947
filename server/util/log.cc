#include "server/util/log.h"

#include <atomic>
#include <cstdio>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace retryd {
namespace {

std::atomic<int> min_level{static_cast<int>(LogLevel::kInfo)};
std::atomic<bool> text_format{false};
absl::Mutex output_mu(absl::kConstInit);

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

}  // namespace

struct LogEvent::Fields {
  nlohmann::ordered_json json;
};

void SetLogLevel(LogLevel level) { min_level = static_cast<int>(level); }

bool ParseLogLevel(absl::string_view text, LogLevel* level) {
  for (LogLevel l : {LogLevel::kDebug, LogLevel::kInfo, LogLevel::kWarn, LogLevel::kError}) {
    if (text == LevelName(l)) {
      *level = l;
      return true;
    }
  }
  return false;
}

bool SetLogFormat(absl::string_view format) {
  if (format != "json" && format != "text") return false;
  text_format = format == "text";
  return true;
}

LogEvent::LogEvent(LogLevel level, absl::string_view event) {
  if (static_cast<int>(level) < min_level) return;
  fields_ = std::make_unique<Fields>();
  fields_->json["ts"] = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone());
  fields_->json["level"] = LevelName(level);
  fields_->json["event"] = std::string(event);
}

LogEvent::~LogEvent() {
  if (fields_ == nullptr) return;
  std::string line;
  if (text_format) {
    const auto& j = fields_->json;
    line = j["ts"].get<std::string>() + " " + j["level"].get<std::string>() + " " +
           j["event"].get<std::string>();
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it.key() == "ts" || it.key() == "level" || it.key() == "event") continue;
      line += " " + it.key() + "=" + (it->is_string() ? it->get<std::string>() : it->dump());
    }
  } else {
    // Replace invalid UTF-8 instead of throwing: log lines carry client-supplied strings.
    line = fields_->json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  line += '\n';
  absl::MutexLock lock(&output_mu);
  std::fwrite(line.data(), 1, line.size(), stderr);
}

LogEvent& LogEvent::Str(absl::string_view key, absl::string_view value) {
  if (fields_ != nullptr) fields_->json[std::string(key)] = std::string(value);
  return *this;
}

LogEvent& LogEvent::Int(absl::string_view key, int64_t value) {
  if (fields_ != nullptr) fields_->json[std::string(key)] = value;
  return *this;
}

LogEvent& LogEvent::Double(absl::string_view key, double value) {
  if (fields_ != nullptr) fields_->json[std::string(key)] = value;
  return *this;
}

LogEvent& LogEvent::Bool(absl::string_view key, bool value) {
  if (fields_ != nullptr) fields_->json[std::string(key)] = value;
  return *this;
}

}  // namespace retryd
