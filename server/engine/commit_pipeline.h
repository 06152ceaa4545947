// CommitPipeline: what happens to the writer's batches after their COMMIT, on two threads of its
// own.
//   - The syncer fsyncs the store's log (Store::SyncLog) and then answers every batch committed
//     before that fsync began, in commit order: the log is append-only, so one fsync makes every
//     earlier commit durable. Meanwhile the writer already applies the next batch.
//   - The checkpointer copies committed pages from the log into the main file in the background
//     while there are new commits, and when the log stays long (log_restart_pages), asks the
//     writer to pause between two batches for one last pass, so that the log starts over.
// Crash-only: a failed fsync or checkpoint stops the process (StopOnStoreFailure) before anything
// more is answered.
//
// Threading: WhenDurable, Committed, PauseRequested and PauseIfRequested are the writer's (any one
// thread); Stop is called once, after the writer made its last commit.
#ifndef RETRYD_SERVER_ENGINE_COMMIT_PIPELINE_H_
#define RETRYD_SERVER_ENGINE_COMMIT_PIPELINE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/engine/engine_observer.h"
#include "server/store/store.h"
#include "server/util/clock.h"

namespace retryd {

struct CommitPipelineOptions {
  // How often committed data is checkpointed (when something was committed since).
  absl::Duration checkpoint_interval = absl::Milliseconds(2);
  // A log longer than this after a checkpoint makes the writer pause for one more pass.
  int64_t log_restart_pages = 8192;
  // Told about each fsync, on the syncer thread. Optional.
  EngineObserver* observer = nullptr;
};

class CommitPipeline {
 public:
  // One committed batch's answers.
  class Answers {
   public:
    virtual ~Answers() = default;
    // How many requests it answers (for the log of a failed sync).
    virtual size_t size() const = 0;
    // Answers them all: the batch is durable. On the syncer thread; must not block.
    virtual void Finish() = 0;
  };

  // Starts the syncer and the checkpointer. `wake_writer` is called (from the checkpointer) when
  // a pause is requested, so that a writer waiting for work looks at PauseRequested(). The
  // pointers must outlive the pipeline.
  CommitPipeline(Store* store, const Clock* clock, CommitPipelineOptions options,
                 std::function<void()> wake_writer);
  // Stops, as Stop does.
  ~CommitPipeline();

  // Answers `answers` once every batch committed so far is durable.
  void WhenDurable(std::unique_ptr<Answers> answers);
  // A batch was committed (the checkpointer has something to copy).
  void Committed() { commits_.fetch_add(1, std::memory_order_relaxed); }
  // Whether the checkpointer waits for the writer to pause. Thread-safe.
  bool PauseRequested() const { return pause_requested_.load(std::memory_order_acquire); }
  // Between two batches: when a pause is requested, waits until the checkpointer's pass is over;
  // answers how long it waited (zero when it did not).
  absl::Duration PauseIfRequested();
  // The writer made its last commit: answers what is left after one more fsync, checkpoints once
  // more, and ends both threads. Idempotent.
  void Stop();

 private:
  void SyncLoop();
  void CheckpointLoop();
  // One checkpoint pass; a failure stops the process.
  Store::LogPages Checkpoint();

  Store* const store_;
  const Clock* const clock_;
  const CommitPipelineOptions options_;
  const std::function<void()> wake_writer_;

  absl::Mutex sync_mu_;
  std::vector<std::unique_ptr<Answers>> to_answer_ ABSL_GUARDED_BY(sync_mu_);  // Not yet synced.
  bool writer_finished_ ABSL_GUARDED_BY(sync_mu_) = false;

  absl::Mutex mu_;
  bool writer_done_ ABSL_GUARDED_BY(mu_) = false;  // The syncer answered the last batch.
  bool writer_paused_ ABSL_GUARDED_BY(mu_) = false;
  // Written under mu_; read without it by the writer's own wait condition.
  std::atomic<bool> pause_requested_{false};

  std::atomic<int64_t> commits_{0};
  bool stopped_ = false;  // Stop's (one caller).
  std::thread syncer_;
  std::thread checkpointer_;
};

}  // namespace retryd

#endif  // RETRYD_SERVER_ENGINE_COMMIT_PIPELINE_H_
