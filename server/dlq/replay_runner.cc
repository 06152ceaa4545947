#include "server/dlq/replay_runner.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "server/convert/envelope_convert.h"
#include "server/dlq/sync_txn.h"
#include "server/rpc/filter_convert.h"
#include "server/util/log.h"
#include "server/util/status_macros.h"
#include "server/util/thread_name.h"
#include "server/util/time_conversion.h"

namespace retryd {
namespace {

// Most dead letters one batch looks at (re-scheduled or skipped), so a batch stays short.
constexpr int kMaxExaminedPerBatch = 2000;
// Most dead letters one batch re-schedules.
constexpr int64_t kMaxPerBatch = 1000;
constexpr int kSampleSize = 100;
constexpr absl::Duration kCanaryCheckInterval = absl::Milliseconds(200);

std::string ReplayName(int64_t id) { return absl::StrCat("replays/", id); }

bool Terminal(int state) {
  return state == v1::REPLAY_SUCCEEDED || state == v1::REPLAY_FAILED ||
         state == v1::REPLAY_CANCELLED;
}

absl::StatusOr<v1::Replay> Decode(const ReplayRow& row) {
  v1::Replay r;
  if (!r.ParseFromString(row.body)) {
    return absl::DataLossError(absl::StrCat("replay ", row.id, ": record does not parse"));
  }
  r.set_name(ReplayName(row.id));
  r.set_state(static_cast<v1::ReplayState>(row.state));
  return r;
}

// Writes `r` (state included) and the progress fields of `row` back.
absl::Status Save(Store& store, ReplayRow& row, const v1::Replay& r) {
  row.state = r.state();
  row.body = r.SerializeAsString();
  return store.UpdateReplay(row);
}

// The dead letters a replay considers: its filter, and only those dead-lettered before it was
// created (an envelope that fails again after being replayed is not picked up a second time).
absl::StatusOr<EnvelopeFilter> ReplayFilter(const v1::Replay& r) {
  ASSIGN_OR_RETURN(EnvelopeFilter f, FilterFromProto(r.filter(), "filter"));
  f.before = std::min(f.before, TimeFromProto(r.create_time()));
  return f;
}

std::vector<int64_t> ParseIds(absl::string_view csv) {
  std::vector<int64_t> ids;
  for (absl::string_view part : absl::StrSplit(csv, ',', absl::SkipEmpty())) {
    int64_t id = 0;
    if (absl::SimpleAtoi(part, &id)) ids.push_back(id);
  }
  return ids;
}

// The fields in which a StartReplay request (`requested`, as the replay it would start) differs
// from `existing`, recorded earlier under the same request_id; empty when it is the same request.
std::string RequestDifferences(const v1::Replay& existing, const v1::Replay& requested) {
  std::vector<std::string> fields;
  if (existing.filter().SerializeAsString() != requested.filter().SerializeAsString()) {
    fields.push_back("filter");
  }
  // A replay recorded before the requested pace was kept has only the pace applied.
  const bool same_pace = existing.has_requested_max_per_second()
                             ? existing.requested_max_per_second() ==
                                   requested.requested_max_per_second()
                             : existing.max_per_second() == requested.max_per_second();
  if (!same_pace) fields.push_back("max_per_second");
  if (existing.limit() != requested.limit()) fields.push_back("limit");
  if (existing.canary_count() != requested.canary_count()) fields.push_back("canary_count");
  if (existing.reset_attempts() != requested.reset_attempts()) fields.push_back("reset_attempts");
  if (existing.note() != requested.note()) fields.push_back("note");
  return absl::StrJoin(fields, ", ");
}

bool Blocked(const Policy& policy, const std::string& schema_version) {
  const auto& blocked = policy.replay.blocked_schema_versions;
  return std::find(blocked.begin(), blocked.end(), schema_version) != blocked.end();
}

}  // namespace

// Completes `audit` for an operator mutation of replay `r` that affected `affected` envelopes and
// appends it in the transaction of the mutation, so the log has exactly the changes made.
absl::Status AppendReplayAudit(EngineTxn& txn, const std::string& method, const v1::Replay& r,
                               int64_t affected, AuditRecord* audit) {
  audit->time = txn.now();
  audit->method = method;
  audit->filter = r.filter().SerializeAsString();
  audit->affected_count = affected;
  audit->target = r.name();
  audit->result_code = "OK";
  return txn.store().AppendAudit(audit);
}

// The completion of a replay mutation's transaction: its error, or the replay it left in
// `result` (after `on_ok` saw it, e.g. to log).
template <typename OnOk>
auto AnswerReplay(std::shared_ptr<v1::Replay> result, ReplayRunner::ReplayCallback done,
                  OnOk on_ok) {
  return [result = std::move(result), done = std::move(done), on_ok](absl::Status s) {
    if (!s.ok()) {
      done(s);
      return;
    }
    on_ok(*result);
    done(*result);
  };
}

absl::StatusOr<int64_t> ParseReplayName(absl::string_view field, absl::string_view name) {
  int64_t id = 0;
  if (!absl::ConsumePrefix(&name, "replays/") || !absl::SimpleAtoi(name, &id) || id <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": must be a replay name like replays/7"));
  }
  return id;
}

