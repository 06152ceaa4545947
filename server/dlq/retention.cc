#include "server/dlq/retention.h"

#include <algorithm>
#include <string>
#include <vector>

#include "server/dlq/sync_txn.h"
#include "server/util/log.h"
#include "server/util/status_macros.h"
#include "server/util/thread_name.h"

namespace retryd {
namespace {

// Rows deleted per transaction, so one sweep never holds the writer for long.
constexpr int64_t kTrimBatch = 1000;

}  // namespace

RetentionSweeper::RetentionSweeper(Engine* engine, Store* store, const PolicySet* policies,
                                   const Clock* clock, DlqCounters* counters)
    : engine_(engine), store_(store), policies_(policies), clock_(clock), counters_(counters) {
  absl::Duration shortest = absl::InfiniteDuration();
  for (const Policy& p : policies_->policies()) {
    if (p.dead_letter.retention > absl::ZeroDuration()) {
      shortest = std::min(shortest, p.dead_letter.retention);
    }
  }
  enabled_ = shortest != absl::InfiniteDuration();
  if (enabled_) interval_ = std::clamp(shortest / 2, absl::Seconds(1), absl::Minutes(1));
}

RetentionSweeper::~RetentionSweeper() { Stop(); }

void RetentionSweeper::Start() {
  if (!enabled_ || thread_.joinable()) return;
  thread_ = std::thread([this] { Loop(); });
}

void RetentionSweeper::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void RetentionSweeper::Loop() {
  NameThisThread("retryd-retain");
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_; };
      mu_.AwaitWithTimeout(absl::Condition(&stopping), interval_);
      if (stop_) return;
    }
    absl::StatusOr<int64_t> trimmed = SweepOnce();
    if (!trimmed.ok()) {
      LogEvent(LogLevel::kWarn, "retention_sweep_failed").Str("error", trimmed.status().ToString());
    }
  }
}

absl::StatusOr<int64_t> RetentionSweeper::SweepOnce() {
  ASSIGN_OR_RETURN(std::vector<ServiceCounts> services, store_->CountByService());
  int64_t total = 0;
  for (const ServiceCounts& svc : services) {
    if (svc.dead == 0) continue;
    const Policy& policy = policies_->Resolve(svc.service);
    if (policy.dead_letter.retention <= absl::ZeroDuration()) continue;
    while (true) {
      int64_t trimmed = 0;
      absl::Status s = RunInTransactionAndWait(*engine_, [&](EngineTxn& txn) -> absl::Status {
        EnvelopeFilter filter;
        filter.service = svc.service;
        filter.before = txn.now() - policy.dead_letter.retention;
        ASSIGN_OR_RETURN(auto deleted, txn.store().DeleteDeadLetters(filter, kTrimBatch));
        trimmed = 0;
        for (const auto& [service, n] : deleted) {
          txn.DeadLettersRemoved(service, n);
          trimmed += n;
        }
        if (trimmed == 0) return absl::OkStatus();
        AuditRecord audit;
        audit.time = txn.now();
        audit.identity = "retryd";
        audit.peer = "";
        audit.method = "RetentionSweep";
        audit.affected_count = trimmed;
        audit.note = absl::StrCat("dead_letter.retention ",
                                  absl::FormatDuration(policy.dead_letter.retention),
                                  " of policy ", policy.name);
        audit.target = svc.service;
        audit.result_code = "OK";
        return txn.store().AppendAudit(&audit);
      });
      RETURN_IF_ERROR(s);
      if (trimmed == 0) break;
      counters_->retention_trimmed.fetch_add(trimmed, std::memory_order_relaxed);
      if (counters_->observer != nullptr) {
        counters_->observer->OnDeadLettersRemoved(svc.service, "retention", trimmed);
      }
      total += trimmed;
      LogEvent(LogLevel::kWarn, "dead_letters_trimmed")
          .Str("service", svc.service)
          .Int("count", trimmed)
          .Str("policy", policy.name)
          .Double("retention_seconds", absl::ToDoubleSeconds(policy.dead_letter.retention));
      if (trimmed < kTrimBatch) break;
    }
  }
  return total;
}

}  // namespace retryd
