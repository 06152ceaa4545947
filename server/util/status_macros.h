// Small local replacements for the Status macros that Debian 12's Abseil (20220623) lacks.
#ifndef RETRYD_SERVER_UTIL_STATUS_MACROS_H_
#define RETRYD_SERVER_UTIL_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Returns from the enclosing function when `expr` (an absl::Status) is not OK.
#define RETURN_IF_ERROR(expr)                        \
  do {                                               \
    ::absl::Status retryd_status_ = (expr);          \
    if (!retryd_status_.ok()) return retryd_status_; \
  } while (false)

#define RETRYD_CONCAT_INNER_(a, b) a##b
#define RETRYD_CONCAT_(a, b) RETRYD_CONCAT_INNER_(a, b)

// `ASSIGN_OR_RETURN(auto x, F());` declares x from an OK StatusOr, or returns its Status.
#define ASSIGN_OR_RETURN(lhs, expr) \
  RETRYD_ASSIGN_OR_RETURN_IMPL_(RETRYD_CONCAT_(retryd_statusor_, __LINE__), lhs, expr)
#define RETRYD_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return tmp.status();                 \
  lhs = std::move(tmp).value()

#endif  // RETRYD_SERVER_UTIL_STATUS_MACROS_H_
