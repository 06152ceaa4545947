#include "server/engine/engine.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "server/core/decider.h"
#include "server/core/local_scheduler.h"
#include "server/engine/commit_pipeline.h"
#include "server/engine/engine_op.h"
#include "server/store/store_failure.h"
#include "server/util/log.h"
#include "server/util/secure_random.h"
#include "server/util/status_macros.h"
#include "server/util/thread_name.h"
#include "server/util/time_conversion.h"

namespace retryd {
namespace {

// Logs a decision once it is written: dead letters at warn, schedules at debug (hot path).
void LogDecision(const Envelope& e, const Decision& d, const Failure& failure);

}  // namespace

void StopOnStoreFailure(absl::string_view stage, const absl::Status& status) {
  LogEvent(LogLevel::kError, "store_failed")
      .Str("stage", std::string(stage))
      .Str("error", absl::StrCat(absl::StatusCodeToString(status.code()), ": ", status.message()))
      .Str("action", "exiting without answering; a restart recovers from what is on disk");
  std::fflush(stderr);
  std::_Exit(kStoreFailureExitCode);
}

class Engine::ReportFailureOp final : public Engine::Op {
 public:
  ReportFailureOp(Envelope envelope, Failure failure, std::string token, DecisionCallback done)
      : envelope_(std::move(envelope)),
        failure_(std::move(failure)),
        token_(std::move(token)),
        done_(std::move(done)) {}

  absl::Status Apply(Engine& engine, absl::Time now) override {
    return token_.empty() ? ApplyFirst(engine, now) : ApplyLeased(engine, now);
  }

  void Finish(absl::Status status) override {
    if (status.ok()) {
      done_(decision_);
    } else {
      done_(status);
    }
  }

 private:
  absl::Status ApplyFirst(Engine& engine, absl::Time now) {
    // Applied once: the op keeps no copy of the payload.
    ASSIGN_OR_RETURN(FailureOutcome out,
                     engine.scheduler_->FirstFailure(std::move(envelope_), failure_, now));
    decision_ = out.decision;
    if (out.duplicate) {
      if (auto* o = engine.options_.observer) o->OnDuplicateFailure(out.envelope);
      LogEvent(LogLevel::kDebug, "duplicate_failure")
          .Str("service", out.envelope.service)
          .Str("message_id", out.envelope.message_id)
          .Int("attempt", out.envelope.attempt);
      return absl::OkStatus();
    }
    LogDecision(out.envelope, decision_, failure_);
    if (auto* o = engine.options_.observer) o->OnDecision(out.envelope, failure_, decision_, false);
    return absl::OkStatus();
  }

  absl::Status ApplyLeased(Engine& engine, absl::Time now) {
    ASSIGN_OR_RETURN(FailureOutcome out,
                     engine.scheduler_->LeasedFailure(token_, envelope_.service,
                                                     envelope_.message_id, failure_, now));
    decision_ = out.decision;
    LogDecision(out.envelope, decision_, failure_);
    if (auto* o = engine.options_.observer) o->OnDecision(out.envelope, failure_, decision_, false);
    return absl::OkStatus();
  }

  Envelope envelope_;
  Failure failure_;
  std::string token_;
  DecisionCallback done_;
  Decision decision_;
};

class Engine::LeaseOp final : public Engine::Op, public LeaseWaiter {
 public:
  LeaseOp(LeaseArgs args, LeaseCallback done) : args_(std::move(args)), done_(std::move(done)) {}

  absl::Status Apply(Engine& engine, absl::Time now) override {
    parked = false;
    items_.clear();
    if (caller_gone()) return absl::CancelledError("the caller cancelled the lease");
    ASSIGN_OR_RETURN(LeaseGrant grant,
                     engine.scheduler_->Lease(args_.service, args_.max_messages,
                                             args_.visibility_timeout, now));
    items_ = std::move(grant.items);
    if (items_.empty()) {
      parked = args_.wait_until > now;
      return absl::OkStatus();
    }
    for (size_t i = 0; i < items_.size(); ++i) {
      const LeasedItem& item = items_[i];
      if (auto* o = engine.options_.observer) o->OnLeased(item.envelope, grant.lateness[i]);
      LogEvent(LogLevel::kDebug, "lease_granted")
          .Str("service", item.envelope.service)
          .Str("message_id", item.envelope.message_id)
          .Str("trace_id", item.envelope.trace_id)
          .Int("attempt", item.envelope.attempt);
    }
    return absl::OkStatus();
  }

