#include "client/cli/version_cmd.h"

#include <ostream>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "client/cli/app.h"
#include "google/protobuf/stubs/common.h"
#include "google/protobuf/struct.pb.h"
#include "grpcpp/grpcpp.h"

namespace retryd::cli {
namespace {

std::string ProtobufVersion() {
  constexpr int kVersion = GOOGLE_PROTOBUF_VERSION;  // e.g. 3021012
  return absl::StrCat(kVersion / 1000000, ".", kVersion / 1000 % 1000, ".", kVersion % 1000);
}

int RunVersion(const CliContext& ctx) {
  const std::string grpc_version = grpc::Version();
  if (ctx.output() == OutputFormat::kJson) {
    google::protobuf::Struct doc;
    (*doc.mutable_fields())["version"].set_string_value(RetryctlVersion());
    (*doc.mutable_fields())["grpcVersion"].set_string_value(grpc_version);
    (*doc.mutable_fields())["protobufVersion"].set_string_value(ProtobufVersion());
    return PrintJson(ctx, doc);
  }
  *ctx.out << FormatVersion(RetryctlVersion(), grpc_version, ProtobufVersion()) << std::endl;
  return kExitOk;
}

}  // namespace

std::string FormatVersion(const std::string& retryctl, const std::string& grpc,
                          const std::string& protobuf) {
  return absl::StrCat("retryctl ", retryctl, " (gRPC ", grpc, ", protobuf ", protobuf, ")");
}

void AddVersionCommands(CLI::App* app, CliContext* ctx) {
  app->add_subcommand("version", "Print the version of retryctl")->callback([ctx] {
    ctx->action = [ctx] { return RunVersion(*ctx); };
  });
}

}  // namespace retryd::cli
