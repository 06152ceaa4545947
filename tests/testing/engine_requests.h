// Domain values that engine-level tests submit: an envelope of the service "billing" and a
// transient failure (the engine takes validated domain values, not protos).
#ifndef RETRYD_TESTS_TESTING_ENGINE_REQUESTS_H_
#define RETRYD_TESTS_TESTING_ENGINE_REQUESTS_H_

#include <string>

#include "server/core/envelope.h"

namespace retryd::testing {

// A first failure's envelope: service "billing", `message_id`, a one-byte payload.
inline Envelope BillingEnvelope(const std::string& message_id) {
  Envelope e;
  e.service = "billing";
  e.message_id = message_id;
  e.payload = "p";
  return e;
}

// UPSTREAM_TIMEOUT, TRANSIENT.
inline Failure TransientFailure() {
  Failure f;
  f.error_code = "UPSTREAM_TIMEOUT";
  f.error_class = ErrorClass::kTransient;
  return f;
}

}  // namespace retryd::testing

#endif  // RETRYD_TESTS_TESTING_ENGINE_REQUESTS_H_