  void Finish(absl::Status status) override {
    if (status.ok()) {
      done_(std::move(items_));
    } else {
      done_(status);
    }
  }

  // Answers a parked long-poll with an empty list.
  void FinishEmpty() { done_(std::vector<LeasedItem>()); }
  bool caller_gone() const override { return args_.cancelled && args_.cancelled(); }
  absl::Time wait_until() const override { return args_.wait_until; }
  const std::string& service() const override { return args_.service; }

 private:
  LeaseArgs args_;
  LeaseCallback done_;
  std::vector<LeasedItem> items_;
};

class Engine::ReportSuccessOp final : public Engine::Op {
 public:
  ReportSuccessOp(std::string service, std::string token, DoneCallback done)
      : service_(std::move(service)), token_(std::move(token)), done_(std::move(done)) {}

  absl::Status Apply(Engine& engine, absl::Time now) override {
    ASSIGN_OR_RETURN(const Envelope e, engine.scheduler_->Succeed(service_, token_, now));
    if (auto* o = engine.options_.observer) o->OnRetrySucceeded(e, e.attempt + 1);
    // Debug: one line per request is too much for the hot path at info.
    LogEvent(LogLevel::kDebug, "retry_succeeded")
        .Str("service", e.service)
        .Str("message_id", e.message_id)
        .Str("trace_id", e.trace_id)
        .Int("attempt", e.attempt + 1);
    return absl::OkStatus();
  }

  void Finish(absl::Status status) override { done_(status); }

 private:
  std::string service_;
  std::string token_;
  DoneCallback done_;
};

class Engine::ExtendLeaseOp final : public Engine::Op {
 public:
  ExtendLeaseOp(std::string token, absl::Duration visibility, ServiceCheck may_act_for,
                TimeCallback done)
      : token_(std::move(token)),
        visibility_(visibility),
        may_act_for_(std::move(may_act_for)),
        done_(std::move(done)) {}

  absl::Status Apply(Engine& engine, absl::Time now) override {
    ASSIGN_OR_RETURN(expires_, engine.scheduler_->Extend(token_, visibility_, may_act_for_, now));
    return absl::OkStatus();
  }

  void Finish(absl::Status status) override {
    if (status.ok()) {
      done_(expires_);
    } else {
      done_(status);
    }
  }

 private:
  std::string token_;
  absl::Duration visibility_;
  ServiceCheck may_act_for_;
  TimeCallback done_;
  absl::Time expires_;
};

// An operation defined outside the engine (see RunInTransaction).
class Engine::FunctionOp final : public Engine::Op {
 public:
  FunctionOp(TxnFunction apply, DoneCallback done)
      : apply_(std::move(apply)), done_(std::move(done)) {}
  absl::Status Apply(Engine& engine, absl::Time now) override {
    EngineTxn txn(engine, now);
    return apply_(txn);
  }
  void Finish(absl::Status status) override { done_(std::move(status)); }