ReplayRunner::ReplayRunner(Engine* engine, Store* store, const PolicySet* policies,
                           const Clock* clock, DlqCounters* counters, JobClaims* claims)
    : engine_(engine),
      store_(store),
      policies_(policies),
      clock_(clock),
      counters_(counters),
      claims_(claims != nullptr ? claims : &sole_claims_) {}

ReplayRunner::~ReplayRunner() { Stop(); }

void ReplayRunner::Start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { Loop(); });
}

void ReplayRunner::JoinThread() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void ReplayRunner::Stop() {
  JoinThread();
  // Handed back, so that another replica resumes them now rather than after the takeover age.
  for (const auto& [id, held] : held_) {
    absl::Status released = claims_->Release(kReplayJob, absl::StrCat(id), held.epoch);
    if (!released.ok()) {
      // Not fatal: the claim goes stale and is taken over after the takeover age.
      LogEvent(LogLevel::kWarn, "replay_release_failed")
          .Str("replay", ReplayName(id))
          .Str("error", released.ToString());
    }
  }
  held_.clear();
}

void ReplayRunner::StopWithoutReleaseForTest() {
  JoinThread();
  held_.clear();
}

double ReplayRunner::EffectiveRate(const v1::StartReplayRequest& req) const {
  double cap = 0;
  if (!req.filter().service().empty()) {
    cap = policies_->Resolve(req.filter().service()).replay.max_per_second;
  } else {
    // Every service may be reached: the strictest policy caps the whole replay.
    cap = policies_->Resolve("default").replay.max_per_second;
    for (const Policy& p : policies_->policies()) cap = std::min(cap, p.replay.max_per_second);
  }
  if (req.max_per_second() <= 0) return cap;
  return std::min(req.max_per_second(), cap);
}

