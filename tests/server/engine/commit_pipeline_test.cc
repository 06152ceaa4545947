// The commit pipeline alone, over a store that only syncs and checkpoints (the pipeline calls
// nothing else): answers wait for an fsync that began after their commit and keep commit order;
// a long log makes the checkpointer pause the writer for one more pass; Stop answers what is left
// and checkpoints once more.
#include "server/engine/commit_pipeline.h"

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "server/util/clock.h"
#include "tests/testing/forwarding_store.h"

namespace retryd {
namespace {

// SyncLog and CheckpointWal only; SyncLog waits while held.
class SyncingStore final : public testing::ForwardingStore {
 public:
  SyncingStore() : ForwardingStore(nullptr) {}

  absl::Status SyncLog() override {
    absl::MutexLock lock(&mu_);
    ++syncs_started_;
    mu_.Await(absl::Condition(+[](bool* held) { return !*held; }, &held_));
    ++syncs_done_;
    return absl::OkStatus();
  }
  absl::StatusOr<LogPages> CheckpointWal() override {
    absl::MutexLock lock(&mu_);
    ++checkpoints_;
    return LogPages{log_pages_, log_pages_};
  }

  void Hold(bool held) {
    absl::MutexLock lock(&mu_);
    held_ = held;
  }
  void SetLogPages(int64_t pages) {
    absl::MutexLock lock(&mu_);
    log_pages_ = pages;
  }
  bool WaitForSyncsStarted(int n) {
    absl::MutexLock lock(&mu_);
    struct Want {
      int* have;
      int n;
    } want{&syncs_started_, n};
    return mu_.AwaitWithTimeout(absl::Condition(+[](Want* w) { return *w->have >= w->n; }, &want),
                                absl::Seconds(10));
  }
  int syncs_done() {
    absl::MutexLock lock(&mu_);
    return syncs_done_;
  }
  int checkpoints() {
    absl::MutexLock lock(&mu_);
    return checkpoints_;
  }

 private:
  absl::Mutex mu_;
  bool held_ ABSL_GUARDED_BY(mu_) = false;
  int syncs_started_ ABSL_GUARDED_BY(mu_) = 0;
  int syncs_done_ ABSL_GUARDED_BY(mu_) = 0;
  int checkpoints_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t log_pages_ ABSL_GUARDED_BY(mu_) = 0;
};

// A batch's answers: records its number, and how many syncs had finished, when answered.
class Recorder {
 public:
  class Batch final : public CommitPipeline::Answers {
   public:
    Batch(Recorder* r, int id) : r_(r), id_(id) {}
    size_t size() const override { return 1; }
    void Finish() override {
      absl::MutexLock lock(&r_->mu_);
      r_->answered_.push_back(id_);
      r_->syncs_when_answered_.push_back(r_->store_->syncs_done());
    }

   private:
    Recorder* r_;
    int id_;
  };

  explicit Recorder(SyncingStore* store) : store_(store) {}
  std::unique_ptr<Batch> Make(int id) { return std::make_unique<Batch>(this, id); }
  bool WaitForAnswers(size_t n) {
    absl::MutexLock lock(&mu_);
    struct Want {
      std::vector<int>* have;
      size_t n;
    } want{&answered_, n};
    return mu_.AwaitWithTimeout(
        absl::Condition(+[](Want* w) { return w->have->size() >= w->n; }, &want),
        absl::Seconds(10));
  }
  std::vector<int> answered() {
    absl::MutexLock lock(&mu_);
    return answered_;
  }
  std::vector<int> syncs_when_answered() {
    absl::MutexLock lock(&mu_);
    return syncs_when_answered_;
  }