 private:
  TxnFunction apply_;
  DoneCallback done_;
};

Store& EngineTxn::store() const { return *engine_.store_; }

void EngineTxn::Requeued(const Envelope& e) { engine_.scheduler_->Requeued(e); }

void EngineTxn::DeadLettersRemoved(const std::string& service, int64_t n) {
  engine_.scheduler_->DeadLettersRemoved(service, n);
}

void Engine::RunInTransaction(TxnFunction apply, DoneCallback done) {
  // Operator and background work is never refused for load: it is small, and a purge is how
  // an operator makes room.
  Submit(std::make_unique<FunctionOp>(std::move(apply), std::move(done)), /*limited=*/false);
}

Engine::Engine(Store* store, const PolicySet* policies, const Clock* clock, Random* rng,
               EngineOptions options)
    : store_(store),
      policies_(policies),
      clock_(clock),
      rng_(rng),
      options_(options),
      scheduler_(NewScheduler(clock->Now())),
      guards_(scheduler_->guards()) {}

std::unique_ptr<Scheduler> Engine::NewScheduler(absl::Time started_at) {
  SchedulerContext context;
  context.store = store_;
  context.policies = policies_;
  context.rng = rng_;
  context.started_at = started_at;
  context.max_lease_response_bytes = options_.max_lease_response_bytes;
  context.circuit_changed = [this](const std::string& service) { LogCircuit(service); };
  context.wake_writer = [this] { WakeWriter(); };
  if (options_.make_scheduler) return options_.make_scheduler(context);
  return std::make_unique<LocalScheduler>(context);
}

absl::StatusOr<std::unique_ptr<Engine>> Engine::Start(Store* store, const PolicySet* policies,
                                                      const Clock* clock, Random* rng,
                                                      EngineOptions options) {
  std::unique_ptr<Engine> engine(new Engine(store, policies, clock, rng, options));
  RETURN_IF_ERROR(engine->Reload());
  CommitPipelineOptions pipeline;
  pipeline.checkpoint_interval = options.checkpoint_interval;
  pipeline.log_restart_pages = options.log_restart_pages;
  pipeline.observer = options.observer;
  engine->pipeline_ = std::make_unique<CommitPipeline>(store, clock, pipeline,
                                                       [e = engine.get()] { e->WakeWriter(); });
  engine->writer_ = std::thread([e = engine.get()] { e->WriterLoop(); });
  return engine;
}

Engine::~Engine() {
  Stop();
  scheduler_.reset();
}

absl::Status Engine::Reload() {
  // The next batch looks for succeeded envelopes to forget: the store may hold expired ones
  // (the server was down, or a batch that deleted some was not committed).
  next_housekeeping_ = clock_->Now();
  const absl::Time now = clock_->Now();
  RETURN_IF_ERROR(scheduler_->Restore(*store_, now));
  guards_.Publish(now);  // GetCircuit answers the restored circuits from the start.
  PublishStats();
  return absl::OkStatus();
}

void Engine::ReportFailure(Envelope envelope, Failure failure, std::string lease_token,
                           DecisionCallback done) {
  Submit(std::make_unique<ReportFailureOp>(std::move(envelope), std::move(failure),
                                           std::move(lease_token), std::move(done)));
}

void Engine::Lease(LeaseArgs args, LeaseCallback done) {
  Submit(std::make_unique<LeaseOp>(std::move(args), std::move(done)));
}

void Engine::ReportSuccess(std::string service, std::string lease_token, DoneCallback done) {
  Submit(std::make_unique<ReportSuccessOp>(std::move(service), std::move(lease_token),
                                           std::move(done)));
}

void Engine::ExtendLease(std::string lease_token, absl::Duration visibility_timeout,
                         ServiceCheck may_act_for, TimeCallback done) {
  Submit(std::make_unique<ExtendLeaseOp>(std::move(lease_token), visibility_timeout,
                                         std::move(may_act_for), std::move(done)));
}

void Engine::Submit(std::unique_ptr<Op> op, bool limited) {
  if (limited) {
    const int64_t before = pending_requests_.fetch_add(1, std::memory_order_relaxed);
    op->pending_count = &pending_requests_;
    if (before >= options_.max_pending_requests) {
      op->Finish(absl::ResourceExhaustedError(absl::StrCat(
          "retryd is overloaded: ", before, " requests are waiting for the store (limit ",
          options_.max_pending_requests, ", limits.max_pending_requests); retry with backoff")));
      return;
    }
  }
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      queue_.push_back(std::move(op));
      return;
    }
  }
  op->Finish(absl::UnavailableError("retryd is shutting down; retry against a live server"));
}

absl::flat_hash_map<std::string, ServiceStats> Engine::Stats() const {
  absl::MutexLock lock(&stats_mu_);
  return stats_;
}

void Engine::StopParking() {
  absl::MutexLock lock(&mu_);
  stop_parking_ = true;
  kick_ = true;
}

void Engine::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    stop_parking_ = true;
    stopping_ = true;
    stopped_ = true;
  }
  if (writer_.joinable()) writer_.join();
  if (pipeline_ != nullptr) pipeline_->Stop();
}

void Engine::WakeWriter() {
  absl::MutexLock lock(&mu_);
  kick_ = true;
}

// A committed batch's answers, given by the commit pipeline's syncer once it is durable.
class Engine::BatchAnswers final : public CommitPipeline::Answers {
 public:
  explicit BatchAnswers(std::vector<Engine::Answer> answers) : answers_(std::move(answers)) {}
  size_t size() const override { return answers_.size(); }
  void Finish() override {
    for (Engine::Answer& a : answers_) {
      if (a.empty_lease) {
        static_cast<LeaseOp*>(a.op.get())->FinishEmpty();
      } else {
        a.op->Finish(std::move(a.status));
      }
    }
  }

