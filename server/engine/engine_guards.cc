// The engine's side of the retry budget and the circuit breaker: the requests that only concern
// them (RecordOutcomes, SetCircuitOverride, the views), and the hooks the other requests call.
// The guards' logic lives in server/core (ServiceGuards, RetryBudget, CircuitBreaker); this file
// only sequences it with the store on the writer thread: an op first has the scheduler refresh
// the guards it reads (Scheduler::RefreshGuards; a failure is a store failure), then changes them
// in memory (undone with the op's savepoint if it is not kept), and Scheduler::SaveGuards stores
// what the batch changed in its transaction, just before the commit.
#include <utility>

#include "server/engine/engine.h"
#include "server/engine/engine_op.h"
#include "server/util/log.h"
#include "server/util/status_macros.h"

namespace retryd {

class Engine::RecordOutcomesOp final : public Engine::Op {
 public:
  RecordOutcomesOp(std::string service, int64_t successes, int64_t failures, DoneCallback done)
      : service_(std::move(service)),
        successes_(successes),
        failures_(failures),
        done_(std::move(done)) {}

  absl::Status Apply(Engine& engine, absl::Time now) override {
    RETURN_IF_ERROR(engine.scheduler_->RefreshGuards(service_, now));
    if (engine.guards_.RecordOutcomes(service_, now, successes_, failures_)) {
      engine.LogCircuit(service_);  // The failures opened the circuit.
    }
    return absl::OkStatus();
  }
  void Finish(absl::Status status) override { done_(status); }

 private:
  std::string service_;
  int64_t successes_;
  int64_t failures_;
  DoneCallback done_;
};

class Engine::SetCircuitOverrideOp final : public Engine::Op {
 public:
  SetCircuitOverrideOp(std::string service, CircuitOverride mode, AuditRecord audit,
                       CircuitCallback done)
      : service_(std::move(service)),
        mode_(mode),
        audit_(std::move(audit)),
        done_(std::move(done)) {}

  absl::Status Apply(Engine& engine, absl::Time now) override {
    RETURN_IF_ERROR(engine.scheduler_->RefreshGuards(service_, now));
    engine.guards_.SetOverride(service_, now, mode_, audit_.note, audit_.peer);
    engine.LogCircuit(service_);
    view_ = engine.guards_.Circuit(service_, now);
    audit_.time = now;
    audit_.method = "SetCircuitOverride";
    audit_.target = service_;
    audit_.detail = std::string(CircuitOverrideName(mode_));
    audit_.affected_count = 1;
    audit_.result_code = "OK";
    RETURN_IF_ERROR(engine.store_->AppendAudit(&audit_));
    LogEvent(LogLevel::kWarn, "circuit_override")
        .Str("service", service_)
        .Str("override", std::string(CircuitOverrideName(mode_)))
        .Str("state", std::string(CircuitStateName(view_.state)))
        .Str("identity", audit_.identity)
        .Str("peer", audit_.peer)
        .Str("note", audit_.note);
    return absl::OkStatus();
  }
  void Finish(absl::Status status) override {
    if (status.ok()) {
      done_(view_);
    } else {
      done_(status);
    }
  }

 private:
  std::string service_;
  CircuitOverride mode_;
  AuditRecord audit_;
  CircuitCallback done_;
  CircuitView view_;
};

class Engine::GuardViewsOp final : public Engine::Op {
 public:
  explicit GuardViewsOp(GuardViewsCallback done) : done_(std::move(done)) {}

  absl::Status Apply(Engine& engine, absl::Time now) override {
    RETURN_IF_ERROR(engine.scheduler_->RefreshAllGuards(now));
    views_ = engine.guards_.Views(now);
    return absl::OkStatus();
  }
  bool Writes() const override { return false; }
  void Finish(absl::Status status) override {
    // Not applied (the engine is stopping): there are no views to give, and a caller must not
    // make some up.
    if (!status.ok()) {
      done_(std::move(status));
      return;
    }
    done_(std::move(views_));
  }

 private:
  GuardViewsCallback done_;
  std::map<std::string, GuardView> views_;
};

void Engine::RecordOutcomes(std::string service, int64_t successes, int64_t failures,
                            DoneCallback done) {
  Submit(std::make_unique<RecordOutcomesOp>(std::move(service), successes, failures,
                                            std::move(done)));
}

void Engine::SetCircuitOverride(std::string service, CircuitOverride mode, AuditRecord audit,
                                CircuitCallback done) {
  // Operator work, like RunInTransaction: forcing a circuit open is how an operator sheds load.
  Submit(std::make_unique<SetCircuitOverrideOp>(std::move(service), mode, std::move(audit),
                                                std::move(done)),
         /*limited=*/false);
}

void Engine::GuardViews(GuardViewsCallback done) {
  // An operator read (ListServices, a metrics scrape): the pending-requests limit protects the
  // store from worker traffic, and the overview is wanted most when that limit is hit.
  Submit(std::make_unique<GuardViewsOp>(std::move(done)), /*limited=*/false);
}

CircuitView Engine::Circuit(const std::string& service) const {
  return guards_.Snapshot(service, clock_->Now());
}

void Engine::LogCircuit(const std::string& service) {
  const CircuitRecord record = guards_.Record(service);
  LogEvent(LogLevel::kInfo, "circuit_state")
      .Str("service", service)
      .Str("state", std::string(CircuitStateName(record.state)))
      .Str("override", std::string(CircuitOverrideName(record.override_mode)));
}

void Engine::AdvanceCircuits(absl::Time now) {
  std::vector<std::string> changed;
  // Outside any op: stored with the batch.
  const absl::Status advanced = scheduler_->AdvanceCircuits(now, &changed);
  if (!advanced.ok()) StopOnStoreFailure("advance_circuits", advanced);
  for (const std::string& service : changed) LogCircuit(service);
}

}  // namespace retryd