void ReplayRunner::StartReplay(const v1::StartReplayRequest& req, AuditRecord audit,
                               ReplayCallback done) {
  // Count and sample on the read side first (a full count must not hold the writer); the
  // transaction below only records the replay.
  v1::Replay r;
  *r.mutable_filter() = req.filter();
  r.set_max_per_second(EffectiveRate(req));
  r.set_requested_max_per_second(req.max_per_second());
  r.set_limit(req.limit());
  r.set_dry_run(req.dry_run());
  r.set_canary_count(req.canary_count());
  r.set_reset_attempts(req.has_reset_attempts() ? req.reset_attempts() : true);
  r.set_note(req.note());
  r.set_created_by(audit.identity);
  r.set_request_id(req.request_id());
  const absl::Time now = clock_->Now();
  TimeToProto(now, r.mutable_create_time());
  absl::StatusOr<EnvelopeFilter> filter = ReplayFilter(r);
  absl::StatusOr<int64_t> matched =
      filter.ok() ? store_->CountDeadLetters(*filter) : absl::StatusOr<int64_t>(filter.status());
  if (!matched.ok()) {
    done(matched.status());
    return;
  }
  r.set_matched(*matched);
  if (req.dry_run()) {
    ListQuery q;
    q.filter = *filter;
    q.limit = kSampleSize;
    absl::StatusOr<ListPage> page = store_->List(q);
    if (!page.ok()) {
      done(page.status());
      return;
    }
    for (const Envelope& e : page->envelopes) EnvelopeToProto(e, false, r.add_sample());
    r.set_state(v1::REPLAY_SUCCEEDED);
    TimeToProto(now, r.mutable_start_time());
    TimeToProto(now, r.mutable_end_time());
  } else {
    r.set_state(v1::REPLAY_PENDING);
  }
  auto result = std::make_shared<v1::Replay>();
  engine_->RunInTransaction(
      [this, r, audit, result](EngineTxn& txn) mutable -> absl::Status {
        // A dry run and a real replay are different requests even with the same request_id
        // (e.g. a CLI that counts first): each has its own idempotency key.
        const std::string key =
            r.request_id().empty() ? "" : absl::StrCat(r.dry_run() ? "dry-run:" : "", r.request_id());
        if (!key.empty()) {
          ASSIGN_OR_RETURN(std::optional<ReplayRow> existing,
                           txn.store().FindReplayByRequestId(key));
          if (existing.has_value()) {
            ASSIGN_OR_RETURN(v1::Replay earlier, Decode(*existing));
            const std::string differences = RequestDifferences(earlier, r);
            if (!differences.empty()) {
              return absl::AlreadyExistsError(absl::StrCat(
                  "request_id: \"", r.request_id(), "\" was already used by another StartReplay "
                  "request (", earlier.name(), "; its ", differences, " differ); send the same "
                  "request again for that replay, or use a new request_id (REQUEST_ID_REUSED)"));
            }
            *result = std::move(earlier);
            return absl::OkStatus();  // A retried call: the same replay, nothing new.
          }
        }
        ReplayRow row;
        row.request_id = key;
        row.state = r.state();
        row.created_at = txn.now();
        row.phase = static_cast<int>(r.canary_count() > 0 ? ReplayPhase::kCanary
                                                          : ReplayPhase::kMain);
        row.body = r.SerializeAsString();
        RETURN_IF_ERROR(txn.store().InsertReplay(&row));
        r.set_name(ReplayName(row.id));
        audit.dry_run = r.dry_run();
        audit.request_id = r.request_id();
        RETURN_IF_ERROR(AppendReplayAudit(txn, "StartReplay", r, r.matched(), &audit));
        *result = r;
        return absl::OkStatus();
      },
      AnswerReplay(result, std::move(done), [](const v1::Replay& started) {
        LogEvent(LogLevel::kInfo, "replay_started")
            .Str("replay", started.name())
            .Int("matched", started.matched())
            .Double("max_per_second", started.max_per_second())
            .Str("dry_run", started.dry_run() ? "true" : "false");
      }));
}

void ReplayRunner::CancelReplay(int64_t id, AuditRecord audit, ReplayCallback done) {
  auto result = std::make_shared<v1::Replay>();
  engine_->RunInTransaction(
      [id, audit, result](EngineTxn& txn) mutable -> absl::Status {
        ASSIGN_OR_RETURN(std::optional<ReplayRow> row, txn.store().FindReplayInTxn(id));
        if (!row.has_value()) {
          return absl::NotFoundError(absl::StrCat("name: replay ", ReplayName(id),
                                                  " not found (REPLAY_NOT_FOUND)"));
        }
        ASSIGN_OR_RETURN(v1::Replay r, Decode(*row));
        if (r.state() == v1::REPLAY_CANCELLED) {
          *result = r;
          return absl::OkStatus();
        }
        if (Terminal(r.state())) {
          return absl::FailedPreconditionError(absl::StrCat(
              "name: replay ", r.name(), " already ended (", v1::ReplayState_Name(r.state()),
              ")"));
        }
        r.set_state(v1::REPLAY_CANCELLED);
        TimeToProto(txn.now(), r.mutable_end_time());
        RETURN_IF_ERROR(Save(txn.store(), *row, r));
        RETURN_IF_ERROR(AppendReplayAudit(txn, "CancelReplay", r, r.replayed(), &audit));
        *result = r;
        return absl::OkStatus();
      },
      AnswerReplay(result, std::move(done), [](const v1::Replay&) {}));
}