 private:
  std::vector<Engine::Answer> answers_;
};

void Engine::AnswerWhenDurable(std::vector<Answer> answers) {
  if (answers.empty()) return;
  pipeline_->WhenDurable(std::make_unique<BatchAnswers>(std::move(answers)));
}

void Engine::WriterLoop() {
  NameThisThread("retryd-writer");
  absl::Time wake = absl::InfinitePast();
  while (true) {
    std::vector<std::unique_ptr<Op>> ops;
    bool last = false;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return !queue_.empty() || stopping_ || kick_ || pipeline_->PauseRequested();
      };
      const absl::Duration timeout = wake - clock_->Now();
      if (timeout > absl::ZeroDuration()) {
        mu_.AwaitWithTimeout(absl::Condition(&ready), std::min(timeout, absl::Seconds(1)));
      }
    }
    // Between two batches: the checkpointer may want the log to start over.
    if (pipeline_->PauseRequested()) {
      figures_.pauses++;
      figures_.paused += pipeline_->PauseIfRequested();
    }
    {
      absl::MutexLock lock(&mu_);
      kick_ = false;
      const size_t n = std::min<size_t>(queue_.size(), options_.max_batch);
      ops.reserve(n);
      for (size_t i = 0; i < n; ++i) ops.push_back(std::move(queue_[i]));
      queue_.erase(queue_.begin(), queue_.begin() + n);
      last = stopping_ && queue_.empty();
    }
    RunBatch(std::move(ops));
    if (last) break;
    wake = NextWake(clock_->Now());
  }
}

absl::Time Engine::NextWake(absl::Time now) const {
  return std::min(next_housekeeping_, scheduler_->NextWake(now));
}

void Engine::RunBatch(std::vector<std::unique_ptr<Op>> ops) {
  const absl::Time start = clock_->Now();
  // This process's time until the batch begins; then the scheduler's (BeginBatch).
  absl::Time now = start;
  bool stop_parking;
  {
    absl::MutexLock lock(&mu_);
    stop_parking = stop_parking_;
  }
  const bool housekeeping_due = now >= next_housekeeping_;
  RefuseWritesWhenDiskLow(&ops);
  Batch batch;
  batch.requests = static_cast<int>(ops.size());
  if (!ops.empty() || housekeeping_due || scheduler_->WorkDue(now)) {
    if (!BeginBatch(&ops)) return;
    // From here on, a store failure stops the process (StopOnStoreFailure): the batch may have
    // written some of its rows, SQLite may have rolled it back by itself, and the in-memory
    // schedule no longer matches the disk. Start-up recovery is the one recovery path.
    absl::StatusOr<absl::Time> batch_now = scheduler_->BeginBatch(start);
    if (!batch_now.ok()) StopOnStoreFailure("begin_batch", batch_now.status());
    now = *batch_now;
    ApplyBatch(now, std::move(ops), stop_parking, housekeeping_due, &batch);
    CommitBatch(start, batch.requests);
    scheduler_->EndBatch();
  }
  AnswerBatch(now, stop_parking, std::move(batch));
}

void Engine::RefuseWritesWhenDiskLow(std::vector<std::unique_ptr<Op>>* ops) {
  if (ops->empty() || options_.min_free_bytes <= 0 || !options_.free_bytes) return;
  const absl::StatusOr<int64_t> free = options_.free_bytes();
  if (!free.ok()) {
    LogEvent(LogLevel::kWarn, "free_space_unknown").Str("error", free.status().ToString());
    return;
  }
  if (*free >= options_.min_free_bytes) {
    if (disk_low_) {
      disk_low_ = false;
      LogEvent(LogLevel::kInfo, "disk_ok")
          .Str("dir", options_.free_bytes_where)
          .Int("free_bytes", *free)
          .Int("min_free_bytes", options_.min_free_bytes);
    }
    return;
  }
  if (!disk_low_) {
    disk_low_ = true;
    LogEvent(LogLevel::kWarn, "disk_low")
        .Str("dir", options_.free_bytes_where)
        .Int("free_bytes", *free)
        .Int("min_free_bytes", options_.min_free_bytes);
  }
  const absl::Status refused = absl::ResourceExhaustedError(absl::StrCat(
      "disk full: ", *free, " bytes free on ", options_.free_bytes_where,
      ", below the reserve of ", options_.min_free_bytes,
      " (limits.min_free_bytes); nothing was changed; retry with backoff once space is freed"));
  std::vector<std::unique_ptr<Op>> kept;
  std::vector<Answer> answers;
  for (auto& op : *ops) {
    if (op->Writes()) {
      answers.push_back(Answer{std::move(op), refused});
    } else {
      kept.push_back(std::move(op));
    }
  }
  *ops = std::move(kept);
  AnswerWhenDurable(std::move(answers));
}

