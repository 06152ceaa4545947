#include "server/dlq/purge.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/util/log.h"
#include "server/util/status_macros.h"

namespace retryd {
namespace {

struct PurgeJob {
  Engine* engine = nullptr;
  EnvelopeFilter filter;
  AuditRecord audit;  // audit.id != 0 once the first chunk recorded it.
  DlqCounters* counters = nullptr;
  std::shared_ptr<RunningPurges> running;
  RunningPurges::Done done;
  int64_t total = 0;
  int64_t last_chunk = 0;
  std::vector<std::pair<std::string, int64_t>> last_chunk_by_service;
  bool answered_from_earlier = false;
  bool joined = false;      // Answered by the running purge it repeats (`done` moved there).
  bool registered = false;  // In `running` under its request_id until it ends.
};

// The fields in which a purge request differs from the earlier one recorded with its request_id;
// empty when it is the same request.
std::string Differences(const AuditRecord& earlier, const AuditRecord& now) {
  std::vector<std::string> fields;
  if (earlier.filter != now.filter) fields.push_back("filter");
  if (earlier.note != now.note) fields.push_back("note");
  return absl::StrJoin(fields, " and ");
}

// Answers the purge's own call and every call that joined it.
void Answer(const std::shared_ptr<PurgeJob>& job, const absl::StatusOr<int64_t>& result) {
  if (job->registered) job->running->End(job->audit.request_id, result);
  job->done(result);
}

void Finish(const std::shared_ptr<PurgeJob>& job) {
  if (job->total > 0 && !job->answered_from_earlier) {
    LogEvent(LogLevel::kWarn, "dead_letters_purged")
        .Str("service", job->filter.service)
        .Int("count", job->total)
        .Str("request_id", job->audit.request_id)
        .Str("peer", job->audit.peer);
  }
  Answer(job, job->total);
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
            const std::string differences = Differences(*earlier, job->audit);
            if (!differences.empty()) {
              return absl::AlreadyExistsError(absl::StrCat(
                  "request_id: \"", job->audit.request_id,
                  "\" was already used by another PurgeDeadLetters request (its ", differences,
                  " differ); send the same request again for its answer, or use a new "
                  "request_id (REQUEST_ID_REUSED)"));
            }
            // A retried call: answered, not purged again; by the purge's end if it still runs.
            job->total = earlier->affected_count;
            job->answered_from_earlier = true;
            job->joined = job->running->Join(job->audit.request_id, job->done);
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
          if (!job->audit.request_id.empty()) {
            // Recorded: a retried call finds it, and waits for this purge's end.
            job->running->Add(job->audit.request_id);
            job->registered = true;
          }
        } else if (job->last_chunk > 0) {
          RETURN_IF_ERROR(txn.store().UpdateAuditCount(job->audit.id, total));
        }
        return absl::OkStatus();
      },
      [job](absl::Status s) {
        if (!s.ok()) {
          // This chunk was rolled back; earlier ones are committed and audited with their count.
          if (!absl::IsAlreadyExists(s)) {
            LogEvent(LogLevel::kError, "purge_failed")
                .Int("purged", job->total)
                .Str("error", s.ToString());
          }
          Answer(job, s);
          return;
        }
        if (job->joined) return;  // The running purge answers it when it ends.
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

void RunningPurges::Add(const std::string& request_id) {
  absl::MutexLock lock(&mu_);
  waiting_.try_emplace(request_id);
}

bool RunningPurges::Join(const std::string& request_id, Done& done) {
  absl::MutexLock lock(&mu_);
  auto it = waiting_.find(request_id);
  if (it == waiting_.end()) return false;
  it->second.push_back(std::move(done));
  return true;
}

void RunningPurges::End(const std::string& request_id, const absl::StatusOr<int64_t>& result) {
  std::vector<Done> waiting;
  {
    absl::MutexLock lock(&mu_);
    auto it = waiting_.find(request_id);
    if (it == waiting_.end()) return;
    waiting = std::move(it->second);
    waiting_.erase(it);
  }
  for (Done& done : waiting) done(result);
}

void PurgeInChunks(Engine* engine, const EnvelopeFilter& filter, absl::Time started,
                   AuditRecord audit, DlqCounters* counters,
                   std::shared_ptr<RunningPurges> running,
                   std::function<void(absl::StatusOr<int64_t>)> done) {
  auto job = std::make_shared<PurgeJob>();
  job->running = std::move(running);
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
