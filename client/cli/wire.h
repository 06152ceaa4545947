// A minimal reader and writer of the protobuf wire format, for the two messages retryctl handles
// without generated code: grpc.health.v1 HealthCheckRequest/Response (Debian 12 ships no
// health.proto) and the google.rpc.Status carried in grpc-status-details-bin (Debian 12 ships no
// google/rpc protos either). Everything else uses the generated retryd.v1 classes.
#ifndef RETRYD_CLIENT_CLI_WIRE_H_
#define RETRYD_CLIENT_CLI_WIRE_H_

#include <cstdint>
#include <string>
#include <vector>

namespace retryd::cli {

// One top-level field of a serialized message. Only VARINT (0), I64 (1), LEN (2) and I32 (5)
// fields are supported; groups make the parse fail.
struct WireField {
  int number = 0;
  int wire_type = 0;
  // VARINT, I64 and I32 values.
  uint64_t number_value = 0;
  // LEN values (strings, bytes, sub-messages, packed repeated fields).
  std::string bytes_value;
};

// Splits a serialized message into its top-level fields, in wire order. Returns false on
// malformed input (truncated, bad tag, group).
bool ParseWireFields(const std::string& data, std::vector<WireField>* fields);

// Appends field `number` as LEN with `value` to `out`.
void AppendLengthDelimitedField(int number, const std::string& value, std::string* out);

// Appends field `number` as VARINT with `value` to `out`.
void AppendVarintField(int number, uint64_t value, std::string* out);

}  // namespace retryd::cli

#endif  // RETRYD_CLIENT_CLI_WIRE_H_
