#include "server/config/config.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"
#include "server/util/status_macros.h"
#include "server/util/time_conversion.h"

namespace retryd {
namespace {

constexpr absl::Duration kDay = absl::Hours(24);
constexpr int64_t kMiB = int64_t{1} << 20;

// "a.b" from path "a" and field "b" (just "b" when the path is empty).
std::string Sub(absl::string_view path, absl::string_view field) {
  return path.empty() ? std::string(field) : absl::StrCat(path, ".", field);
}

std::string Fmt(absl::Duration d) {
  return d == absl::ZeroDuration() ? "0s" : absl::FormatDuration(d);
}

absl::Status Invalid(absl::string_view path, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
}

// The range checks: OK when lo <= v <= hi (NaN never is), else "<path>: must be between lo and
// hi, got v<note>".
template <typename T, typename F>
absl::Status CheckRange(absl::string_view path, T v, T lo, T hi, F fmt,
                        absl::string_view note = "") {
  if (v >= lo && v <= hi) return absl::OkStatus();
  return Invalid(path, absl::StrCat("must be between ", fmt(lo), " and ", fmt(hi), ", got ",
                                    fmt(v), note));
}
absl::Status InRange(absl::string_view path, absl::Duration v, absl::Duration lo,
                     absl::Duration hi, absl::string_view note = "") {
  return CheckRange(path, v, lo, hi, Fmt, note);
}
absl::Status InRange(absl::string_view path, double v, double lo, double hi) {
  return CheckRange(path, v, lo, hi, [](double x) { return absl::StrCat(x); });
}
absl::Status InRange(absl::string_view path, int64_t v, int64_t lo, int64_t hi) {
  return CheckRange(path, v, lo, hi, [](int64_t x) { return absl::StrCat(x); });
}

// Reads an optional Duration field into *out: unset keeps *out, set must lie in [lo, hi].
absl::Status ReadDuration(absl::string_view path, bool has, const google::protobuf::Duration& d,
                          absl::Duration lo, absl::Duration hi, absl::Duration* out) {
  if (!has) return absl::OkStatus();
  const absl::Duration v = DurationFromProto(d);
  RETURN_IF_ERROR(InRange(path, v, lo, hi));
  *out = v;
  return absl::OkStatus();
}

// Like ReadDuration, but 0 is also accepted and means "none".
absl::Status ReadOptionalDuration(absl::string_view path, bool has,
                                  const google::protobuf::Duration& d, absl::Duration lo,
                                  absl::Duration hi, absl::string_view zero_means,
                                  absl::Duration* out) {
  if (!has) return absl::OkStatus();
  const absl::Duration v = DurationFromProto(d);
  if (v != absl::ZeroDuration() && !(v >= lo && v <= hi)) {
    return Invalid(path, absl::StrCat("must be 0 (", zero_means, ") or between ", Fmt(lo),
                                      " and ", Fmt(hi), ", got ", Fmt(v)));
  }
  *out = v;
  return absl::OkStatus();
}

absl::Status ReadNonNegativeDuration(absl::string_view path, bool has,
                                     const google::protobuf::Duration& d, absl::Duration* out) {
  if (!has) return absl::OkStatus();
  const absl::Duration v = DurationFromProto(d);
  if (v < absl::ZeroDuration()) {
    return Invalid(path, absl::StrCat("must not be negative, got ", Fmt(v)));
  }
  *out = v;
  return absl::OkStatus();
}

absl::StatusOr<BackoffSpec> BackoffFromProto(const v1::Backoff& b, BackoffSpec spec,
                                             absl::string_view path) {
  RETURN_IF_ERROR(ReadDuration(Sub(path, "initial"), b.has_initial(), b.initial(),
                               absl::Milliseconds(1), kDay, &spec.initial));
  if (b.has_multiplier()) {
    RETURN_IF_ERROR(InRange(Sub(path, "multiplier"), b.multiplier(), 1.0, 100.0));
    spec.multiplier = b.multiplier();
  }
  if (b.has_max()) spec.max = DurationFromProto(b.max());
  RETURN_IF_ERROR(InRange(Sub(path, "max"), spec.max, spec.initial, 7 * kDay,
                          b.has_max() ? "" : " (the default; set max explicitly)"));
  switch (b.jitter()) {
    case v1::JITTER_KIND_UNSPECIFIED:
      spec.jitter = JitterKind::kProportional;
      break;
    case v1::NONE:
    case v1::FULL:
    case v1::EQUAL:
    case v1::DECORRELATED:
    case v1::PROPORTIONAL:
      spec.jitter = static_cast<JitterKind>(b.jitter());
      break;
    default:
      return Invalid(Sub(path, "jitter"),
                     absl::StrCat("must be NONE, FULL, EQUAL, DECORRELATED or PROPORTIONAL, got ",
                                  b.jitter()));
  }
  if (b.has_jitter_ratio()) {
    RETURN_IF_ERROR(InRange(Sub(path, "jitter_ratio"), b.jitter_ratio(), 0.0, 1.0));
    spec.jitter_ratio = b.jitter_ratio();
  }
  return spec;
}

// TRANSIENT, RECOVERABLE or PERMANENT; `unspecified` stands for ERROR_CLASS_UNSPECIFIED
// (kUnspecified: the field is required).
absl::StatusOr<ErrorClass> ErrorClassFromProto(int v, ErrorClass unspecified,
                                               absl::string_view path) {
  switch (v) {
    case v1::TRANSIENT:
    case v1::RECOVERABLE:
    case v1::PERMANENT:
      return static_cast<ErrorClass>(v);
    case v1::ERROR_CLASS_UNSPECIFIED:
      if (unspecified != ErrorClass::kUnspecified) return unspecified;
      return Invalid(path, "required: TRANSIENT, RECOVERABLE or PERMANENT");
    default:
      return Invalid(path, absl::StrCat("must be TRANSIENT, RECOVERABLE or PERMANENT, got ", v));
  }
}

absl::Status ClassificationFromProto(const v1::Classification& c, absl::string_view path,
                                     Policy* p) {
  for (int j = 0; j < c.rules_size(); ++j) {
    const v1::ClassificationRule& r = c.rules(j);
    const std::string rule_path = absl::StrCat(path, ".rules[", j, "]");
    const std::string code_path = Sub(rule_path, "error_code");
    const std::string& code = r.error_code();
    if (code.empty()) return Invalid(code_path, "required");
    if (code.find('*') < code.size() - 1) {
      return Invalid(code_path, absl::StrCat("'*' is only allowed at the end, got \"",
                                             absl::CEscape(code), "\""));
    }
    for (const ClassificationRule& earlier : p->rules) {
      if (earlier.error_code == code) {
        return Invalid(code_path, absl::StrCat("duplicate rule for \"", absl::CEscape(code), "\""));
      }
    }
    ASSIGN_OR_RETURN(ErrorClass cls, ErrorClassFromProto(r.error_class(), ErrorClass::kUnspecified,
                                                         Sub(rule_path, "error_class")));
    p->rules.push_back(ClassificationRule{code, cls});
  }
  ASSIGN_OR_RETURN(p->unclassified, ErrorClassFromProto(c.unclassified(), ErrorClass::kTransient,
                                                        Sub(path, "unclassified")));
  return absl::OkStatus();
}

absl::Status BudgetFromProto(const v1::RetryBudget& b, absl::string_view path,
                             RetryBudgetSpec* out) {
  out->enabled = b.has_enabled() ? b.enabled() : true;
  RETURN_IF_ERROR(ReadDuration(Sub(path, "window"), b.has_window(), b.window(), absl::Seconds(1),
                               kDay, &out->window));
  if (b.has_ratio()) {
    RETURN_IF_ERROR(InRange(Sub(path, "ratio"), b.ratio(), 0.0, 100.0));
    out->ratio = b.ratio();
  }
  if (b.has_min_retries_per_window()) {
    RETURN_IF_ERROR(InRange(Sub(path, "min_retries_per_window"), b.min_retries_per_window(),
                            int64_t{0}, int64_t{1000000000}));
    out->min_retries_per_window = b.min_retries_per_window();
  }
  switch (b.when_exhausted()) {
    case v1::BUDGET_EXHAUSTED_ACTION_UNSPECIFIED:
      out->when_exhausted = BudgetExhaustedAction::kDefer;
      break;
    case v1::DEFER:
    case v1::DEAD_LETTER:
      out->when_exhausted = static_cast<BudgetExhaustedAction>(b.when_exhausted());
      break;
    default:
      return Invalid(Sub(path, "when_exhausted"),
                     absl::StrCat("must be DEFER or DEAD_LETTER, got ", b.when_exhausted()));
  }
  return absl::OkStatus();
}

absl::Status CircuitFromProto(const v1::CircuitBreaker& c, absl::string_view path,
                              CircuitSpec* out) {
  out->enabled = c.has_enabled() ? c.enabled() : true;
  RETURN_IF_ERROR(ReadDuration(Sub(path, "window"), c.has_window(), c.window(), absl::Seconds(1),
                               kDay, &out->window));
  if (c.has_failure_rate_threshold()) {
    const double v = c.failure_rate_threshold();
    if (!(v > 0.0 && v <= 1.0)) {
      return Invalid(Sub(path, "failure_rate_threshold"),
                     absl::StrCat("must be in (0, 1], got ", v));
    }
    out->failure_rate_threshold = v;
  }
  if (c.has_minimum_calls()) {
    RETURN_IF_ERROR(InRange(Sub(path, "minimum_calls"), c.minimum_calls(), int64_t{1},
                            int64_t{1000000}));
    out->minimum_calls = c.minimum_calls();
  }
  RETURN_IF_ERROR(ReadDuration(Sub(path, "open_duration"), c.has_open_duration(),
                               c.open_duration(), absl::Seconds(1), kDay, &out->open_duration));
  if (c.has_max_open_duration()) out->max_open_duration = DurationFromProto(c.max_open_duration());
  RETURN_IF_ERROR(InRange(Sub(path, "max_open_duration"), out->max_open_duration,
                          out->open_duration, 7 * kDay,
                          c.has_max_open_duration() ? "" : " (the default; set it explicitly)"));
  if (c.has_half_open_trials()) {
    RETURN_IF_ERROR(InRange(Sub(path, "half_open_trials"), int64_t{c.half_open_trials()},
                            int64_t{1}, int64_t{1000}));
    out->half_open_trials = c.half_open_trials();
  }
  return absl::OkStatus();
}

absl::Status ReplayFromProto(const v1::ReplayPolicy& r, absl::string_view path, ReplaySpec* out) {
  if (r.has_max_per_second()) {
    RETURN_IF_ERROR(InRange(Sub(path, "max_per_second"), r.max_per_second(), 0.1, 100000.0));
    out->max_per_second = r.max_per_second();
  }
  out->blocked_schema_versions.assign(r.blocked_schema_versions().begin(),
                                      r.blocked_schema_versions().end());
  return absl::OkStatus();
}

}  // namespace

namespace {

// Parses `json` into `msg`, rejecting unknown fields; INVALID_ARGUMENT "<what>: <protobuf's
// message>" on error.
absl::Status ParseJsonInto(absl::string_view json, absl::string_view what,
                           google::protobuf::Message* msg) {
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), msg, options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", std::string(status.message())));
  }
  return absl::OkStatus();
}

