// FakeSchedulerStore: the rows a Scheduler reads and writes, in memory: envelopes by id and by
// (service, message_id), and circuits by service, with the SchedulerStore contract
// (ALREADY_EXISTS on a taken key, Update keeps the payload and created_at). A test can make the
// next write fail, as a store failure would.
#ifndef RETRYD_TESTS_TESTING_FAKE_SCHEDULER_STORE_H_
#define RETRYD_TESTS_TESTING_FAKE_SCHEDULER_STORE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/core/scheduler.h"

namespace retryd::testing {

class FakeSchedulerStore final : public SchedulerStore {
 public:
  absl::StatusOr<std::optional<Envelope>> FindByKey(absl::string_view service,
                                                    absl::string_view message_id,
                                                    bool with_payload) override {
    auto it = keys_.find({std::string(service), std::string(message_id)});
    if (it == keys_.end()) return std::nullopt;
    return FindById(it->second, with_payload);
  }

  absl::StatusOr<std::optional<Envelope>> FindById(int64_t id, bool with_payload) override {
    auto it = rows_.find(id);
    if (it == rows_.end()) return std::nullopt;
    Envelope e = it->second;
    if (!with_payload) e.payload.clear();
    return e;
  }

  absl::Status Insert(Envelope* e) override {
    if (absl::Status s = TakeFailure(); !s.ok()) return s;
    auto [it, inserted] = keys_.try_emplace({e->service, e->message_id}, next_id_);
    if (!inserted) return absl::AlreadyExistsError("the key is taken");
    e->id = next_id_++;
    rows_[e->id] = *e;
    return absl::OkStatus();
  }

  absl::Status Update(const Envelope& e) override { return Rewrite(e, /*drop_payload=*/false); }
  absl::Status UpdateDroppingPayload(const Envelope& e) override {
    return Rewrite(e, /*drop_payload=*/true);
  }

  absl::Status SaveCircuit(const CircuitRecord& record) override {
    if (absl::Status s = TakeFailure(); !s.ok()) return s;
    circuits_[record.service] = record;
    return absl::OkStatus();
  }

  // The stored row (with its payload); a default Envelope when there is none.
  Envelope Row(int64_t id) const {
    auto it = rows_.find(id);
    return it == rows_.end() ? Envelope() : it->second;
  }
  // The stored circuit of `service`; nullopt when none was saved.
  std::optional<CircuitRecord> Circuit(const std::string& service) const {
    auto it = circuits_.find(service);
    if (it == circuits_.end()) return std::nullopt;
    return it->second;
  }
  // The next Insert, Update or SaveCircuit fails with `status` (and writes nothing).
  void FailNextWrite(absl::Status status) { failure_ = std::move(status); }
  int64_t writes() const { return writes_; }

 private:
  absl::Status Rewrite(const Envelope& e, bool drop_payload) {
    if (absl::Status s = TakeFailure(); !s.ok()) return s;
    auto it = rows_.find(e.id);
    if (it == rows_.end()) return absl::NotFoundError("no such row");
    Envelope updated = e;
    updated.payload = drop_payload ? std::string() : it->second.payload;
    updated.created_at = it->second.created_at;
    it->second = std::move(updated);
    return absl::OkStatus();
  }

  absl::Status TakeFailure() {
    ++writes_;
    absl::Status s = std::move(failure_);
    failure_ = absl::OkStatus();
    return s;
  }

  std::map<int64_t, Envelope> rows_;
  std::map<std::pair<std::string, std::string>, int64_t> keys_;
  std::map<std::string, CircuitRecord> circuits_;
  int64_t next_id_ = 1;
  absl::Status failure_;
  int64_t writes_ = 0;
};

}  // namespace retryd::testing

#endif  // RETRYD_TESTS_TESTING_FAKE_SCHEDULER_STORE_H_
