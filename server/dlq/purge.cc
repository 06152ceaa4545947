#include "server/dlq/purge.h"

#include <algorithm>
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
  JobClaims* claims = nullptr;
  // The claim of a purge with a request_id (kPurgeJob, request_id) it runs under; 0: none.
  int64_t epoch = 0;
  std::shared_ptr<RunningPurges> running;
  RunningPurges::Done done;
  int64_t total = 0;
  int64_t deleted_here = 0;  // By this call (a resumed purge's total includes earlier chunks).
  int64_t last_chunk = 0;
  std::vector<std::pair<std::string, int64_t>> last_chunk_by_service;
  bool elsewhere = false;   // Answered PURGE_IN_PROGRESS: another replica runs it.
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
  if (job->deleted_here > 0) {
    LogEvent(LogLevel::kWarn, "dead_letters_purged")
        .Str("service", job->filter.service)
        .Int("count", job->total)
        .Str("request_id", job->audit.request_id)
        .Str("peer", job->audit.peer);
  }
  Answer(job, job->total);
}

// The answer to a retried purge that another replica is running (or was running, and stopped
// heartbeating less than the takeover age ago): retry for the final count.
absl::Status InProgressElsewhere(PurgeJob& job) {
  job.elsewhere = true;
  return absl::UnavailableError(absl::StrCat(
      "request_id: the PurgeDeadLetters request \"", job.audit.request_id,
      "\" is still running on another replica; retry the same request for its final count "
      "(PURGE_IN_PROGRESS)"));
}

// The first chunk of a purge with a request_id: answers a retry of a recorded purge, or claims
// the purge (a new one, or one whose holder died, resumed after its recorded count).
absl::Status StartIdempotent(PurgeJob& job, EngineTxn& txn) {
  ASSIGN_OR_RETURN(std::optional<AuditRecord> earlier,
                   txn.store().FindAudit(job.audit.method, job.audit.request_id));
  if (earlier.has_value()) {
    const std::string differences = Differences(*earlier, job.audit);
    if (!differences.empty()) {
      return absl::AlreadyExistsError(absl::StrCat(
          "request_id: \"", job.audit.request_id,
          "\" was already used by another PurgeDeadLetters request (its ", differences,
          " differ); send the same request again for its answer, or use a new "
          "request_id (REQUEST_ID_REUSED)"));
    }
    // Still running in this process: answered by its end.
    if (job.running->Join(job.audit.request_id, job.done)) {
      job.joined = true;
      return absl::OkStatus();
    }
  }
  ASSIGN_OR_RETURN(std::optional<int64_t> epoch,
                   job.claims->ClaimInTxn(kPurgeJob, job.audit.request_id));
  if (!epoch.has_value()) return InProgressElsewhere(job);
  job.epoch = *epoch;
  if (earlier.has_value()) {
    // Ended, or cut short by the death of the replica running it: either way it is finished
    // from here, after the count it recorded (an ended one finds nothing more to delete), over
    // the dead letters that were there when it was first recorded.
    job.audit.id = earlier->id;
    job.total = earlier->affected_count;
    job.filter.before = std::min(job.filter.before, earlier->time);
    job.running->Add(job.audit.request_id);
    job.registered = true;
  }
  return absl::OkStatus();
}

void NextChunk(std::shared_ptr<PurgeJob> job) {
  job->engine->RunInTransaction(
      [job](EngineTxn& txn) -> absl::Status {
        job->last_chunk = 0;
        job->last_chunk_by_service.clear();
        const std::string& request_id = job->audit.request_id;
        if (job->audit.id == 0 && job->epoch == 0 && !request_id.empty()) {
          RETURN_IF_ERROR(StartIdempotent(*job, txn));
          if (job->joined) return absl::OkStatus();
        } else if (job->epoch != 0) {
          // Still this replica's (and its heartbeat renewed), or another one took it over.
          const absl::Status fenced = job->claims->Fence(kPurgeJob, request_id, job->epoch);
          if (absl::IsFailedPrecondition(fenced)) return InProgressElsewhere(*job);
          RETURN_IF_ERROR(fenced);
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
          if (!request_id.empty()) {
            // Recorded: a retried call finds it, and waits for this purge's end.
            job->running->Add(request_id);
            job->registered = true;
          }
        } else if (job->last_chunk > 0) {
          RETURN_IF_ERROR(txn.store().UpdateAuditCount(job->audit.id, total));
        }
        if (job->epoch != 0 && job->last_chunk < kPurgeChunk) {
          // The last chunk: the claim goes with the final count.
          RETURN_IF_ERROR(job->claims->ReleaseInTxn(kPurgeJob, request_id, job->epoch));
        }
        return absl::OkStatus();
      },
      [job](absl::Status s) {
        if (!s.ok()) {
          // This chunk was rolled back; earlier ones are committed and audited with their count.
          if (!absl::IsAlreadyExists(s) && !job->elsewhere) {
            LogEvent(LogLevel::kError, "purge_failed")
                .Int("purged", job->total)
                .Str("error", s.ToString());
          }
          Answer(job, s);
          return;
        }
        if (job->joined) return;  // The running purge answers it when it ends.
        job->total += job->last_chunk;
        job->deleted_here += job->last_chunk;
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
                   std::shared_ptr<RunningPurges> running, JobClaims* claims,
                   std::function<void(absl::StatusOr<int64_t>)> done) {
  static SoleJobClaims* const sole = new SoleJobClaims();  // Stateless; never destroyed.
  auto job = std::make_shared<PurgeJob>();
  job->claims = claims != nullptr ? claims : sole;
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