// The contents of the file at `path` (`what` names it in errors: "config file").
absl::StatusOr<std::string> ReadWholeFile(const std::string& path, absl::string_view what) {
  std::ifstream in(path, std::ios::in | std::ios::binary);
  if (!in.is_open()) {
    return absl::NotFoundError(
        absl::StrCat(path, ": cannot open ", what, ": ", std::strerror(errno)));
  }
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad() || contents.fail()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": cannot read ", what));
  }
  return contents.str();
}

}  // namespace

absl::StatusOr<v1::ServerConfig> ParseServerConfigJson(absl::string_view json) {
  v1::ServerConfig cfg;
  RETURN_IF_ERROR(ParseJsonInto(json, "config", &cfg));
  return cfg;
}

absl::StatusOr<v1::ServerConfig> LoadServerConfigFile(const std::string& path) {
  ASSIGN_OR_RETURN(const std::string json, ReadWholeFile(path, "config file"));
  absl::StatusOr<v1::ServerConfig> cfg = ParseServerConfigJson(json);
  if (!cfg.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", cfg.status().message()));
  }
  return cfg;
}

absl::StatusOr<v1::AuthConfig> LoadAuthConfigFile(const std::string& path) {
  ASSIGN_OR_RETURN(const std::string json, ReadWholeFile(path, "auth file"));
  v1::AuthConfig auth;
  RETURN_IF_ERROR(ParseJsonInto(json, absl::StrCat(path, ": auth"), &auth));
  return auth;
}