absl::StatusOr<v1::Replay> ReplayRunner::GetReplay(int64_t id) {
  ASSIGN_OR_RETURN(std::optional<ReplayRow> row, store_->GetReplay(id));
  if (!row.has_value()) {
    return absl::NotFoundError(
        absl::StrCat("name: replay ", ReplayName(id), " not found (REPLAY_NOT_FOUND)"));
  }
  return Decode(*row);
}

absl::StatusOr<std::vector<v1::Replay>> ReplayRunner::ListReplays(int64_t before_id, int limit) {
  ASSIGN_OR_RETURN(std::vector<ReplayRow> rows, store_->ListReplays(before_id, limit));
  std::vector<v1::Replay> out;
  for (const ReplayRow& row : rows) {
    ASSIGN_OR_RETURN(v1::Replay r, Decode(row));
    r.clear_sample();  // Listings stay small; GetReplay has the sample.
    out.push_back(std::move(r));
  }
  return out;
}

absl::StatusOr<std::vector<ReplayProgress>> ReplayRunner::Progress() const {
  absl::MutexLock lock(&mu_);
  return progress_;
}

void ReplayRunner::Loop() {
  NameThisThread("retryd-replay");
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_; };
      mu_.AwaitWithTimeout(absl::Condition(&stopping), kTick);
      if (stop_) return;
    }
    absl::StatusOr<std::vector<ReplayRow>> active =
        store_->ListReplaysInStates({v1::REPLAY_PENDING, v1::REPLAY_RUNNING});
    if (!active.ok()) {
      LogEvent(LogLevel::kWarn, "replay_scan_failed").Str("error", active.status().ToString());
      absl::MutexLock lock(&mu_);
      progress_ = active.status();
      continue;
    }
    absl::flat_hash_map<int64_t, Pace> still;
    for (const ReplayRow& row : *active) {
      if (pace_.contains(row.id)) still[row.id] = pace_[row.id];
    }
    pace_ = std::move(still);  // Forget replays that ended.
    UpdateClaims(*active, clock_->Now());
    // Each replay's figures come from the replica holding it, so that a fleet reports it once.
    std::vector<ReplayProgress> progress;
    for (const ReplayRow& row : *active) {
      if (!held_.contains(row.id)) continue;
      absl::StatusOr<v1::Replay> r = Decode(row);
      if (r.ok()) {
        progress.push_back(ReplayProgress{r->name(), r->state(), r->matched(), r->replayed(),
                                          r->skipped_blocked_schema()});
      }
    }
    {
      absl::MutexLock lock(&mu_);
      progress_ = std::move(progress);
    }
    for (const ReplayRow& row : *active) {
      auto it = held_.find(row.id);
      if (it != held_.end()) Step(row, it->second.epoch);
    }
  }
}

