// Domain <-> proto conversion of envelopes, failures, attempt records and decisions. Used at the
// RPC edge and by the store (which keeps the envelope's variable-shape fields as a proto blob).
#ifndef RETRYD_SERVER_CONVERT_ENVELOPE_CONVERT_H_
#define RETRYD_SERVER_CONVERT_ENVELOPE_CONVERT_H_

#include "retryd/v1/envelope.pb.h"
#include "server/core/envelope.h"

namespace retryd {

void FailureToProto(const Failure& f, v1::Failure* out);
Failure FailureFromProto(const v1::Failure& f);

void AttemptRecordToProto(const AttemptRecord& r, v1::AttemptRecord* out);
AttemptRecord AttemptRecordFromProto(const v1::AttemptRecord& r);

// Every field; the payload only when `with_payload`.
void EnvelopeToProto(const Envelope& e, bool with_payload, v1::Envelope* out);
// The worker-owned fields (1..10) only; server-owned fields are ignored on input.
Envelope WorkerEnvelopeFromProto(const v1::Envelope& e);

void DecisionToProto(const Decision& d, v1::Decision* out);

// The store's blob of variable-shape fields: trace_id, content_type, source, headers,
// last_error and history.
std::string EncodeEnvelopeDetails(const Envelope& e);
// Fills those fields of `e` from a blob; false if the blob does not parse.
bool DecodeEnvelopeDetails(const std::string& blob, Envelope* e);

}  // namespace retryd

#endif  // RETRYD_SERVER_CONVERT_ENVELOPE_CONVERT_H_