absl::StatusOr<Policy> PolicyFromProto(const v1::Policy& proto, absl::string_view field_path) {
  Policy p;
  const std::string name_path = Sub(field_path, "name");
  if (proto.name().empty()) return Invalid(name_path, "required");
  if (!IsValidPolicyName(proto.name())) {
    return Invalid(name_path, absl::StrCat("must be \"default\", a service name "
                                           "([a-z0-9][a-z0-9._-]{0,63}) or a prefix pattern such "
                                           "as \"billing.*\", got \"",
                                           absl::CEscape(proto.name()), "\""));
  }
  p.name = proto.name();
  if (proto.has_max_attempts()) {
    RETURN_IF_ERROR(InRange(Sub(field_path, "max_attempts"), int64_t{proto.max_attempts()},
                            int64_t{1}, int64_t{1000}));
    p.max_attempts = proto.max_attempts();
  }
  RETURN_IF_ERROR(ReadOptionalDuration(Sub(field_path, "max_retry_duration"),
                                       proto.has_max_retry_duration(), proto.max_retry_duration(),
                                       absl::Seconds(1), 365 * kDay, "no deadline",
                                       &p.max_retry_duration));
  ASSIGN_OR_RETURN(p.backoff, BackoffFromProto(proto.backoff(), BackoffSpec::DefaultTransient(),
                                               Sub(field_path, "backoff")));
  ASSIGN_OR_RETURN(p.recoverable_backoff,
                   BackoffFromProto(proto.recoverable_backoff(), BackoffSpec::DefaultRecoverable(),
                                    Sub(field_path, "recoverable_backoff")));
  if (proto.has_honor_retry_after()) p.honor_retry_after = proto.honor_retry_after();
  RETURN_IF_ERROR(ReadDuration(Sub(field_path, "max_retry_after"), proto.has_max_retry_after(),
                               proto.max_retry_after(), absl::Seconds(1), 7 * kDay,
                               &p.max_retry_after));
  RETURN_IF_ERROR(
      ClassificationFromProto(proto.classification(), Sub(field_path, "classification"), &p));
  // A `budget` or `circuit` block turns the guard on (unless it says enabled: false); without
  // one the guard is off and retries run at the times backoff chose.
  if (proto.has_budget()) {
    RETURN_IF_ERROR(BudgetFromProto(proto.budget(), Sub(field_path, "budget"), &p.budget));
  }
  if (proto.has_circuit()) {
    RETURN_IF_ERROR(CircuitFromProto(proto.circuit(), Sub(field_path, "circuit"), &p.circuit));
  }
  const std::string dl_path = Sub(field_path, "dead_letter");
  RETURN_IF_ERROR(ReadNonNegativeDuration(Sub(dl_path, "retention"),
                                          proto.dead_letter().has_retention(),
                                          proto.dead_letter().retention(),
                                          &p.dead_letter.retention));
  RETURN_IF_ERROR(ReadNonNegativeDuration(Sub(dl_path, "escalation_age"),
                                          proto.dead_letter().has_escalation_age(),
                                          proto.dead_letter().escalation_age(),
                                          &p.dead_letter.escalation_age));
  RETURN_IF_ERROR(ReplayFromProto(proto.replay(), Sub(field_path, "replay"), &p.replay));
  return p;
}

