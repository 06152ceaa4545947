// The rules both schedulers (LocalScheduler, SharedScheduler) apply the same way, whatever holds
// their state: how a failure of an envelope is decided and written into it, and how big a leased
// envelope counts for a Lease response's byte cap. One copy, so the two cannot drift apart.
#ifndef RETRYD_SERVER_CORE_FAILURE_DECISION_H_
#define RETRYD_SERVER_CORE_FAILURE_DECISION_H_

#include <cstdint>

#include "absl/time/time.h"
#include "server/core/envelope.h"
#include "server/core/policy_set.h"
#include "server/core/service_guards.h"
#include "server/util/random.h"

namespace retryd {

// Decides `failure` of `e` as attempt number `attempt` by its service's policy, the retry budget
// applied (`guards` books the retry), and writes the decision into `e`: attempt, max_attempts,
// last error, history (the newest kMaxHistory attempts), state and its time.
Decision DecideAndApplyFailure(const PolicySet& policies, Random& rng, ServiceGuards& guards,
                               Envelope& e, int attempt, const Failure& failure, absl::Time now);

// A rough wire size of a leased envelope, for the Lease response's byte cap.
int64_t LeasedWireSize(const Envelope& e);

}  // namespace retryd

#endif  // RETRYD_SERVER_CORE_FAILURE_DECISION_H_
