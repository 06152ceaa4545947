#include "server/console/api_relay.h"

#include <grpcpp/client_context.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/proto_buffer_reader.h>
#include <grpcpp/support/proto_buffer_writer.h>
#include <grpcpp/impl/codegen/proto_utils.h>

#include <algorithm>
#include <chrono>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/dynamic_message.h"
#include "google/protobuf/message.h"
#include "google/protobuf/util/json_util.h"
#include "nlohmann/json.hpp"
#include "retryd/v1/admin_service.grpc.pb.h"
#include "retryd/v1/retry_service.grpc.pb.h"

namespace retryd {
namespace {

constexpr absl::string_view kMethods[] = {
    "retryd.v1.AdminService/ListServices",
    "retryd.v1.AdminService/ListRetries",
    "retryd.v1.AdminService/ListDeadLetters",
    "retryd.v1.AdminService/GetEnvelope",
    "retryd.v1.AdminService/GetDeadLetterStats",
    "retryd.v1.AdminService/GetDeadLetterHistogram",
    "retryd.v1.AdminService/ListFailureGroups",
    "retryd.v1.AdminService/StartReplay",
    "retryd.v1.AdminService/GetReplay",
    "retryd.v1.AdminService/ListReplays",
    "retryd.v1.AdminService/CancelReplay",
    "retryd.v1.AdminService/PurgeDeadLetters",
    "retryd.v1.AdminService/SetCircuitOverride",
    "retryd.v1.AdminService/ListAuditEvents",
    "retryd.v1.RetryService/GetCircuit",
};

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return "INTERNAL";
  }
}

// The leading field path of an error message ("filter.error_codes[0]: ..."), or "".
std::string LeadingField(absl::string_view message) {
  const size_t colon = message.find(':');
  if (colon == absl::string_view::npos || colon == 0) return "";
  const absl::string_view head = message.substr(0, colon);
  for (char c : head) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' &&
        c != '[' && c != ']') {
      return "";
    }
  }
  return std::string(head);
}

const google::protobuf::MethodDescriptor* FindMethod(absl::string_view method) {
  const size_t slash = method.find('/');
  if (slash == absl::string_view::npos) return nullptr;
  const google::protobuf::ServiceDescriptor* service =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
          std::string(method.substr(0, slash)));
  if (service == nullptr) return nullptr;
  return service->FindMethodByName(std::string(method.substr(slash + 1)));
}

RelayResult Error(grpc::StatusCode code, absl::string_view message) {
  return RelayResult{HttpStatusFor(code), ErrorJson(code, message), code};
}

}  // namespace

absl::Span<const absl::string_view> ConsoleMethods() { return kMethods; }

bool IsConsoleMethod(absl::string_view method) {
  return std::find(std::begin(kMethods), std::end(kMethods), method) != std::end(kMethods);
}

int HttpStatusFor(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return 200;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::OUT_OF_RANGE: return 400;
    case grpc::StatusCode::UNAUTHENTICATED: return 401;
    case grpc::StatusCode::PERMISSION_DENIED: return 403;
    case grpc::StatusCode::NOT_FOUND: return 404;
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::FAILED_PRECONDITION: return 409;
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return 429;
    case grpc::StatusCode::UNIMPLEMENTED: return 501;
    case grpc::StatusCode::UNAVAILABLE: return 503;
    case grpc::StatusCode::DEADLINE_EXCEEDED: return 504;
    default: return 500;
  }
}

std::string ErrorJson(grpc::StatusCode code, absl::string_view message) {
  nlohmann::json j;
  j["code"] = CodeName(code);
  // Messages may quote untrusted input: replace invalid UTF-8 rather than fail.
  j["message"] = std::string(message);
  const std::string field = LeadingField(message);
  if (!field.empty()) j["field"] = field;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

RelayResult ApiRelay::Call(absl::string_view method, absl::string_view request_json,
                           absl::string_view bearer_token) const {
  const google::protobuf::MethodDescriptor* descriptor =
      IsConsoleMethod(method) ? FindMethod(method) : nullptr;
  if (descriptor == nullptr) {
    return Error(grpc::StatusCode::NOT_FOUND,
                 absl::StrCat("method: the console does not relay \"", method, "\""));
  }
  google::protobuf::MessageFactory* factory =
      google::protobuf::MessageFactory::generated_factory();
  std::unique_ptr<google::protobuf::Message> request(
      factory->GetPrototype(descriptor->input_type())->New());
  std::unique_ptr<google::protobuf::Message> response(
      factory->GetPrototype(descriptor->output_type())->New());
  google::protobuf::util::JsonParseOptions parse;
  parse.ignore_unknown_fields = false;
  const absl::string_view body = request_json.empty() ? absl::string_view("{}") : request_json;
  google::protobuf::util::Status parsed =
      google::protobuf::util::JsonStringToMessage(std::string(body), request.get(), parse);
  if (!parsed.ok()) {
    return Error(grpc::StatusCode::INVALID_ARGUMENT,
                 absl::StrCat("body: not a ", descriptor->input_type()->full_name(),
                              " in protobuf-JSON: ", parsed.message().as_string()));
  }

  grpc::Status status = Invoke(method, *request, response.get(), bearer_token);
  if (!status.ok()) return Error(status.error_code(), status.error_message());
  google::protobuf::util::JsonPrintOptions print;
  print.preserve_proto_field_names = true;
  print.always_print_primitive_fields = true;
  RelayResult result;
  google::protobuf::util::Status printed =
      google::protobuf::util::MessageToJsonString(*response, &result.json, print);
  if (!printed.ok()) return Error(grpc::StatusCode::INTERNAL, printed.message().as_string());
  return result;
}

grpc::Status ApiRelay::Invoke(absl::string_view method, const google::protobuf::Message& request,
                              google::protobuf::Message* response,
                              absl::string_view bearer_token) const {
  if (!IsConsoleMethod(method)) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "method: not relayed by the console");
  }
  grpc::ByteBuffer request_bytes;
  bool own_buffer = false;
  grpc::Status serialized =
      grpc::GenericSerialize<grpc::ProtoBufferWriter, google::protobuf::Message>(
          request, &request_bytes, &own_buffer);
  if (!serialized.ok()) return serialized;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  if (!bearer_token.empty()) {
    ctx.AddMetadata("authorization", absl::StrCat("Bearer ", bearer_token));
  }
  grpc::GenericStub stub(channel_);
  grpc::ByteBuffer response_bytes;
  grpc::Status status;
  absl::Notification done;
  stub.UnaryCall(&ctx, absl::StrCat("/", method), grpc::StubOptions(), &request_bytes,
                 &response_bytes, [&](grpc::Status s) {
                   status = std::move(s);
                   done.Notify();
                 });
  done.WaitForNotification();
  if (!status.ok()) return status;
  return grpc::GenericDeserialize<grpc::ProtoBufferReader, google::protobuf::Message>(
      &response_bytes, response);
}

}  // namespace retryd