absl::StatusOr<PolicySet> PolicySetFromConfig(const v1::ServerConfig& cfg) {
  std::vector<Policy> policies;
  policies.reserve(cfg.policies_size());
  for (int i = 0; i < cfg.policies_size(); ++i) {
    ASSIGN_OR_RETURN(Policy p, PolicyFromProto(cfg.policies(i), absl::StrCat("policies[", i, "]")));
    policies.push_back(std::move(p));
  }
  return PolicySet::Create(std::move(policies));
}

namespace {

void BackoffToProto(const BackoffSpec& s, v1::Backoff* out) {
  DurationToProto(s.initial, out->mutable_initial());
  out->set_multiplier(s.multiplier);
  DurationToProto(s.max, out->mutable_max());
  out->set_jitter(static_cast<v1::JitterKind>(s.jitter));
  out->set_jitter_ratio(s.jitter_ratio);
}

}  // namespace

void PolicyToProto(const Policy& p, v1::Policy* out) {
  out->Clear();
  out->set_name(p.name);
  out->set_max_attempts(p.max_attempts);
  DurationToProto(p.max_retry_duration, out->mutable_max_retry_duration());
  BackoffToProto(p.backoff, out->mutable_backoff());
  BackoffToProto(p.recoverable_backoff, out->mutable_recoverable_backoff());
  out->set_honor_retry_after(p.honor_retry_after);
  DurationToProto(p.max_retry_after, out->mutable_max_retry_after());

  v1::Classification* c = out->mutable_classification();
  for (const ClassificationRule& r : p.rules) {
    v1::ClassificationRule* rule = c->add_rules();
    rule->set_error_code(r.error_code);
    rule->set_error_class(static_cast<v1::ErrorClass>(r.error_class));
  }
  c->set_unclassified(static_cast<v1::ErrorClass>(p.unclassified));

  v1::RetryBudget* b = out->mutable_budget();
  b->set_enabled(p.budget.enabled);
  DurationToProto(p.budget.window, b->mutable_window());
  b->set_ratio(p.budget.ratio);
  b->set_min_retries_per_window(p.budget.min_retries_per_window);
  b->set_when_exhausted(static_cast<v1::BudgetExhaustedAction>(p.budget.when_exhausted));

  v1::CircuitBreaker* cb = out->mutable_circuit();
  cb->set_enabled(p.circuit.enabled);
  DurationToProto(p.circuit.window, cb->mutable_window());
  cb->set_failure_rate_threshold(p.circuit.failure_rate_threshold);
  cb->set_minimum_calls(p.circuit.minimum_calls);
  DurationToProto(p.circuit.open_duration, cb->mutable_open_duration());
  DurationToProto(p.circuit.max_open_duration, cb->mutable_max_open_duration());
  cb->set_half_open_trials(p.circuit.half_open_trials);

  DurationToProto(p.dead_letter.retention, out->mutable_dead_letter()->mutable_retention());
  DurationToProto(p.dead_letter.escalation_age,
                  out->mutable_dead_letter()->mutable_escalation_age());

  v1::ReplayPolicy* r = out->mutable_replay();
  r->set_max_per_second(p.replay.max_per_second);
  for (const std::string& v : p.replay.blocked_schema_versions) r->add_blocked_schema_versions(v);
}

