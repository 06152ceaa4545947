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
      "SELECT id, service_id, message_id FROM envelopes WHERE id > ?"));
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
  // REPLACE: a merge cut short by a crash copies some keys a second time.
  ASSIGN_OR_RETURN(copy_key_, db_->Prepare(
      "INSERT OR REPLACE INTO envelope_keys (service_id, message_id, id) VALUES (?, ?, ?)"));
  // The same for a key whose envelope was deleted: copied only if the row is still there.
  ASSIGN_OR_RETURN(copy_row_key_, db_->Prepare(
      "INSERT OR REPLACE INTO envelope_keys (service_id, message_id, id) "
      "SELECT service_id, message_id, id FROM envelopes WHERE id = ?"));
  const int rc = sqlite3_create_function_v2(
      db_->raw(), "retryd_key_dropped", 1, SQLITE_UTF8, this,
      [](sqlite3_context* context, int, sqlite3_value** args) {
        static_cast<KeyIndex*>(sqlite3_user_data(context))->Dropped(sqlite3_value_int64(args[0]));
      },
      nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return sqlite::ErrorStatus(db_->raw(), rc, "registering retryd_key_dropped");
  // TEMP: it lives with this connection (the function exists only here), not in the file.
  RETURN_IF_ERROR(db_->Exec(
      "CREATE TEMP TRIGGER IF NOT EXISTS envelopes_note_drop AFTER DELETE ON main.envelopes "
      "BEGIN SELECT retryd_key_dropped(OLD.id); END"));
  ASSIGN_OR_RETURN(set_watermark_,
                   db_->Prepare("UPDATE key_merge SET merged_through = ? WHERE id = 1"));
  return absl::OkStatus();
}

absl::StatusOr<std::optional<int64_t>> KeyIndex::Find(int64_t service_id,
                                                      absl::string_view message_id) {
  // Whether envelope `id` exists with this key. A pending key may belong to an insert that was
  // rolled back or an envelope since deleted; a merged one is checked too, so that a key whose
  // envelope was deleted behind the index's back frees itself rather than blocking the key.
  auto stored = [&](int64_t id) -> absl::StatusOr<bool> {
    check_row_.BindInt(1, id);
    check_row_.BindInt(2, service_id);
    check_row_.BindText(3, message_id);
    ASSIGN_OR_RETURN(bool exists, check_row_.Step());
    check_row_.Reset();
    return exists;
  };
  if (std::optional<int64_t> id = PendingId(service_id, message_id)) {
    ASSIGN_OR_RETURN(bool exists, stored(*id));
    if (exists) return id;
  }
  find_merged_.BindInt(1, service_id);
  find_merged_.BindText(2, message_id);
  ASSIGN_OR_RETURN(bool found, find_merged_.Step());
  const int64_t merged = found ? find_merged_.ColumnInt(0) : 0;
  find_merged_.Reset();
  if (!found) return std::optional<int64_t>();
  ASSIGN_OR_RETURN(bool exists, stored(merged));
  return exists ? std::optional<int64_t>(merged) : std::optional<int64_t>();
}

void KeyIndex::Dropped(int64_t id) {
  if (id > merged_through_) dropped_.insert(id);
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
    const MergeKey& key = merge_[i];
    if (dropped_.contains(key.id)) {
      copy_row_key_.BindInt(1, key.id);
      RETURN_IF_ERROR(copy_row_key_.Run());
      continue;
    }
    copy_key_.BindInt(1, key.service_id);
    copy_key_.BindText(2, key.message_id);
    copy_key_.BindInt(3, key.id);
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
  absl::erase_if(dropped_, [this](int64_t id) { return id <= merged_through_; });
  merge_.clear();
  merge_.shrink_to_fit();
  done_ = written_ = 0;
  absl::MutexLock lock(&mu_);
  pending_count_ = 0;
  for (auto& [service_id, keys] : pending_) {
    absl::erase_if(keys, [this](const auto& key) { return key.second <= merged_through_; });
    pending_count_ += static_cast<int64_t>(keys.size());
  }
  absl::erase_if(pending_, [](const auto& service) { return service.second.empty(); });
}

void KeyIndex::RolledBack() { written_ = done_; }

}  // namespace retryd
