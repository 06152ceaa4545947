// The answer to a duplicate first failure: the envelope as it is now, told as a Decision
// (DESIGN.md "Decision": "the decision describes the envelope as it is now (scheduled, leased,
// succeeded or dead), never a made-up time").
#ifndef RETRYD_SERVER_CORE_DUPLICATE_DECISION_H_
#define RETRYD_SERVER_CORE_DUPLICATE_DECISION_H_

#include "server/core/envelope.h"

namespace retryd {

// The decision answered to a re-sent first failure of `e` (duplicate = true, nothing counted),
// by the state `e` is in:
//   SCHEDULED     → kScheduled, with its real next_retry_at;
//   LEASED        → kScheduled (its retry is under way), no next_retry_at;
//   SUCCEEDED     → kScheduled (its retry succeeded), no next_retry_at;
//   DEAD_LETTERED → kDeadLettered, with its dead-letter reason.
// `state` is always e.state, `attempt` the attempts made so far, `error_class` the class of the
// latest failure; `delay` is the delay last chosen while a retry is pending or running (zero for
// one re-scheduled by a replay), zero otherwise. Times that do not apply stay InfinitePast.
Decision DuplicateDecision(const Envelope& e);

}  // namespace retryd

#endif  // RETRYD_SERVER_CORE_DUPLICATE_DECISION_H_