absl::StatusOr<Limits> LimitsFromProto(const v1::Limits& proto) {
  Limits limits;
  if (proto.has_max_payload_bytes()) {
    RETURN_IF_ERROR(InRange("limits.max_payload_bytes", proto.max_payload_bytes(), int64_t{1},
                            64 * kMiB));
    limits.max_payload_bytes = proto.max_payload_bytes();
  }
  if (proto.has_max_lease_response_bytes()) {
    RETURN_IF_ERROR(InRange("limits.max_lease_response_bytes", proto.max_lease_response_bytes(),
                            int64_t{64} << 10, 64 * kMiB));
    limits.max_lease_response_bytes = proto.max_lease_response_bytes();
  }
  if (proto.has_max_pending_requests()) {
    RETURN_IF_ERROR(InRange("limits.max_pending_requests", proto.max_pending_requests(),
                            int64_t{64}, int64_t{10000000}));
    limits.max_pending_requests = proto.max_pending_requests();
  }
  if (proto.has_min_free_bytes()) {
    RETURN_IF_ERROR(InRange("limits.min_free_bytes", proto.min_free_bytes(), int64_t{0},
                            int64_t{1} << 40));
    limits.min_free_bytes = proto.min_free_bytes();
  }
  RETURN_IF_ERROR(ReadDuration("limits.dedupe_window", proto.has_dedupe_window(),
                               proto.dedupe_window(), absl::ZeroDuration(), 30 * kDay,
                               &limits.dedupe_window));
  return limits;
}

}  // namespace retryd