void ReplayRunner::UpdateClaims(const std::vector<ReplayRow>& active, absl::Time now) {
  absl::flat_hash_map<int64_t, const ReplayRow*> by_id;
  for (const ReplayRow& row : active) by_id[row.id] = &row;
  // Replays that ended (succeeded, failed, cancelled on any replica): their claims go.
  for (auto it = held_.begin(); it != held_.end();) {
    auto current = it++;
    if (by_id.contains(current->first)) continue;
    const int64_t id = current->first;
    absl::Status released = claims_->Release(kReplayJob, absl::StrCat(id), current->second.epoch);
    if (!released.ok()) {
      LogEvent(LogLevel::kWarn, "replay_release_failed")
          .Str("replay", ReplayName(id))
          .Str("error", released.ToString());
    }
    held_.erase(current);
  }
  for (auto it = next_claim_.begin(); it != next_claim_.end();) {
    auto current = it++;
    if (!by_id.contains(current->first)) next_claim_.erase(current);
  }
  for (const ReplayRow& row : active) {
    const std::string job_id = absl::StrCat(row.id);
    auto held = held_.find(row.id);
    if (held != held_.end()) {
      if (now < held->second.next_heartbeat) continue;
      absl::StatusOr<bool> renewed = claims_->Heartbeat(kReplayJob, job_id, held->second.epoch);
      if (!renewed.ok()) {
        // Kept: if the claim went stale meanwhile, the next batch's fence says so.
        LogEvent(LogLevel::kWarn, "replay_heartbeat_failed")
            .Str("replay", ReplayName(row.id))
            .Str("error", renewed.status().ToString());
        held->second.next_heartbeat = now + kClaimPollInterval;
      } else if (!*renewed) {
        Drop(row.id, "heartbeat");
      } else {
        held->second.next_heartbeat = now + claims_->heartbeat_interval();
      }
      continue;
    }
    auto next = next_claim_.find(row.id);
    if (next != next_claim_.end() && now < next->second) continue;
    absl::StatusOr<std::optional<int64_t>> epoch = claims_->Claim(kReplayJob, job_id);
    if (!epoch.ok()) {
      LogEvent(LogLevel::kWarn, "replay_claim_failed")
          .Str("replay", ReplayName(row.id))
          .Str("error", epoch.status().ToString());
    }
    if (!epoch.ok() || !epoch->has_value()) {
      next_claim_[row.id] = now + kClaimPollInterval;  // Held elsewhere: try again later.
      continue;
    }
    next_claim_.erase(row.id);
    held_[row.id] = Held{**epoch, now + claims_->heartbeat_interval()};
    pace_.erase(row.id);  // Paced afresh from now: no burst for what others did before.
    if (**epoch > 1) {
      LogEvent(LogLevel::kInfo, "replay_taken_over")
          .Str("replay", ReplayName(row.id))
          .Int("epoch", **epoch);
    }
  }
}

void ReplayRunner::Drop(int64_t id, absl::string_view why) {
  held_.erase(id);
  pace_.erase(id);
  next_claim_[id] = clock_->Now() + kClaimPollInterval;
  LogEvent(LogLevel::kInfo, "replay_lost_to_another_replica")
      .Str("replay", ReplayName(id))
      .Str("noticed_by", why);
}

void ReplayRunner::Step(const ReplayRow& row, int64_t epoch) {
  const absl::Time now = clock_->Now();
  auto [it, fresh] = pace_.try_emplace(row.id);
  Pace& pace = it->second;
  if (fresh) pace.start = now;  // A new run (or a resumed one after a restart): no burst.
  absl::Status s;
  bool fenced_out = false;
  if (row.phase == static_cast<int>(ReplayPhase::kCanaryWait)) {
    if (now < pace.next_canary_check) return;
    pace.next_canary_check = now + kCanaryCheckInterval;
    s = CheckCanaries(row.id, epoch, &fenced_out);
  } else {
    absl::StatusOr<v1::Replay> r = Decode(row);
    if (!r.ok()) return;
    const double rate = std::max(r->max_per_second(), 0.001);
    const int64_t allowed =
        static_cast<int64_t>(std::floor(rate * absl::ToDoubleSeconds(now - pace.start)));
    int64_t budget = std::min(allowed - pace.done, kMaxPerBatch);
    if (budget < 1 && row.state != v1::REPLAY_PENDING) return;
    budget = std::max<int64_t>(budget, 0);
    absl::StatusOr<int64_t> replayed = RunBatch(row.id, epoch, budget, &fenced_out);
    if (replayed.ok()) {
      // An allowance a batch could not use (skipped rows, the end) is spent, not saved up for a
      // burst later.
      pace.done += budget;
    }
    s = replayed.status();
  }
  if (fenced_out) {
    Drop(row.id, "fence");  // `pace` is gone with it.
    return;
  }
  if (!s.ok()) {
    LogEvent(LogLevel::kWarn, "replay_batch_failed")
        .Str("replay", ReplayName(row.id))
        .Str("error", s.ToString());
  }
}

