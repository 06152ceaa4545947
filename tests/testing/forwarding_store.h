// ForwardingStore: a Store that passes every call to another one. Tests derive from it to
// intercept the few calls they are about (e.g. hold SyncLog to see what waits for it).
#ifndef RETRYD_TESTS_TESTING_FORWARDING_STORE_H_
#define RETRYD_TESTS_TESTING_FORWARDING_STORE_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "server/store/store.h"

namespace retryd::testing {

class ForwardingStore : public Store {
 public:
  explicit ForwardingStore(Store* inner) : inner_(inner) {}

  absl::Status Begin() override { return inner_->Begin(); }
  absl::Status Commit() override { return inner_->Commit(); }
  absl::Status SyncLog() override { return inner_->SyncLog(); }
  void Rollback() override { inner_->Rollback(); }
  absl::Status BeginOp() override { return inner_->BeginOp(); }
  absl::Status EndOp(bool keep) override { return inner_->EndOp(keep); }
  absl::StatusOr<std::optional<Envelope>> FindByKey(absl::string_view service,
                                                    absl::string_view message_id,
                                                    bool with_payload) override {
    return inner_->FindByKey(service, message_id, with_payload);
  }
  absl::StatusOr<std::optional<Envelope>> FindById(int64_t id, bool with_payload) override {
    return inner_->FindById(id, with_payload);
  }
  absl::Status Insert(Envelope* e) override { return inner_->Insert(e); }
  absl::Status Update(const Envelope& e) override { return inner_->Update(e); }
  absl::Status UpdateDroppingPayload(const Envelope& e) override {
    return inner_->UpdateDroppingPayload(e);
  }
  absl::StatusOr<int64_t> DeleteSucceededBefore(absl::Time cutoff, int limit) override {
    return inner_->DeleteSucceededBefore(cutoff, limit);
  }
  absl::StatusOr<absl::Time> OldestSucceededAt() override { return inner_->OldestSucceededAt(); }
  absl::Status SaveCircuit(const CircuitRecord& record) override {
    return inner_->SaveCircuit(record);
  }
  absl::StatusOr<std::vector<CircuitRecord>> LoadCircuits() override {
    return inner_->LoadCircuits();
  }
  absl::StatusOr<ListPage> ListInTxn(const ListQuery& query) override {
    return inner_->ListInTxn(query);
  }
  absl::StatusOr<std::vector<std::pair<std::string, int64_t>>> DeleteDeadLetters(
      const EnvelopeFilter& filter, int64_t limit) override {
    return inner_->DeleteDeadLetters(filter, limit);
  }
  absl::Status AppendAudit(AuditRecord* record) override { return inner_->AppendAudit(record); }
  absl::Status UpdateAuditCount(int64_t id, int64_t affected_count) override {
    return inner_->UpdateAuditCount(id, affected_count);
  }
  absl::StatusOr<std::optional<AuditRecord>> FindAudit(absl::string_view method,
                                                       absl::string_view request_id) override {
    return inner_->FindAudit(method, request_id);
  }
  absl::Status InsertReplay(ReplayRow* row) override { return inner_->InsertReplay(row); }
  absl::Status UpdateReplay(const ReplayRow& row) override { return inner_->UpdateReplay(row); }
  absl::StatusOr<std::optional<ReplayRow>> FindReplayInTxn(int64_t id) override {
    return inner_->FindReplayInTxn(id);
  }
  absl::StatusOr<std::optional<ReplayRow>> FindReplayByRequestId(
      absl::string_view request_id) override {
    return inner_->FindReplayByRequestId(request_id);
  }
  absl::Status ForEachLive(const std::function<void(const LiveRow&)>& fn) override {
    return inner_->ForEachLive(fn);
  }
  absl::StatusOr<LogPages> CheckpointWal() override { return inner_->CheckpointWal(); }
  absl::StatusOr<std::optional<Envelope>> Get(absl::string_view service,
                                              absl::string_view message_id) override {
    return inner_->Get(service, message_id);
  }
  absl::StatusOr<std::vector<ServiceCounts>> CountByService() override {
    return inner_->CountByService();
  }
  absl::StatusOr<ListPage> List(const ListQuery& query) override { return inner_->List(query); }
  absl::StatusOr<int64_t> CountDeadLetters(const EnvelopeFilter& filter) override {
    return inner_->CountDeadLetters(filter);
  }
  absl::StatusOr<std::vector<FailureGroupRow>> ListFailureGroups(const GroupQuery& query) override {
    return inner_->ListFailureGroups(query);
  }
  absl::StatusOr<DeadLetterStatsRow> DeadLetterStats(absl::string_view service,
                                                     absl::Time since) override {
    return inner_->DeadLetterStats(service, since);
  }
  absl::StatusOr<std::vector<HistogramCell>> DeadLetterHistogram(absl::string_view service,
                                                                 absl::Time since,
                                                                 absl::Time until,
                                                                 absl::Duration width) override {
    return inner_->DeadLetterHistogram(service, since, until, width);
  }
  absl::StatusOr<std::vector<AuditRecord>> ListAudit(const AuditQuery& query) override {
    return inner_->ListAudit(query);
  }
  absl::StatusOr<std::optional<ReplayRow>> GetReplay(int64_t id) override {
    return inner_->GetReplay(id);
  }
  absl::StatusOr<std::vector<ReplayRow>> ListReplays(int64_t before_id, int limit) override {
    return inner_->ListReplays(before_id, limit);
  }
  absl::StatusOr<std::vector<ReplayRow>> ListReplaysInStates(
      const std::vector<int>& states) override {
    return inner_->ListReplaysInStates(states);
  }

 private:
  Store* const inner_;
};

}  // namespace retryd::testing

#endif  // RETRYD_TESTS_TESTING_FORWARDING_STORE_H_
