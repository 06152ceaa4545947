// Runs a function in the engine's next batch and waits for the commit (for the DLQ background
// threads, which may block; never call it from the writer thread or an RPC handler).
#ifndef RETRYD_SERVER_DLQ_SYNC_TXN_H_
#define RETRYD_SERVER_DLQ_SYNC_TXN_H_

#include <future>
#include <memory>

#include "server/engine/engine.h"

namespace retryd {

inline absl::Status RunInTransactionAndWait(Engine& engine, Engine::TxnFunction apply) {
  auto promise = std::make_shared<std::promise<absl::Status>>();
  std::future<absl::Status> result = promise->get_future();
  engine.RunInTransaction(std::move(apply),
                          [promise](absl::Status s) { promise->set_value(std::move(s)); });
  return result.get();
}

}  // namespace retryd

#endif  // RETRYD_SERVER_DLQ_SYNC_TXN_H_
