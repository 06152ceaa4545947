#include "server/dlq/purge.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "server/util/log.h"
#include "server/util/status_macros.h"

namespace retryd {
namespace {

struct PurgeJob {
  Engine* engine = nullptr;
  EnvelopeFilter filter;
  AuditRecord audit;  // audit.id != 0 once the first chunk recorded it.
  DlqCounters* counters = nullptr;
  std::function<void(absl::StatusOr<int64_t>)> done;
  int64_t total = 0;
  int64_t last_chunk = 0;
  std::vector<std::pair<std::string, int64_t>> last_chunk_by_service;
  bool answered_from_earlier = false;
};

void Finish(const std::shared_ptr<PurgeJob>& job) {
  if (job->total > 0 && !job->answered_from_earlier) {
    LogEvent(LogLevel::kWarn, "dead_letters_purged")
        .Str("service", job->filter.service)
        .Int("count", job->total)
        .Str("request_id", job->audit.request_id)
        .Str("peer", job->audit.peer);
  }
  job->done(job->total);
}

void NextChunk(std::shared_ptr<PurgeJob> job) {
  job->engine->RunInTransaction(
      [job](EngineTxn& txn) -> absl::Status {
        job->last_chunk = 0;
        job->last_chunk_by_service.clear();
        if (job->audit.id == 0 && !job->audit.request_id.empty()) {
          ASSIGN_OR_RETURN(std::optional<AuditRecord> earlier,
                           txn.store().FindAudit(job->audit.method, job->audit.request_id));
          if (earlier.has_value()) {
            job->total = earlier->affected_count;  // A retried call: answered, not purged again.
            job->answered_from_earlier = true;
            return absl::OkStatus();
          }
        }
        ASSIGN_OR_RETURN(auto deleted, txn.store().DeleteDeadLetters(job->filter, kPurgeChunk));
        for (const auto& [service, n] : deleted) {
          txn.DeadLettersRemoved(service, n);
          job->last_chunk += n;
        }
        job->last_chunk_by_service = std::move(deleted);
        const int64_t total = job->total + job->last_chunk;
        if (job->audit.id == 0) {
          AuditRecord audit = job->audit;
          audit.time = txn.now();
          audit.affected_count = total;
          RETURN_IF_ERROR(txn.store().AppendAudit(&audit));
          job->audit.id = audit.id;
        } else if (job->last_chunk > 0) {
          RETURN_IF_ERROR(txn.store().UpdateAuditCount(job->audit.id, total));
        }
        return absl::OkStatus();
      },
      [job](absl::Status s) {
        if (!s.ok()) {
          // This chunk was rolled back; earlier ones are committed and audited with their count.
          LogEvent(LogLevel::kError, "purge_failed")
              .Int("purged", job->total)
              .Str("error", s.ToString());
          job->done(s);
          return;
        }
        if (job->answered_from_earlier) {
          Finish(job);
          return;
        }
        job->total += job->last_chunk;
        if (job->counters != nullptr) {
          job->counters->purged.fetch_add(job->last_chunk, std::memory_order_relaxed);
          if (job->counters->observer != nullptr) {
            for (const auto& [service, n] : job->last_chunk_by_service) {
              job->counters->observer->OnDeadLettersRemoved(service, "purge", n);
            }
          }
        }
        if (job->last_chunk < kPurgeChunk) {
          Finish(job);
        } else {
          NextChunk(job);
        }
      });
}

}  // namespace

void PurgeInChunks(Engine* engine, const EnvelopeFilter& filter, absl::Time started,
                   AuditRecord audit, DlqCounters* counters,
                   std::function<void(absl::StatusOr<int64_t>)> done) {
  auto job = std::make_shared<PurgeJob>();
  job->engine = engine;
  job->filter = filter;
  job->filter.before = std::min(job->filter.before, started);
  job->audit = std::move(audit);
  job->audit.id = 0;
  job->counters = counters;
  job->done = std::move(done);
  NextChunk(std::move(job));
}

}  // namespace retryd
