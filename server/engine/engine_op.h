// Engine::Op, the base of every queued request, shared by engine.cc and engine_guards.cc.
// Internal to the engine.
#ifndef RETRYD_SERVER_ENGINE_ENGINE_OP_H_
#define RETRYD_SERVER_ENGINE_ENGINE_OP_H_

#include <atomic>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/engine/engine.h"

namespace retryd {

// One queued request. Apply runs on the writer thread inside the batch transaction, in its own
// savepoint; it changes in-memory state only after its store writes succeeded, but for the
// guards, whose changes the engine undoes with the savepoint when the op fails. Finish answers
// the caller once: with the commit's status, or with Apply's error.
class Engine::Op {
 public:
  virtual ~Op() {
    if (pending_count != nullptr) pending_count->fetch_sub(1, std::memory_order_relaxed);
  }
  virtual absl::Status Apply(Engine& engine, absl::Time now) = 0;
  virtual void Finish(absl::Status status) = 0;
  // False for an op that only reads (it is not refused when the disk is low).
  virtual bool Writes() const { return true; }
  // True when Apply parked the op (a long-poll with nothing due); it is then neither finished
  // nor committed.
  bool parked = false;
  // The engine's count of unanswered requests, which this op is one of until destroyed
  // (answered); null when it is not counted.
  std::atomic<int64_t>* pending_count = nullptr;
};

}  // namespace retryd

#endif  // RETRYD_SERVER_ENGINE_ENGINE_OP_H_
