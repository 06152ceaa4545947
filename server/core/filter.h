// EnvelopeFilter: the structured filter of DESIGN.md in domain form. Fields are ANDed; the values
// within one list are ORed; an empty field matches everything. The store turns it into
// parameterised SQL; server/rpc validates and converts the proto Filter into it.
#ifndef RETRYD_SERVER_CORE_FILTER_H_
#define RETRYD_SERVER_CORE_FILTER_H_

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "server/core/envelope.h"

namespace retryd {

struct EnvelopeFilter {
  std::string service;  // Exact name; empty = every service.
  std::vector<std::string> error_codes;       // Last error's code.
  std::vector<ErrorClass> error_classes;      // Class the last failure was decided with.
  std::vector<DeadLetterReason> reasons;      // Dead letters only.
  std::vector<std::string> schema_versions;
  std::vector<std::string> message_ids;
  std::vector<std::string> fingerprints;      // Dead letters only (see fingerprint.h).
  // Bounds on the listing's time (dead_lettered_at, or next_retry_at for retries):
  // after <= t < before.
  absl::Time after = absl::InfinitePast();
  absl::Time before = absl::InfiniteFuture();

  // True when the filter matches everything.
  bool empty() const {
    return service.empty() && error_codes.empty() && error_classes.empty() && reasons.empty() &&
           schema_versions.empty() && message_ids.empty() && fingerprints.empty() &&
           after == absl::InfinitePast() && before == absl::InfiniteFuture();
  }
};

// A canonical, order-insensitive encoding of `f` (values sorted and deduplicated), so that two
// filters that select the same rows encode alike. Page tokens carry a hash of it.
std::string CanonicalFilterKey(const EnvelopeFilter& f);

}  // namespace retryd

#endif  // RETRYD_SERVER_CORE_FILTER_H_
