// The rules both schedulers (LocalScheduler, SharedScheduler) apply the same way, whatever holds
// their state: how a failure of an envelope is decided and written into it, and how big a leased
// envelope counts for a Lease response's byte cap. One copy, so the two cannot drift apart.
#ifndef RETRYD_SERVER_CORE_FAILURE_DECISION_H_
#define RETRYD_SERVER_CORE_FAILURE_DECISION_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/core/envelope.h"
#include "server/core/policy_set.h"
#include "server/core/scheduler.h"
#include "server/core/service_guards.h"
#include "server/util/random.h"

namespace retryd {

// Decides `failure` of `e` as attempt number `attempt` by its service's policy, the retry budget
// applied (`guards` books the retry), and writes the decision into `e`: attempt, max_attempts,
// last error, history (the newest kMaxHistory attempts), state and its time.
Decision DecideAndApplyFailure(const PolicySet& policies, Random& rng, ServiceGuards& guards,
                               Envelope& e, int attempt, const Failure& failure, absl::Time now);

// The answer to a first failure of `e` whose insert found it stored already (`inserted` is
// ALREADY_EXISTS): the stored envelope, as a duplicate, with the decision taken for `e` undone
// in `guards` (the retry its budget booked goes back, pacing included). `inserted` again when the
// stored envelope is gone by now.
absl::StatusOr<FailureOutcome> AnswerDuplicate(SchedulerStore& store, ServiceGuards& guards,
                                               const Envelope& e, Failure failure,
                                               const absl::Status& inserted);

// A rough wire size of a leased envelope, for the Lease response's byte cap.
int64_t LeasedWireSize(const Envelope& e);

}  // namespace retryd

#endif  // RETRYD_SERVER_CORE_FAILURE_DECISION_H_
