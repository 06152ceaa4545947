#include "client/cli/circuit_cmd.h"

#include <memory>
#include <ostream>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/cli/format.h"
#include "client/cli/services_cmd.h"
#include "client/cli/table.h"
#include "retryd/v1/admin_service.grpc.pb.h"
#include "retryd/v1/retry_service.grpc.pb.h"

namespace retryd::cli {
namespace {

struct CircuitOptions {
  std::string service;
  std::string note;
};

std::string StateLabel(int state) {
  return EnumLabel(retryd::v1::CircuitState_descriptor(), state);
}

int RunGet(const CliContext& ctx, const CircuitOptions& opts) {
  const ConnectionOptions conn = ctx.connection();
  auto stub = retryd::v1::RetryService::NewStub(CreateChannel(conn));
  grpc::ClientContext call;
  PrepareContext(conn, &call);
  retryd::v1::GetCircuitRequest request;
  request.set_service(opts.service);
  retryd::v1::GetCircuitResponse response;
  const grpc::Status status = stub->GetCircuit(&call, request, &response);
  if (!status.ok()) return ReportRpcError(ctx, status);
  if (ctx.output() == OutputFormat::kJson) return PrintJson(ctx, response);
  *ctx.out << FormatCircuitTable(opts.service, response, ctx.headers());
  return kExitOk;
}

int RunOverride(const CliContext& ctx, const CircuitOptions& opts,
                retryd::v1::CircuitOverride mode) {
  const ConnectionOptions conn = ctx.connection();
  auto stub = retryd::v1::AdminService::NewStub(CreateChannel(conn));
  grpc::ClientContext call;
  PrepareContext(conn, &call);
  retryd::v1::SetCircuitOverrideRequest request;
  request.set_service(opts.service);
  request.set_override(mode);
  request.set_note(opts.note);
  retryd::v1::SetCircuitOverrideResponse response;
  const grpc::Status status = stub->SetCircuitOverride(&call, request, &response);
  if (!status.ok()) return ReportRpcError(ctx, status);
  if (ctx.output() == OutputFormat::kJson) return PrintJson(ctx, response);
  *ctx.out << FormatOverrideTable(opts.service, response, ctx.headers());
  return kExitOk;
}

// `circuit open|close|auto SERVICE [--note TEXT]`.
void AddOverrideCommand(CLI::App* circuit, CliContext* ctx, const std::string& name,
                        const std::string& help, retryd::v1::CircuitOverride mode) {
  auto opts = std::make_shared<CircuitOptions>();
  CLI::App* cmd = circuit->add_subcommand(name, help);
  cmd->add_option("SERVICE", opts->service, "The service")->required();
  cmd->add_option("--note", opts->note, "Why (recorded with the override; at most 1024 bytes)");
  cmd->callback([ctx, opts, mode] {
    ctx->action = [ctx, opts, mode] { return RunOverride(*ctx, *opts, mode); };
  });
}

}  // namespace

std::string BudgetCell(int64_t remaining) {
  return remaining < 0 ? std::string("unlimited") : absl::StrCat(remaining);
}

std::string FormatCircuitTable(const std::string& service,
                               const retryd::v1::GetCircuitResponse& circuit, bool headers) {
  Table table({"SERVICE", "STATE", "SINCE", "NEXT_PROBE", "FAILURE_RATE"});
  table.AddRow({
      service,
      StateLabel(circuit.state()),
      FormatTimestamp(circuit.since()),
      FormatTimestamp(circuit.next_probe_at()),
      absl::StrFormat("%.1f%%", circuit.failure_rate() * 100),
  });
  return table.Render(headers);
}

std::string FormatCircuitListTable(const retryd::v1::ListServicesResponse& response,
                                   bool headers) {
  Table table({"SERVICE", "CIRCUIT", "BUDGET_LEFT"});
  for (const retryd::v1::ServiceSummary& s : response.services()) {
    table.AddRow({s.service(), StateLabel(s.circuit_state()), BudgetCell(s.budget_remaining())});
  }
  return table.Render(headers);
}

std::string FormatOverrideTable(const std::string& service,
                                const retryd::v1::SetCircuitOverrideResponse& response,
                                bool headers) {
  Table table({"SERVICE", "STATE", "OVERRIDE"});
  table.AddRow({service, StateLabel(response.state()),
                EnumLabel(retryd::v1::CircuitOverride_descriptor(), response.override())});
  return table.Render(headers);
}

void AddCircuitCommands(CLI::App* app, CliContext* ctx) {
  CLI::App* circuit =
      app->add_subcommand("circuit", "Show or override services' fleet-wide circuit breakers");
  circuit->require_subcommand(1);

  auto get_opts = std::make_shared<CircuitOptions>();
  CLI::App* get = circuit->add_subcommand(
      "get", "A service's circuit: state, since when, next probe, failure rate");
  get->add_option("SERVICE", get_opts->service, "The service")->required();
  get->callback([ctx, get_opts] {
    ctx->action = [ctx, get_opts] { return RunGet(*ctx, *get_opts); };
  });

  circuit->add_subcommand("list", "Every service's circuit state and retry budget left")
      ->callback([ctx] {
        ctx->action = [ctx] {
          PageFlags every;  // Every service: all pages.
          every.all = true;
          return RunListServices(*ctx, "retryctl circuit list", FormatCircuitListTable, every);
        };
      });

  AddOverrideCommand(circuit, ctx, "open",
                     "Force the circuit OPEN: nothing is leased until 'close' or 'auto'",
                     retryd::v1::FORCE_OPEN);
  AddOverrideCommand(circuit, ctx, "close",
                     "Force the circuit CLOSED, whatever the failure rate, until 'auto'",
                     retryd::v1::FORCE_CLOSED);
  AddOverrideCommand(circuit, ctx, "auto",
                     "Return the circuit to the breaker (from a forced OPEN: HALF_OPEN first)",
                     retryd::v1::AUTO);
}

}  // namespace retryd::cli