// A step's fence, first in its transaction: on a lost claim the step writes nothing and its
// error rolls the savepoint back.
static absl::Status FenceStep(JobClaims& claims, int64_t id, int64_t epoch, bool* fenced_out) {
  absl::Status fenced = claims.Fence(kReplayJob, absl::StrCat(id), epoch);
  *fenced_out = absl::IsFailedPrecondition(fenced);
  return fenced;
}

absl::StatusOr<int64_t> ReplayRunner::RunBatch(int64_t id, int64_t epoch, int64_t budget,
                                               bool* fenced_out) {
  int64_t replayed = 0;
  int64_t skipped = 0;
  // (replayed, skipped) per service, for the metrics.
  std::map<std::string, std::pair<int64_t, int64_t>> by_service;
  std::string ended;
  absl::Status s = RunInTransactionAndWait(*engine_, [&](EngineTxn& txn) -> absl::Status {
    replayed = 0;
    skipped = 0;
    by_service.clear();
    ended.clear();
    RETURN_IF_ERROR(FenceStep(*claims_, id, epoch, fenced_out));
    ASSIGN_OR_RETURN(std::optional<ReplayRow> row, txn.store().FindReplayInTxn(id));
    if (!row.has_value()) return absl::OkStatus();
    ASSIGN_OR_RETURN(v1::Replay r, Decode(*row));
    if (Terminal(r.state()) || row->phase == static_cast<int>(ReplayPhase::kCanaryWait)) {
      return absl::OkStatus();  // Cancelled (or waiting) meanwhile.
    }
    if (r.state() == v1::REPLAY_PENDING) {
      r.set_state(v1::REPLAY_RUNNING);
      TimeToProto(txn.now(), r.mutable_start_time());
    }
    const bool canary = row->phase == static_cast<int>(ReplayPhase::kCanary);
    int64_t room = budget;
    if (r.limit() > 0) room = std::min(room, r.limit() - r.replayed());
    if (canary) room = std::min<int64_t>(room, r.canary_count() - r.replayed());
    ASSIGN_OR_RETURN(EnvelopeFilter filter, ReplayFilter(r));
    std::vector<int64_t> canaries = ParseIds(row->canary_ids);
    bool exhausted = false;
    int examined = 0;
    while (room > 0 && examined < kMaxExaminedPerBatch) {
      ListQuery q;
      q.filter = filter;
      q.after_time = row->cursor_time;
      q.after_id = row->cursor_id;
      q.limit = static_cast<int>(std::min<int64_t>(room, 500)) + 20;
      ASSIGN_OR_RETURN(ListPage page, txn.store().ListInTxn(q));
      for (size_t i = 0; i < page.envelopes.size() && room > 0; ++i) {
        Envelope& e = page.envelopes[i];
        ++examined;
        row->cursor_time = page.keys[i].time;
        row->cursor_id = page.keys[i].id;
        const Policy& policy = policies_->Resolve(e.service);
        if (Blocked(policy, e.schema_version)) {
          ++skipped;
          ++by_service[e.service].second;
          continue;
        }
        e.state = EnvelopeState::kScheduled;
        e.next_retry_at = txn.now();
        e.dead_letter_reason = DeadLetterReason::kNone;
        e.dead_lettered_at = absl::InfinitePast();
        e.last_decision = DecisionKind::kScheduled;
        e.max_attempts = policy.max_attempts;
        if (r.reset_attempts()) {
          // A new retry life: attempts from 0, and max_retry_duration from now.
          e.attempt = 0;
          e.retry_life_started_at = txn.now();
        }
        e.updated_at = txn.now();
        RETURN_IF_ERROR(txn.store().Update(e));
        txn.Requeued(e);
        if (canary) canaries.push_back(e.id);
        ++replayed;
        ++by_service[e.service].first;
        --room;
      }
      if (static_cast<int>(page.envelopes.size()) < q.limit &&
          (page.envelopes.empty() || row->cursor_id == page.keys.back().id)) {
        exhausted = true;  // Read to the end of the matching rows.
        break;
      }
    }
    r.set_replayed(r.replayed() + replayed);
    r.set_skipped_blocked_schema(r.skipped_blocked_schema() + skipped);
    if (canary) {
      row->canary_ids = absl::StrJoin(canaries, ",");
      // Every canary is out (or the filter or the limit ran out first): wait for outcomes.
      if (r.replayed() >= r.canary_count() || exhausted ||
          (r.limit() > 0 && r.replayed() >= r.limit())) {
        row->phase = static_cast<int>(ReplayPhase::kCanaryWait);
      }
    } else if (exhausted || (r.limit() > 0 && r.replayed() >= r.limit())) {
      r.set_state(v1::REPLAY_SUCCEEDED);
      TimeToProto(txn.now(), r.mutable_end_time());
      ended = "succeeded";
    }
    return Save(txn.store(), *row, r);
  });
  RETURN_IF_ERROR(s);
  counters_->replayed.fetch_add(replayed, std::memory_order_relaxed);
  counters_->replay_skipped.fetch_add(skipped, std::memory_order_relaxed);
  if (counters_->observer != nullptr) {
    for (const auto& [service, n] : by_service) {
      counters_->observer->OnReplayed(service, n.first, n.second);
    }
  }
  if (!ended.empty()) {
    LogEvent(LogLevel::kInfo, "replay_ended").Str("replay", ReplayName(id)).Str("state", ended);
  }
  return replayed;
}

