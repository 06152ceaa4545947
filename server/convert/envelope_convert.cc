#include "server/convert/envelope_convert.h"

#include "server/util/time_conversion.h"

namespace retryd {

void FailureToProto(const Failure& f, v1::Failure* out) {
  out->set_error_code(f.error_code);
  out->set_error_class(static_cast<v1::ErrorClass>(f.error_class));
  out->set_message(f.message);
  out->set_http_status(f.http_status);
  if (f.retry_after > absl::ZeroDuration()) DurationToProto(f.retry_after, out->mutable_retry_after());
}

Failure FailureFromProto(const v1::Failure& f) {
  Failure out;
  out.error_code = f.error_code();
  out.error_class = static_cast<ErrorClass>(f.error_class());
  out.message = f.message();
  out.http_status = f.http_status();
  if (f.has_retry_after()) out.retry_after = DurationFromProto(f.retry_after());
  return out;
}

void AttemptRecordToProto(const AttemptRecord& r, v1::AttemptRecord* out) {
  out->set_attempt(r.attempt);
  TimeToProto(r.failed_at, out->mutable_failed_at());
  out->set_error_code(r.error_code);
  out->set_error_class(static_cast<v1::ErrorClass>(r.error_class));
  out->set_message(r.message);
  DurationToProto(r.delay, out->mutable_delay());
}

AttemptRecord AttemptRecordFromProto(const v1::AttemptRecord& r) {
  AttemptRecord out;
  out.attempt = r.attempt();
  out.failed_at = TimeFromProto(r.failed_at());
  out.error_code = r.error_code();
  out.error_class = static_cast<ErrorClass>(r.error_class());
  out.message = r.message();
  out.delay = DurationFromProto(r.delay());
  return out;
}

void EnvelopeToProto(const Envelope& e, bool with_payload, v1::Envelope* out) {
  out->set_service(e.service);
  out->set_message_id(e.message_id);
  out->set_trace_id(e.trace_id);
  out->set_attempt(e.attempt);
  TimeToProto(e.first_seen_at, out->mutable_first_seen_at());
  if (with_payload) out->set_payload(e.payload);
  out->set_content_type(e.content_type);
  out->set_schema_version(e.schema_version);
  out->set_source(e.source);
  for (const auto& [k, v] : e.headers) (*out->mutable_headers())[k] = v;
  out->set_state(static_cast<v1::EnvelopeState>(e.state));
  out->set_max_attempts(e.max_attempts);
  if (e.state == EnvelopeState::kScheduled) TimeToProto(e.next_retry_at, out->mutable_next_retry_at());
  if (e.state == EnvelopeState::kLeased) {
    TimeToProto(e.lease_expires_at, out->mutable_lease_expires_at());
  }
  if (e.state == EnvelopeState::kDeadLettered) {
    out->set_dead_letter_reason(static_cast<v1::DeadLetterReason>(e.dead_letter_reason));
    TimeToProto(e.dead_lettered_at, out->mutable_dead_lettered_at());
  }
  if (!e.history.empty() || !e.last_error.error_code.empty() || !e.last_error.message.empty()) {
    FailureToProto(e.last_error, out->mutable_last_error());
  }
  for (const AttemptRecord& r : e.history) AttemptRecordToProto(r, out->add_history());
  TimeToProto(e.created_at, out->mutable_created_at());
  TimeToProto(e.updated_at, out->mutable_updated_at());
  TimeToProto(RetryLifeStart(e), out->mutable_retry_life_started_at());
}

Envelope WorkerEnvelopeFromProto(const v1::Envelope& e) {
  Envelope out;
  out.service = e.service();
  out.message_id = e.message_id();
  out.trace_id = e.trace_id();
  out.attempt = e.attempt();
  out.first_seen_at = e.has_first_seen_at() ? TimeFromProto(e.first_seen_at()) : absl::InfinitePast();
  out.payload = e.payload();
  out.content_type = e.content_type();
  out.schema_version = e.schema_version();
  out.source = e.source();
  out.headers.insert(e.headers().begin(), e.headers().end());
  return out;
}

void DecisionToProto(const Decision& d, v1::Decision* out) {
  out->set_kind(static_cast<v1::DecisionKind>(d.kind));
  out->set_reason(static_cast<v1::DeadLetterReason>(d.reason));
  if (d.kind == DecisionKind::kScheduled) {
    // Present only when a retry is pending at a time (never a made-up 1970 for a duplicate of a
    // leased or succeeded envelope).
    if (d.next_retry_at != absl::InfinitePast()) {
      TimeToProto(d.next_retry_at, out->mutable_next_retry_at());
    }
    DurationToProto(d.delay, out->mutable_delay());
  }
  out->set_attempt(d.attempt);
  out->set_duplicate(d.duplicate);
  out->set_error_class(static_cast<v1::ErrorClass>(d.error_class));
  out->set_state(static_cast<v1::EnvelopeState>(d.state));
}

std::string EncodeEnvelopeDetails(const Envelope& e) {
  v1::Envelope blob;
  blob.set_trace_id(e.trace_id);
  blob.set_content_type(e.content_type);
  blob.set_source(e.source);
  for (const auto& [k, v] : e.headers) (*blob.mutable_headers())[k] = v;
  FailureToProto(e.last_error, blob.mutable_last_error());
  for (const AttemptRecord& r : e.history) AttemptRecordToProto(r, blob.add_history());
  if (e.retry_life_started_at != absl::InfinitePast()) {
    TimeToProto(e.retry_life_started_at, blob.mutable_retry_life_started_at());
  }
  return blob.SerializeAsString();
}

bool DecodeEnvelopeDetails(const std::string& blob, Envelope* e) {
  v1::Envelope parsed;
  if (!parsed.ParseFromString(blob)) return false;
  e->trace_id = parsed.trace_id();
  e->content_type = parsed.content_type();
  e->source = parsed.source();
  e->headers.clear();
  e->headers.insert(parsed.headers().begin(), parsed.headers().end());
  e->last_error = FailureFromProto(parsed.last_error());
  e->history.clear();
  for (const auto& r : parsed.history()) e->history.push_back(AttemptRecordFromProto(r));
  e->retry_life_started_at = parsed.has_retry_life_started_at()
                                 ? TimeFromProto(parsed.retry_life_started_at())
                                 : absl::InfinitePast();
  return true;
}

}  // namespace retryd
