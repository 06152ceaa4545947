#include "server/engine/commit_pipeline.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/engine/engine.h"
#include "server/util/thread_name.h"

namespace retryd {

CommitPipeline::CommitPipeline(Store* store, const Clock* clock, CommitPipelineOptions options,
                               std::function<void()> wake_writer)
    : store_(store), clock_(clock), options_(options), wake_writer_(std::move(wake_writer)) {
  syncer_ = std::thread([this] { SyncLoop(); });
  checkpointer_ = std::thread([this] { CheckpointLoop(); });
}

CommitPipeline::~CommitPipeline() { Stop(); }

void CommitPipeline::WhenDurable(std::unique_ptr<Answers> answers) {
  absl::MutexLock lock(&sync_mu_);
  to_answer_.push_back(std::move(answers));
}

absl::Duration CommitPipeline::PauseIfRequested() {
  if (!PauseRequested()) return absl::ZeroDuration();
  const absl::Time start = clock_->Now();
  absl::MutexLock lock(&mu_);
  writer_paused_ = true;
  auto resumed = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !PauseRequested(); };
  mu_.Await(absl::Condition(&resumed));
  writer_paused_ = false;
  return clock_->Now() - start;
}

void CommitPipeline::Stop() {
  if (stopped_) return;
  stopped_ = true;
  {
    absl::MutexLock lock(&sync_mu_);
    writer_finished_ = true;
  }
  if (syncer_.joinable()) syncer_.join();
  {
    absl::MutexLock lock(&mu_);
    writer_done_ = true;
  }
  if (checkpointer_.joinable()) checkpointer_.join();
}

void CommitPipeline::SyncLoop() {
  NameThisThread("retryd-syncer");
  while (true) {
    std::vector<std::unique_ptr<Answers>> batches;
    {
      absl::MutexLock lock(&sync_mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(sync_mu_) {
        return !to_answer_.empty() || writer_finished_;
      };
      sync_mu_.Await(absl::Condition(&ready));
      if (to_answer_.empty()) return;  // The writer is done and everything is answered.
      batches.swap(to_answer_);
    }
    // Everything in `batches` was committed before this fsync began, so it covers them all.
    const absl::Time start = clock_->Now();
    const absl::Status synced = store_->SyncLog();
    if (!synced.ok()) {
      // After a failed fsync the kernel may have dropped the unwritten pages, and a later fsync
      // can succeed without them: nothing since the last good sync may be acknowledged, and
      // only a restart, which recovers from what is on disk, tells what was kept (PostgreSQL
      // does the same since 2018).
      size_t withheld = 0;
      for (const auto& b : batches) withheld += b->size();
      StopOnStoreFailure(absl::StrCat("sync (", withheld, " answers withheld)"), synced);
    }
    if (auto* o = options_.observer) o->OnSync(clock_->Now() - start);
    for (auto& b : batches) b->Finish();
  }
}

Store::LogPages CommitPipeline::Checkpoint() {
  // A failed checkpoint is fatal too: if the database file's sync failed, SQLite may still count
  // the copied pages as checkpointed and let the writer restart the log over them.
  absl::StatusOr<Store::LogPages> pages = store_->CheckpointWal();
  if (!pages.ok()) StopOnStoreFailure("checkpoint", pages.status());
  return *pages;
}

void CommitPipeline::CheckpointLoop() {
  NameThisThread("retryd-ckpt");
  // The paused pass should copy about this many pages at most (a few ms of copying and fsync).
  constexpr int64_t kPausedPassPages = 256;
  int64_t checkpointed = 0;
  // An idle server is checked less often (the first pass after it wakes copies a little more).
  const absl::Duration idle_interval =
      std::max(options_.checkpoint_interval, absl::Milliseconds(50));
  bool idle = false;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return writer_done_; };
      mu_.AwaitWithTimeout(absl::Condition(&done),
                           idle ? idle_interval : options_.checkpoint_interval);
      if (writer_done_) break;
    }
    const int64_t commits = commits_.load(std::memory_order_relaxed);
    idle = commits == checkpointed;
    if (idle) continue;
    checkpointed = commits;
    Store::LogPages pages = Checkpoint();
    if (pages.total <= options_.log_restart_pages) continue;
    // The writer commits faster than a checkpoint copies, so the log never empties by itself:
    // catch up until a pass finds little new, then pause the writer between two batches, copy
    // the little that came since, and its next batch starts the log over from the beginning.
    // (The pause is that last pass: a few ms every few hundred ms at full load.)
    for (int i = 0; i < 4; ++i) {
      const int64_t before = pages.total;
      pages = Checkpoint();
      if (pages.total - before <= kPausedPassPages) break;
    }
    {
      absl::MutexLock lock(&mu_);
      pause_requested_.store(true, std::memory_order_release);
    }
    wake_writer_();
    {
      absl::MutexLock lock(&mu_);
      auto paused = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return writer_paused_ || writer_done_;
      };
      mu_.Await(absl::Condition(&paused));
    }
    Checkpoint();
    absl::MutexLock lock(&mu_);
    pause_requested_.store(false, std::memory_order_release);
  }
  // A last checkpoint after the writer's final commit keeps the log short for the next start.
  Checkpoint();
}

}  // namespace retryd