absl::Status ReplayRunner::CheckCanaries(int64_t id, int64_t epoch, bool* fenced_out) {
  std::string failure;
  RETURN_IF_ERROR(RunInTransactionAndWait(*engine_, [&](EngineTxn& txn) -> absl::Status {
    failure.clear();
    RETURN_IF_ERROR(FenceStep(*claims_, id, epoch, fenced_out));
    ASSIGN_OR_RETURN(std::optional<ReplayRow> row, txn.store().FindReplayInTxn(id));
    if (!row.has_value() || row->phase != static_cast<int>(ReplayPhase::kCanaryWait)) {
      return absl::OkStatus();
    }
    ASSIGN_OR_RETURN(v1::Replay r, Decode(*row));
    if (Terminal(r.state())) return absl::OkStatus();
    const absl::Time started = TimeFromProto(r.create_time());
    int pending = 0;
    int dead_again = 0;
    std::string example;
    for (int64_t envelope_id : ParseIds(row->canary_ids)) {
      ASSIGN_OR_RETURN(std::optional<Envelope> e, txn.store().FindById(envelope_id, false));
      if (!e.has_value()) continue;  // Gone (purged, or succeeded and forgotten): not a failure.
      if (e->state == EnvelopeState::kScheduled || e->state == EnvelopeState::kLeased) {
        ++pending;
      } else if (e->state == EnvelopeState::kDeadLettered && e->dead_lettered_at >= started) {
        ++dead_again;
        if (example.empty()) {
          example = absl::StrCat(e->service, "/", e->message_id, ": ", e->last_error.error_code,
                                 " ", DeadLetterReasonName(e->dead_letter_reason));
        }
      }
    }
    if (dead_again > 0) {
      // One failed canary is enough to stop; the others need not be waited for.
      failure = absl::StrCat("canary failed: ", dead_again, " of ", r.canary_count(),
                             " canary envelopes were dead-lettered again (e.g. ", example, ")");
      r.set_state(v1::REPLAY_FAILED);
      r.set_error(failure);
      TimeToProto(txn.now(), r.mutable_end_time());
    } else if (pending == 0) {
      row->phase = static_cast<int>(ReplayPhase::kMain);
    }
    return Save(txn.store(), *row, r);
  }));
  if (!failure.empty()) {
    LogEvent(LogLevel::kWarn, "replay_failed").Str("replay", ReplayName(id)).Str("error", failure);
  }
  return absl::OkStatus();
}

}  // namespace retryd