bool Engine::BeginBatch(std::vector<std::unique_ptr<Op>>* ops) {
  // Before BEGIN nothing was written and nothing in memory changed, so a failure here can be
  // answered (the batch's requests may be retried) without stopping.
  const absl::Status begin = store_->Begin();
  if (begin.ok()) return true;
  // Another replica took the store over: nothing may be answered or written from this
  // process's in-memory state any more.
  if (IsFenced(begin)) StopOnStoreFailure("begin", begin);
  LogEvent(LogLevel::kError, "store_begin_failed").Str("error", std::string(begin.message()));
  const absl::Status answer = absl::UnavailableError(absl::StrCat(
      "the store could not start a transaction; nothing was changed: ", begin.message()));
  std::vector<Answer> answers;
  for (auto& op : *ops) answers.push_back(Answer{std::move(op), answer});
  AnswerWhenDurable(std::move(answers));
  return false;
}

void Engine::ApplyBatch(absl::Time now, std::vector<std::unique_ptr<Op>> ops, bool stop_parking,
                        bool housekeeping_due, Batch* batch) {
  int changed = 0;
  ExpireLeases(now, &changed);
  for (auto& op : ops) {
    const absl::Status s = ApplyOp(*op, now);
    if (!s.ok()) {
      batch->failed.emplace_back(std::move(op), s);
    } else if (op->parked && !stop_parking) {
      scheduler_->Park(std::unique_ptr<LeaseOp>(static_cast<LeaseOp*>(op.release())));
    } else {
      batch->committed.push_back(std::move(op));
    }
  }
  AdvanceCircuits(now);
  ServeWaiters(now, &batch->committed);
  if (housekeeping_due) {
    const absl::Status forgot = ForgetSucceeded(now, batch->requests);
    if (!forgot.ok()) StopOnStoreFailure("housekeeping", forgot);
  }
  // The guards the batch changed go into its transaction: one row per service.
  const absl::Status saved = scheduler_->SaveGuards(now);
  if (!saved.ok()) StopOnStoreFailure("save_guards", saved);
}

void Engine::CommitBatch(absl::Time start, int requests) {
  const absl::Time applied = clock_->Now();
  const absl::Status commit = store_->Commit();
  const absl::Time commit_done = clock_->Now();
  if (commit.ok()) pipeline_->Committed();
  if (auto* o = options_.observer) o->OnCommit(commit_done - applied, requests, commit.ok());
  CountBatch(start, applied, commit_done, requests);
  // A failed COMMIT may have left part of the batch in the log (SQLite rolls back on its own
  // after some errors and not others): nothing of it may be answered, and the schedule in
  // memory is the batch's, not the disk's.
  if (!commit.ok()) StopOnStoreFailure("commit", commit);
}

void Engine::CountBatch(absl::Time start, absl::Time applied, absl::Time committed,
                        int requests) {
  figures_.batches++;
  figures_.ops += requests;
  figures_.apply += applied - start;
  figures_.commit += committed - applied;
  if (figures_.since == absl::InfinitePast()) figures_.since = start;
  if (committed - figures_.since < absl::Seconds(10)) return;
  LogEvent(LogLevel::kInfo, "writer_stats")
      .Int("batches", figures_.batches)
      .Double("ops_per_batch", static_cast<double>(figures_.ops) / figures_.batches)
      .Double("apply_ms_per_batch", absl::ToDoubleMilliseconds(figures_.apply) / figures_.batches)
      .Double("commit_ms_per_batch", absl::ToDoubleMilliseconds(figures_.commit) / figures_.batches)
      .Int("forgotten", figures_.forgotten)
      .Int("checkpoint_pauses", figures_.pauses)
      .Double("checkpoint_paused_ms", absl::ToDoubleMilliseconds(figures_.paused));
  figures_ = WriterFigures();
}

