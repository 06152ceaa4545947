// The byte budget of one listing page. A page stops growing before its serialized size passes
// the budget (and says there is more with a next_page_token); its first item is always taken, so
// paging makes progress whatever one item weighs. The budget sits below gRPC's default 4 MiB
// receive limit, so a page fits any default client, and it bounds what a listing call holds in
// the server's memory.
#ifndef RETRYD_SERVER_RPC_RESPONSE_BUDGET_H_
#define RETRYD_SERVER_RPC_RESPONSE_BUDGET_H_

#include <cstdint>

namespace retryd {

// Bytes of one listing page (3.5 MiB, as the default lease response budget).
inline constexpr int64_t kMaxListResponseBytes = 3670016;

// Bytes a repeated message field spends on one item besides the item itself (tag and length).
inline constexpr int64_t kRepeatedItemOverhead = 6;

class ResponseBudget {
 public:
  explicit ResponseBudget(int64_t max_bytes = kMaxListResponseBytes) : left_(max_bytes) {}

  // True when an item of `item_bytes` (its serialized size) joins the page: the first always
  // does, later ones while the page stays within the budget. An item refused ends the page.
  bool Take(int64_t item_bytes) {
    const int64_t cost = item_bytes + kRepeatedItemOverhead;
    if (taken_ > 0 && cost > left_) return false;
    left_ -= cost;
    ++taken_;
    return true;
  }

 private:
  int64_t left_;
  int64_t taken_ = 0;
};

}  // namespace retryd

#endif  // RETRYD_SERVER_RPC_RESPONSE_BUDGET_H_
