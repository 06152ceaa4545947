#include "client/cli/health_cmd.h"

#include <ostream>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "client/cli/wire.h"
#include "google/protobuf/struct.pb.h"
#include "grpcpp/completion_queue.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/slice.h"

namespace retryd::cli {
namespace {

struct HealthOptions {
  std::string service_name;  // "" = the server as a whole
};

// Runs the unary Check call synchronously on a private completion queue.
grpc::Status CallHealthCheck(const ConnectionOptions& conn, const std::string& request_bytes,
                             std::string* response_bytes) {
  grpc::GenericStub stub(CreateChannel(conn));
  grpc::ClientContext call;
  PrepareContext(conn, &call);
  grpc::Slice slice(request_bytes);
  const grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  grpc::Status status;
  grpc::CompletionQueue cq;
  {
    auto rpc = stub.PrepareUnaryCall(&call, kHealthCheckMethod, request, &cq);
    if (rpc == nullptr) return grpc::Status(grpc::StatusCode::INTERNAL, "cannot start the call");
    rpc->StartCall();
    int finish_tag = 0;
    rpc->Finish(&response, &status, &finish_tag);
    void* tag = nullptr;
    bool ok = false;
    if (!cq.Next(&tag, &ok) || tag != &finish_tag) {
      status = grpc::Status(grpc::StatusCode::INTERNAL, "health call did not complete");
    }
  }
  cq.Shutdown();
  void* tag = nullptr;
  bool ok = false;
  while (cq.Next(&tag, &ok)) {
  }
  if (!status.ok()) return status;

  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) {
    return grpc::Status(grpc::StatusCode::INTERNAL, "cannot read the health response");
  }
  response_bytes->clear();
  for (const grpc::Slice& s : slices) {
    response_bytes->append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return grpc::Status::OK;
}

int RunHealth(const CliContext& ctx, const HealthOptions& opts) {
  std::string response;
  const grpc::Status status =
      CallHealthCheck(ctx.connection(), EncodeHealthCheckRequest(opts.service_name), &response);
  if (!status.ok()) return ReportRpcError(ctx, status);
  int serving = 0;
  if (!DecodeHealthCheckResponse(response, &serving)) {
    return ReportLocalError(ctx, "cannot parse the health check response");
  }
  const std::string name = HealthStatusName(serving);
  if (ctx.output() == OutputFormat::kJson) {
    google::protobuf::Struct doc;
    (*doc.mutable_fields())["status"].set_string_value(name);
    const int rc = PrintJson(ctx, doc);
    if (rc != kExitOk) return rc;
  } else {
    *ctx.out << name << std::endl;
  }
  if (serving == kHealthServing) return kExitOk;
  const std::string subject =
      opts.service_name.empty() ? "server" : absl::StrCat("service \"", opts.service_name, "\"");
  *ctx.err << "Error: " << subject << " is " << name << std::endl;
  return kExitNotServing;
}

}  // namespace

std::string EncodeHealthCheckRequest(const std::string& service) {
  std::string out;
  if (!service.empty()) AppendLengthDelimitedField(1, service, &out);
  return out;
}

bool DecodeHealthCheckResponse(const std::string& data, int* status) {
  std::vector<WireField> fields;
  if (!ParseWireFields(data, &fields)) return false;
  *status = 0;
  for (const WireField& f : fields) {
    if (f.number == 1 && f.wire_type == 0) *status = static_cast<int>(f.number_value);
  }
  return true;
}

std::string HealthStatusName(int status) {
  switch (status) {
    case 0: return "UNKNOWN";
    case 1: return "SERVING";
    case 2: return "NOT_SERVING";
    case 3: return "SERVICE_UNKNOWN";
    default: return absl::StrCat(status);
  }
}

void AddHealthCommands(CLI::App* app, CliContext* ctx) {
  auto opts = std::make_shared<HealthOptions>();
  CLI::App* cmd = app->add_subcommand(
      "health", "Check the server's health (grpc.health.v1); exit 0 only if SERVING");
  cmd->add_option("--service-name", opts->service_name,
                  "Health service name to check (\"\" = the server as a whole)");
  cmd->callback([ctx, opts] { ctx->action = [ctx, opts] { return RunHealth(*ctx, *opts); }; });
}

}  // namespace retryd::cli