void Engine::AnswerBatch(absl::Time now, bool stop_parking, Batch batch) {
  // Publish before answering: a caller that was told OK and then asks for the counts
  // (ListServices, GetCircuit, a metrics scrape) must see its change.
  guards_.Publish(now);
  PublishStats();
  std::vector<Answer> answers;
  answers.reserve(batch.committed.size() + batch.failed.size());
  for (auto& op : batch.committed) answers.push_back(Answer{std::move(op), absl::OkStatus()});
  for (auto& [op, status] : batch.failed) {
    answers.push_back(Answer{std::move(op), std::move(status)});
  }
  // Long-polls whose wait is over (or all of them when shutting down) get an empty answer.
  for (std::unique_ptr<LeaseWaiter>& waiter : scheduler_->TakeEndedWaiters(now, stop_parking)) {
    answers.push_back(Answer{std::unique_ptr<Op>(static_cast<LeaseOp*>(waiter.release())),
                             absl::OkStatus(), /*empty_lease=*/true});
  }
  PublishStats();
  AnswerWhenDurable(std::move(answers));
}

absl::Status Engine::ApplyOp(Op& op, absl::Time now) {
  const absl::Status begin = store_->BeginOp();
  if (!begin.ok()) StopOnStoreFailure("begin_op", begin);
  guards_.BeginOp();
  const absl::Status s = op.Apply(*this, now);
  if (IsStoreFailure(s)) StopOnStoreFailure("apply", s);
  const absl::Status end = store_->EndOp(s.ok());
  if (!end.ok()) StopOnStoreFailure("end_op", end);
  guards_.EndOp(s.ok());  // An op that failed leaves the guards as if it never ran.
  return s;
}

// Forgetting succeeded envelopes. An envelope that succeeded is kept for the dedupe window, so
// that a late duplicate of its failure is answered `duplicate = true`, and deleted afterwards, its
// key with it. Deleting must keep pace with the highest success rate the writer can take, or the
// tables and indexes grow for as long as the server runs; and it must not stall the writer, which
// every request waits for. So it runs inside ordinary batches, a slice each:
//   - A pass deletes up to max(forget_min_slice, forget_slice_per_op × requests in the batch) of
//     the envelopes that completed before `now - dedupe_window`. A batch holds at most one
//     success per request, so passes in consecutive batches under a steady load delete at least
//     as fast as envelopes succeed, and a backlog (after a restart, or a burst of successes
//     leaving the window together) shrinks by at least one envelope per request per batch.
//   - A pass that deleted a full slice may have left more: the next batch runs another pass.
//     With nothing queued the writer runs it at once, a slice per transaction, so that a
//     request arriving meanwhile waits for one slice at most, and a backlog left by a busier
//     past drains as fast as the writer can go while it has nothing else to do.
//   - A pass that deleted less than its slice has caught up: the next is due when the oldest
//     succeeded envelope left (with none left: one succeeding now) leaves the window, but no
//     earlier than forget_granularity from now, so that envelopes expiring batch after batch are
//     deleted in slices rather than a few per pass, and no later than housekeeping_interval.
//     An idle server wakes up for it on its own (NextWake).
// In the store each pass costs the rows it deletes plus an index seek per service, and the
// envelopes still inside the window are never read (SqliteStore::DeleteSucceededBefore).
absl::Status Engine::ForgetSucceeded(absl::Time now, int ops) {
  const int limit = std::max(options_.forget_min_slice, options_.forget_slice_per_op * ops);
  absl::StatusOr<int64_t> deleted_or =
      store_->DeleteSucceededBefore(now - options_.dedupe_window, limit);
  if (!deleted_or.ok()) {
    return absl::Status(deleted_or.status().code(),
                        absl::StrCat("forgetting succeeded envelopes: ",
                                     deleted_or.status().message()));
  }
  const int64_t deleted = *deleted_or;
  figures_.forgotten += deleted;
  if (deleted >= limit) {
    next_housekeeping_ = now;
    return absl::OkStatus();
  }
  // Caught up: every succeeded envelope left completed at or after the cutoff, and one that
  // succeeds from now on completes no earlier than now.
  absl::StatusOr<absl::Time> oldest = store_->OldestSucceededAt();
  if (!oldest.ok()) {
    return absl::Status(oldest.status().code(),
                        absl::StrCat("finding the oldest succeeded envelope: ",
                                     oldest.status().message()));
  }
  next_housekeeping_ = std::min(
      std::max(std::min(*oldest, now) + options_.dedupe_window, now + options_.forget_granularity),
      now + options_.housekeeping_interval);
  return absl::OkStatus();
}

