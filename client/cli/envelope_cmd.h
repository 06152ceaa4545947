// `retryctl get SERVICE MESSAGE_ID`: everything about one envelope (AdminService.GetEnvelope).
#ifndef RETRYD_CLIENT_CLI_ENVELOPE_CMD_H_
#define RETRYD_CLIENT_CLI_ENVELOPE_CMD_H_

#include <string>

#include "client/cli/common.h"
#include "retryd/v1/envelope.pb.h"

namespace CLI {
class App;
}  // namespace CLI

namespace retryd::cli {

void AddEnvelopeCommands(CLI::App* app, CliContext* ctx);

// Runs GetEnvelope and prints the envelope (detail view or JSON), writing the payload to
// `payload_file` when it is not empty. With `expect_dead_letter` (`dlq show`), an envelope that is
// not dead-lettered is still shown, with a note on stderr. Returns the exit code.
int RunGetEnvelope(const CliContext& ctx, const std::string& service,
                   const std::string& message_id, const std::string& payload_file,
                   bool expect_dead_letter);

// The human view of an envelope: its fields, headers, last error, attempt history table and
// payload (as text when it is printable UTF-8, else base64). When `payload_file` is not empty
// the payload was written there and the view only says so.
std::string FormatEnvelopeDetail(const retryd::v1::Envelope& envelope,
                                 const std::string& payload_file = "");

// The payload block of the view: "Payload (N bytes, text):\n<text>\n", "... base64 ...", or
// "Payload: (empty)\n".
std::string FormatPayload(const std::string& payload);

}  // namespace retryd::cli

#endif  // RETRYD_CLIENT_CLI_ENVELOPE_CMD_H_