 private:
  SyncingStore* store_;
  absl::Mutex mu_;
  std::vector<int> answered_ ABSL_GUARDED_BY(mu_);
  std::vector<int> syncs_when_answered_ ABSL_GUARDED_BY(mu_);
};

TEST(CommitPipelineTest, AnswersWaitForAnFsyncThatBeganAfterTheirCommitInCommitOrder) {
  SyncingStore store;
  Recorder recorder(&store);
  CommitPipeline pipeline(&store, &SystemClock::Get(), CommitPipelineOptions(), [] {});
  store.Hold(true);
  pipeline.Committed();
  pipeline.WhenDurable(recorder.Make(1));
  ASSERT_TRUE(store.WaitForSyncsStarted(1));
  // Committed while the first fsync runs: that fsync does not cover it.
  pipeline.Committed();
  pipeline.WhenDurable(recorder.Make(2));
  pipeline.WhenDurable(recorder.Make(3));
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_TRUE(recorder.answered().empty());  // Nothing before its fsync.
  store.Hold(false);
  ASSERT_TRUE(recorder.WaitForAnswers(3));
  EXPECT_EQ(recorder.answered(), (std::vector<int>{1, 2, 3}));
  const std::vector<int> syncs = recorder.syncs_when_answered();
  EXPECT_EQ(syncs[0], 1);
  EXPECT_GE(syncs[1], 2);  // The second fsync, which began after it was committed.
  EXPECT_GE(syncs[2], 2);
  pipeline.Stop();
}

TEST(CommitPipelineTest, LongLogPausesTheWriterForOneMoreCheckpoint) {
  SyncingStore store;
  store.SetLogPages(1000);
  CommitPipelineOptions options;
  options.checkpoint_interval = absl::Milliseconds(1);
  options.log_restart_pages = 100;
  std::atomic<int> wakes{0};
  CommitPipeline pipeline(&store, &SystemClock::Get(), options, [&wakes] { wakes++; });
  // The writer: commits, and pauses between batches when asked.
  std::atomic<bool> stop{false};
  std::atomic<int> pauses{0};
  std::thread writer([&] {
    while (!stop) {
      pipeline.Committed();
      if (pipeline.PauseRequested()) {
        pipeline.PauseIfRequested();
        pauses++;
      }
      absl::SleepFor(absl::Microseconds(200));
    }
  });
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (pauses.load() < 2 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(1));
  stop = true;
  writer.join();
  EXPECT_GE(pauses.load(), 2);
  EXPECT_GE(wakes.load(), 2);  // Each pause request woke the writer.
  pipeline.Stop();
}

TEST(CommitPipelineTest, ShortLogNeverPausesTheWriter) {
  SyncingStore store;
  store.SetLogPages(50);
  CommitPipelineOptions options;
  options.checkpoint_interval = absl::Milliseconds(1);
  options.log_restart_pages = 100;
  std::atomic<int> wakes{0};
  CommitPipeline pipeline(&store, &SystemClock::Get(), options, [&wakes] { wakes++; });
  for (int i = 0; i < 50; ++i) {
    pipeline.Committed();
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_GT(store.checkpoints(), 0);  // It checkpoints while there are commits.
  EXPECT_EQ(wakes.load(), 0);
  EXPECT_FALSE(pipeline.PauseRequested());
  pipeline.Stop();
}

TEST(CommitPipelineTest, StopAnswersWhatIsLeftAndCheckpointsOnceMore) {
  SyncingStore store;
  Recorder recorder(&store);
  CommitPipelineOptions options;
  options.checkpoint_interval = absl::Hours(1);  // No pass but the last.
  CommitPipeline pipeline(&store, &SystemClock::Get(), options, [] {});
  pipeline.Committed();
  pipeline.WhenDurable(recorder.Make(1));
  pipeline.Stop();
  EXPECT_EQ(recorder.answered(), std::vector<int>{1});
  EXPECT_EQ(recorder.syncs_when_answered(), std::vector<int>{1});
  EXPECT_EQ(store.checkpoints(), 1);
  pipeline.Stop();  // Idempotent.
}

}  // namespace
}  // namespace retryd
