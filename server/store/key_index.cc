#include "server/store/key_index.h"

#include <algorithm>
#include <tuple>

#include "server/util/status_macros.h"

namespace retryd {

absl::StatusOr<std::unique_ptr<KeyIndex>> KeyIndex::Load(sqlite::Database* db, Options options) {
  std::unique_ptr<KeyIndex> index(new KeyIndex(db, options));
  RETURN_IF_ERROR(index->Prepare());

  ASSIGN_OR_RETURN(sqlite::Statement watermark,
                   db->Prepare("SELECT merged_through FROM key_merge WHERE id = 1"));
  ASSIGN_OR_RETURN(bool has_watermark, watermark.Step());
  if (!has_watermark) return absl::DataLossError("key_merge has no row");
  index->merged_through_ = watermark.ColumnInt(0);

  ASSIGN_OR_RETURN(sqlite::Statement newest, db->Prepare("SELECT IFNULL(MAX(id), 0) FROM envelopes"));
  ASSIGN_OR_RETURN(bool has_newest, newest.Step());
  const int64_t max_id = has_newest ? newest.ColumnInt(0) : 0;
  index->next_id_ = std::max(max_id, index->merged_through_) + 1;

  // A rowid range: reads only the rows written since the last merge.
  ASSIGN_OR_RETURN(sqlite::Statement rows, db->Prepare(
      "SELECT id, service_id, message_id FROM envelopes WHERE id > ? ORDER BY id"));
  rows.BindInt(1, index->merged_through_);
  while (true) {
    ASSIGN_OR_RETURN(bool row, rows.Step());
    if (!row) break;
    index->Add(rows.ColumnInt(1), rows.ColumnText(2), rows.ColumnInt(0));
  }
  return index;
}

absl::Status KeyIndex::Prepare() {
  ASSIGN_OR_RETURN(find_merged_, db_->Prepare(
      "SELECT id FROM envelope_keys WHERE service_id = ? AND message_id = ?"));
  ASSIGN_OR_RETURN(check_row_, db_->Prepare(
      "SELECT 1 FROM envelopes WHERE id = ? AND service_id = ? AND message_id = ?"));
  // Copies the key of a row that still exists (it may have been deleted since the merge began).
  // REPLACE: a merge cut short by a crash copies some keys a second time.
  ASSIGN_OR_RETURN(copy_key_, db_->Prepare(
      "INSERT OR REPLACE INTO envelope_keys (service_id, message_id, id) "
      "SELECT service_id, message_id, id FROM envelopes WHERE id = ?"));
  ASSIGN_OR_RETURN(set_watermark_,
                   db_->Prepare("UPDATE key_merge SET merged_through = ? WHERE id = 1"));
  return absl::OkStatus();
}

absl::StatusOr<std::optional<int64_t>> KeyIndex::Find(int64_t service_id,
                                                      absl::string_view message_id) {
  if (std::optional<int64_t> id = PendingId(service_id, message_id)) {
    check_row_.BindInt(1, *id);
    check_row_.BindInt(2, service_id);
    check_row_.BindText(3, message_id);
    ASSIGN_OR_RETURN(bool exists, check_row_.Step());
    check_row_.Reset();
    if (exists) return id;
    // Rolled back or deleted; the key may still be merged from an older envelope.
  }
  find_merged_.BindInt(1, service_id);
  find_merged_.BindText(2, message_id);
  ASSIGN_OR_RETURN(bool found, find_merged_.Step());
  std::optional<int64_t> id;
  if (found) id = find_merged_.ColumnInt(0);
  find_merged_.Reset();
  return id;
}

void KeyIndex::Add(int64_t service_id, absl::string_view message_id, int64_t id) {
  absl::MutexLock lock(&mu_);
  auto [it, inserted] = pending_[service_id].insert_or_assign(std::string(message_id), id);
  if (inserted) ++pending_count_;
}

std::optional<int64_t> KeyIndex::PendingId(int64_t service_id,
                                           absl::string_view message_id) const {
  absl::MutexLock lock(&mu_);
  auto service = pending_.find(service_id);
  if (service == pending_.end()) return std::nullopt;
  auto key = service->second.find(message_id);
  if (key == service->second.end()) return std::nullopt;
  return key->second;
}

int64_t KeyIndex::pending_count() const {
  absl::MutexLock lock(&mu_);
  return pending_count_;
}

void KeyIndex::StartMerge() {
  {
    absl::MutexLock lock(&mu_);
    merge_.reserve(pending_count_);
    for (const auto& [service_id, keys] : pending_) {
      for (const auto& [message_id, id] : keys) merge_.push_back({service_id, message_id, id});
    }
  }
  // envelope_keys' order: service id, then message id compared bytewise (SQLite's BINARY
  // collation, as std::string compares).
  std::sort(merge_.begin(), merge_.end(), [](const MergeKey& a, const MergeKey& b) {
    return std::tie(a.service_id, a.message_id) < std::tie(b.service_id, b.message_id);
  });
  merge_through_ = next_id_ - 1;
  done_ = written_ = 0;
}

absl::Status KeyIndex::BeforeCommit() {
  const int64_t pending = pending_count();
  if (merge_.empty()) {
    if (pending < options_.merge_at) return absl::OkStatus();
    StartMerge();
    if (merge_.empty()) return absl::OkStatus();
  }
  // Keys keep arriving while a merge runs. Each slice is large enough that the merge is done by
  // the time the next one is due: the fraction copied keeps up with the fraction of merge_at
  // that has arrived since it began.
  const int64_t arrived = pending - static_cast<int64_t>(merge_.size());
  const int64_t due = static_cast<int64_t>(merge_.size()) * arrived /
                      std::max<int64_t>(options_.merge_at, 1);
  const int64_t slice = std::max(options_.slice, due - static_cast<int64_t>(done_));
  const size_t end = std::min(merge_.size(), done_ + static_cast<size_t>(slice));
  for (size_t i = done_; i < end; ++i) {
    copy_key_.BindInt(1, merge_[i].id);
    RETURN_IF_ERROR(copy_key_.Run());
  }
  if (end == merge_.size()) {
    set_watermark_.BindInt(1, merge_through_);
    RETURN_IF_ERROR(set_watermark_.Run());
  }
  written_ = end;
  return absl::OkStatus();
}

void KeyIndex::Committed() {
  if (written_ == done_) return;
  done_ = written_;
  if (done_ < merge_.size()) return;
  merged_through_ = merge_through_;
  merge_.clear();
  merge_.shrink_to_fit();
  done_ = written_ = 0;
  absl::MutexLock lock(&mu_);
  pending_count_ = 0;
  for (auto service = pending_.begin(); service != pending_.end();) {
    auto& keys = service->second;
    for (auto key = keys.begin(); key != keys.end();) {
      if (key->second <= merged_through_) {
        keys.erase(key++);
      } else {
        ++key;
      }
    }
    pending_count_ += static_cast<int64_t>(keys.size());
    if (keys.empty()) {
      pending_.erase(service++);
    } else {
      ++service;
    }
  }
}

void KeyIndex::RolledBack() { written_ = done_; }

}  // namespace retryd