void Engine::ServeWaiters(absl::Time now, std::vector<std::unique_ptr<Op>>* done) {
  scheduler_->ServeWaiters(now, [&](std::unique_ptr<LeaseWaiter> w)
                                    -> std::unique_ptr<LeaseWaiter> {
    std::unique_ptr<LeaseOp> waiter(static_cast<LeaseOp*>(w.release()));
    if (waiter->caller_gone()) {
      waiter->Finish(absl::CancelledError("the caller cancelled the lease"));
      return nullptr;
    }
    const absl::Status s = ApplyOp(*waiter, now);
    if (!s.ok()) {
      waiter->Finish(s);
    } else if (waiter->parked) {
      return waiter;  // Only stale entries were due; wait on.
    } else {
      done->push_back(std::move(waiter));
    }
    return nullptr;
  });
}

void Engine::ExpireLeases(absl::Time now, int* changed) {
  while (true) {
    const absl::StatusOr<std::optional<int64_t>> id =
        scheduler_->NextExpired(now, options_.max_expirations_per_batch);
    if (!id.ok()) StopOnStoreFailure("lease_expiry", id.status());
    if (!id->has_value()) break;
    // Each expiry in its own savepoint, like an op; every call here is a store call, so any
    // error is a store failure.
    const absl::Status begin = store_->BeginOp();
    if (!begin.ok()) StopOnStoreFailure("lease_expiry", begin);
    guards_.BeginOp();
    absl::StatusOr<std::optional<FailureOutcome>> out = scheduler_->ExpireLease(**id, now);
    if (!out.ok()) StopOnStoreFailure("lease_expiry", out.status());
    const absl::Status end = store_->EndOp(/*keep=*/true);
    if (!end.ok()) StopOnStoreFailure("lease_expiry", end);
    guards_.EndOp(/*keep=*/true);
    if (!out->has_value()) continue;  // The row was no longer leased: the lease just ended.
    const FailureOutcome& o = **out;
    ++*changed;
    LogDecision(o.envelope, o.decision, o.failure);
    if (auto* obs = options_.observer) obs->OnDecision(o.envelope, o.failure, o.decision, true);
    LogEvent(LogLevel::kWarn, "lease_expired")
        .Str("service", o.envelope.service)
        .Str("message_id", o.envelope.message_id)
        .Str("trace_id", o.envelope.trace_id)
        .Int("attempt", o.envelope.attempt)
        .Str("error_code", "LEASE_EXPIRED")
        .Str("decision", o.decision.kind == DecisionKind::kScheduled ? "scheduled" : "dead_lettered");
  }
}

namespace {

void LogDecision(const Envelope& e, const Decision& d, const Failure& failure) {
  if (d.kind == DecisionKind::kScheduled) {
    LogEvent(LogLevel::kDebug, "retry_scheduled")
        .Str("service", e.service)
        .Str("message_id", e.message_id)
        .Str("trace_id", e.trace_id)
        .Int("attempt", e.attempt)
        .Str("error_code", failure.error_code)
        .Str("decision", "scheduled")
        .Double("delay_seconds", absl::ToDoubleSeconds(d.delay));
    return;
  }
  LogEvent(LogLevel::kWarn, "dead_lettered")
      .Str("service", e.service)
      .Str("message_id", e.message_id)
      .Str("trace_id", e.trace_id)
      .Int("attempt", e.attempt)
      .Str("error_code", failure.error_code)
      .Str("error_class", std::string(ErrorClassName(d.error_class)))
      .Str("decision", "dead_lettered")
      .Str("reason", std::string(DeadLetterReasonName(d.reason)));
}

}  // namespace

void Engine::PublishStats() {
  std::vector<std::pair<std::string, ServiceStats>> changed = scheduler_->TakeChangedStats();
  if (changed.empty()) return;
  absl::MutexLock lock(&stats_mu_);
  for (auto& [name, stats] : changed) stats_[name] = stats;
}

}  // namespace retryd
