#include "client/cli/envelope_cmd.h"

#include <algorithm>
#include <fstream>
#include <ostream>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "client/cli/format.h"
#include "client/cli/table.h"
#include "retryd/v1/admin_service.grpc.pb.h"

namespace retryd::cli {
namespace {

// Longest message shown in a history row; the full last message is in "Last error".
constexpr size_t kHistoryMessageWidth = 80;

struct GetOptions {
  std::string service;
  std::string message_id;
  std::string payload_file;
};

bool WriteFile(const std::string& path, const std::string& data) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  if (!file) return false;
  file.write(data.data(), static_cast<std::streamsize>(data.size()));
  file.close();
  return !file.fail();
}

std::string FormatLastError(const retryd::v1::Failure& failure) {
  KeyValues fields = {
      {"Code", OrNone(failure.error_code())},
      {"Class", EnumLabel(retryd::v1::ErrorClass_descriptor(), failure.error_class())},
  };
  if (failure.http_status() != 0) {
    fields.emplace_back("HTTP status", absl::StrCat(failure.http_status()));
  }
  if (failure.has_retry_after()) {
    fields.emplace_back("Retry after", HumanDuration(failure.retry_after()));
  }
  fields.emplace_back("Message", OrNone(failure.message()));
  return absl::StrCat("Last error:\n", RenderKeyValues(fields, "  "));
}

std::string FormatHistory(const retryd::v1::Envelope& envelope) {
  Table table({"ATTEMPT", "FAILED_AT", "CLASS", "ERROR_CODE", "DELAY", "MESSAGE"});
  for (const retryd::v1::AttemptRecord& record : envelope.history()) {
    table.AddRow({
        absl::StrCat(record.attempt()),
        FormatTimestamp(record.failed_at()),
        EnumLabel(retryd::v1::ErrorClass_descriptor(), record.error_class()),
        record.error_code(),
        HumanDuration(record.delay()),
        SanitizeCell(record.message(), kHistoryMessageWidth),
    });
  }
  return absl::StrCat("History:\n", table.Render(/*with_headers=*/true, "  "));
}

}  // namespace

int RunGetEnvelope(const CliContext& ctx, const std::string& service,
                   const std::string& message_id, const std::string& payload_file,
                   bool expect_dead_letter) {
  const ConnectionOptions conn = ctx.connection();
  auto stub = retryd::v1::AdminService::NewStub(CreateChannel(conn));
  grpc::ClientContext call;
  PrepareContext(conn, &call);
  retryd::v1::GetEnvelopeRequest request;
  request.set_service(service);
  request.set_message_id(message_id);
  retryd::v1::GetEnvelopeResponse response;
  const grpc::Status status = stub->GetEnvelope(&call, request, &response);
  if (!status.ok()) return ReportRpcError(ctx, status);

  if (!payload_file.empty() && !WriteFile(payload_file, response.envelope().payload())) {
    return ReportLocalError(ctx, absl::StrCat("cannot write payload to ", payload_file));
  }
  if (expect_dead_letter && response.envelope().state() != retryd::v1::DEAD_LETTERED) {
    *ctx.err << "Note: " << service << "/" << message_id << " is not a dead letter (state "
             << EnumLabel(retryd::v1::EnvelopeState_descriptor(), response.envelope().state())
             << ")." << std::endl;
  }
  if (ctx.output() == OutputFormat::kJson) return PrintJson(ctx, response);
  *ctx.out << FormatEnvelopeDetail(response.envelope(), payload_file);
  return kExitOk;
}

std::string FormatPayload(const std::string& payload) {
  if (payload.empty()) return "Payload:  (empty)\n";
  std::string out;
  if (IsPrintableUtf8(payload)) {
    absl::StrAppend(&out, "Payload (", payload.size(), " bytes, text):\n", payload);
  } else {
    absl::StrAppend(&out, "Payload (", payload.size(), " bytes, base64):\n",
                    absl::Base64Escape(payload));
  }
  if (out.back() != '\n') out.push_back('\n');
  return out;
}

std::string FormatEnvelopeDetail(const retryd::v1::Envelope& e, const std::string& payload_file) {
  std::string attempts = absl::StrCat(e.attempt());
  if (e.max_attempts() > 0) absl::StrAppend(&attempts, " of ", e.max_attempts());

  KeyValues fields = {
      {"Service", e.service()},
      {"Message ID", e.message_id()},
      {"State", EnumLabel(retryd::v1::EnvelopeState_descriptor(), e.state())},
      {"Attempts", attempts},
      {"Trace ID", OrNone(e.trace_id())},
      {"Source", OrNone(e.source())},
      {"Content type", OrNone(e.content_type())},
      {"Schema version", OrNone(e.schema_version())},
      {"First seen", FormatTimestamp(e.first_seen_at())},
      {"Created", FormatTimestamp(e.created_at())},
      {"Updated", FormatTimestamp(e.updated_at())},
  };
  // A replay started a new retry life: its deadline counts from then, not from first seen.
  if (e.has_retry_life_started_at() &&
      (e.retry_life_started_at().seconds() != e.first_seen_at().seconds() ||
       e.retry_life_started_at().nanos() != e.first_seen_at().nanos())) {
    fields.emplace_back("Retry life from", FormatTimestamp(e.retry_life_started_at()));
  }
  if (e.has_next_retry_at()) fields.emplace_back("Next retry", FormatTimestamp(e.next_retry_at()));
  if (e.has_lease_expires_at()) {
    fields.emplace_back("Lease expires", FormatTimestamp(e.lease_expires_at()));
  }
  if (e.has_dead_lettered_at() || e.dead_letter_reason() != 0) {
    fields.emplace_back("Dead-lettered", FormatTimestamp(e.dead_lettered_at()));
    fields.emplace_back(
        "Reason", EnumLabel(retryd::v1::DeadLetterReason_descriptor(), e.dead_letter_reason()));
  }

  std::string out = RenderKeyValues(fields);
  if (!e.headers().empty()) {
    KeyValues headers;
    for (const auto& [key, value] : e.headers()) headers.emplace_back(key, value);
    std::sort(headers.begin(), headers.end());
    absl::StrAppend(&out, "Headers:\n", RenderKeyValues(headers, "  "));
  }
  if (e.has_last_error()) absl::StrAppend(&out, "\n", FormatLastError(e.last_error()));
  if (!e.history().empty()) absl::StrAppend(&out, "\n", FormatHistory(e));
  out.push_back('\n');
  if (payload_file.empty()) {
    absl::StrAppend(&out, FormatPayload(e.payload()));
  } else {
    absl::StrAppend(&out, "Payload (", e.payload().size(), " bytes):  written to ", payload_file,
                    "\n");
  }
  return out;
}

void AddEnvelopeCommands(CLI::App* app, CliContext* ctx) {
  auto opts = std::make_shared<GetOptions>();
  CLI::App* get = app->add_subcommand(
      "get", "Show one envelope: fields, last error, attempt history and payload");
  get->add_option("SERVICE", opts->service, "Service of the envelope")->required();
  get->add_option("MESSAGE_ID", opts->message_id, "Message id of the envelope")->required();
  get->add_option("--payload-file", opts->payload_file,
                  "Write the raw payload to this file instead of printing it");
  get->callback([ctx, opts] {
    ctx->action = [ctx, opts] {
      return RunGetEnvelope(*ctx, opts->service, opts->message_id, opts->payload_file,
                            /*expect_dead_letter=*/false);
    };
  });
}

}  // namespace retryd::cli
