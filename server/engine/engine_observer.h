// EngineObserver: what the Engine tells an observer (the Prometheus metrics) as it works. Every
// call but OnSync is made on the engine's writer thread; all are on the request path, so an
// implementation must be cheap and must not block (no I/O, no allocation on the common path).
// Calls are made when an operation is applied, inside the batch transaction, before the commit:
// a commit that then fails stops the process (crash-only), so counts never outlive a lost batch
// in a running server.
#ifndef RETRYD_SERVER_ENGINE_ENGINE_OBSERVER_H_
#define RETRYD_SERVER_ENGINE_ENGINE_OBSERVER_H_

#include "absl/time/time.h"
#include "server/core/envelope.h"

namespace retryd {

class EngineObserver {
 public:
  virtual ~EngineObserver() = default;

  // A failure was decided: reported by a worker (first or leased) or, when `lease_expired`, by
  // a lease that ran out. `e` is the envelope after the decision.
  virtual void OnDecision(const Envelope& e, const Failure& failure, const Decision& decision,
                          bool lease_expired) = 0;
  // A first failure that was already recorded (answered duplicate = true, nothing changed).
  virtual void OnDuplicateFailure(const Envelope& existing) = 0;
  // A due envelope was leased `lateness` after its next_retry_at.
  virtual void OnLeased(const Envelope& e, absl::Duration lateness) = 0;
  // A leased retry succeeded on attempt number `attempt` (the first retry is attempt 2).
  virtual void OnRetrySucceeded(const Envelope& e, int attempt) = 0;
  // A batch transaction committed (or failed to) after `duration`, with `requests` queued
  // requests in it.
  virtual void OnCommit(absl::Duration duration, int requests, bool ok) = 0;
  // The log was fsynced after `duration`, making the batches committed before it durable (on the
  // engine's syncer thread).
  virtual void OnSync(absl::Duration duration) = 0;
};

}  // namespace retryd

#endif  // RETRYD_SERVER_ENGINE_ENGINE_OBSERVER_H_
