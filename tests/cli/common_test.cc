// Exit-code mapping, error rendering, duration flags, the hand-rolled wire codec (health and
// google.rpc.Status details) and flag -> request mapping.
#include "client/cli/common.h"

#include <string>
#include <vector>

#include "client/cli/health_cmd.h"
#include "client/cli/wire.h"
#include "client/cli/worker_cmd.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/retryctl_runner.h"
#include "tests/testing/server_process.h"

namespace retryd::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

// A google.rpc.Status with one ErrorInfo detail (and a leading unrelated detail).
std::string StatusDetailsWithReason(const std::string& reason) {
  std::string info;
  AppendLengthDelimitedField(1, reason, &info);
  AppendLengthDelimitedField(2, "retryd", &info);
  std::string other_any;
  AppendLengthDelimitedField(1, "type.googleapis.com/google.rpc.ResourceInfo", &other_any);
  AppendLengthDelimitedField(2, "\x0a\x03xyz", &other_any);
  std::string info_any;
  AppendLengthDelimitedField(1, "type.googleapis.com/google.rpc.ErrorInfo", &info_any);
  AppendLengthDelimitedField(2, info, &info_any);
  std::string status;
  AppendVarintField(1, 5, &status);
  AppendLengthDelimitedField(2, "envelope not found", &status);
  AppendLengthDelimitedField(3, other_any, &status);
  AppendLengthDelimitedField(3, info_any, &status);
  return status;
}

TEST(ExitCodeTest, SixtyFourPlusGrpcCode) {
  EXPECT_EQ(ExitCodeForStatus(grpc::Status::OK), 0);
  EXPECT_EQ(ExitCodeForStatus(grpc::Status(grpc::StatusCode::CANCELLED, "")), 65);
  EXPECT_EQ(ExitCodeForStatus(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "")), 67);
  EXPECT_EQ(ExitCodeForStatus(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "")), 68);
  EXPECT_EQ(ExitCodeForStatus(grpc::Status(grpc::StatusCode::NOT_FOUND, "")), 69);
  EXPECT_EQ(ExitCodeForStatus(grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "")), 71);
  EXPECT_EQ(ExitCodeForStatus(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "")), 72);
  EXPECT_EQ(ExitCodeForStatus(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "")), 73);
  EXPECT_EQ(ExitCodeForStatus(grpc::Status(grpc::StatusCode::UNAVAILABLE, "")), 78);
  EXPECT_EQ(ExitCodeForStatus(grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "")), 80);
}

TEST(ExitCodeTest, EveryCodeMapsIntoRangeAndHasAName) {
  for (int code = 1; code <= 16; ++code) {
    const auto c = static_cast<grpc::StatusCode>(code);
    EXPECT_EQ(ExitCodeForStatus(grpc::Status(c, "x")), 64 + code);
    EXPECT_THAT(StatusCodeName(c), ::testing::Not(HasSubstr("CODE_")));
  }
}

TEST(ExitCodeTest, UnknownNumbersCountAsUnknown) {
  EXPECT_EQ(ExitCodeForStatus(grpc::Status(static_cast<grpc::StatusCode>(99), "x")), 66);
  EXPECT_EQ(StatusCodeName(static_cast<grpc::StatusCode>(99)), "CODE_99");
}

TEST(FormatRpcErrorTest, MessageAndCode) {
  EXPECT_EQ(FormatRpcError(grpc::Status(grpc::StatusCode::NOT_FOUND, "no such envelope")),
            "Error: no such envelope (code=NOT_FOUND)");
  EXPECT_EQ(FormatRpcError(grpc::Status(grpc::StatusCode::UNAVAILABLE, "")),
            "Error: UNAVAILABLE (code=UNAVAILABLE)");
  EXPECT_EQ(FormatRpcError(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "")),
            "Error: the server does not support this command (an older retryd?) "
            "(code=UNIMPLEMENTED)");
}

TEST(FormatRpcErrorTest, AddsErrorInfoReasonFromDetails) {
  const grpc::Status status(grpc::StatusCode::NOT_FOUND, "envelope not found",
                            StatusDetailsWithReason("ENVELOPE_NOT_FOUND"));
  EXPECT_EQ(FormatRpcError(status),
            "Error: envelope not found (code=NOT_FOUND, reason=ENVELOPE_NOT_FOUND)");
}

TEST(ErrorInfoReasonTest, MissingOrMalformedDetailsGiveNothing) {
  EXPECT_EQ(ErrorInfoReason(""), "");
  EXPECT_EQ(ErrorInfoReason("\xff\xff\xff"), "");
  std::string status_without_info;
  AppendVarintField(1, 3, &status_without_info);
  EXPECT_EQ(ErrorInfoReason(status_without_info), "");
  EXPECT_EQ(ErrorInfoReason(StatusDetailsWithReason("X")), "X");
}

TEST(WireTest, RoundTripAndRejectsGarbage) {
  std::string data;
  AppendVarintField(1, 300, &data);
  AppendLengthDelimitedField(2, std::string("a\0b", 3), &data);
  std::vector<WireField> fields;
  ASSERT_TRUE(ParseWireFields(data, &fields));
  ASSERT_EQ(fields.size(), 2u);
  EXPECT_EQ(fields[0].number, 1);
  EXPECT_EQ(fields[0].number_value, 300u);
  EXPECT_EQ(fields[1].number, 2);
  EXPECT_EQ(fields[1].bytes_value, std::string("a\0b", 3));

  EXPECT_TRUE(ParseWireFields("", &fields));
  EXPECT_TRUE(fields.empty());
  EXPECT_FALSE(ParseWireFields("\x12\x05" "ab", &fields));  // truncated LEN
  EXPECT_FALSE(ParseWireFields("\x0b", &fields));           // start group
  EXPECT_FALSE(ParseWireFields(std::string("\x00", 1), &fields));  // field 0
}

TEST(HealthCodecTest, RequestAndResponse) {
  EXPECT_EQ(EncodeHealthCheckRequest(""), "");
  EXPECT_EQ(EncodeHealthCheckRequest("retryd.v1.AdminService"),
            std::string("\x0a\x16retryd.v1.AdminService"));
  int status = -1;
  ASSERT_TRUE(DecodeHealthCheckResponse("\x08\x01", &status));
  EXPECT_EQ(status, kHealthServing);
  ASSERT_TRUE(DecodeHealthCheckResponse("", &status));
  EXPECT_EQ(status, 0);
  ASSERT_TRUE(DecodeHealthCheckResponse("\x08\x02\x12\x01x", &status));  // unknown field skipped
  EXPECT_EQ(status, 2);
  EXPECT_FALSE(DecodeHealthCheckResponse("\x08", &status));
  EXPECT_EQ(HealthStatusName(1), "SERVING");
  EXPECT_EQ(HealthStatusName(2), "NOT_SERVING");
  EXPECT_EQ(HealthStatusName(3), "SERVICE_UNKNOWN");
  EXPECT_EQ(HealthStatusName(0), "UNKNOWN");
  EXPECT_EQ(HealthStatusName(9), "9");
}

TEST(DurationFlagTest, AcceptsAbslDurationsRejectsNegativeAndInfinite) {
  absl::Duration d;
  ASSERT_TRUE(ParseNonNegativeDuration("500ms", &d));
  EXPECT_EQ(d, absl::Milliseconds(500));
  ASSERT_TRUE(ParseNonNegativeDuration("1m30s", &d));
  EXPECT_EQ(d, absl::Seconds(90));
  ASSERT_TRUE(ParseNonNegativeDuration("0", &d));
  EXPECT_EQ(d, absl::ZeroDuration());
  EXPECT_FALSE(ParseNonNegativeDuration("-1s", &d));
  EXPECT_FALSE(ParseNonNegativeDuration("inf", &d));
  EXPECT_FALSE(ParseNonNegativeDuration("10", &d));
  EXPECT_FALSE(ParseNonNegativeDuration("soon", &d));
}

TEST(ConnectionOptionsTest, FromFlags) {
  CliContext ctx;
  ctx.flags.server = "10.0.0.1:1234";
  ctx.flags.token = "s3cret";
  ctx.flags.timeout = "1500ms";
  const ConnectionOptions conn = ctx.connection();
  EXPECT_EQ(conn.server, "10.0.0.1:1234");
  EXPECT_EQ(conn.token, "s3cret");
  EXPECT_EQ(conn.timeout, absl::Milliseconds(1500));
  EXPECT_EQ(CliContext().connection().timeout, absl::Seconds(10));
  EXPECT_EQ(CliContext().connection().server, "127.0.0.1:50051");
}

TEST(ReportFailureRequestTest, MapsEveryFlag) {
  ReportFailureOptions o;
  o.service = "billing";
  o.message_id = "m-1";
  o.error_code = "UPSTREAM_TIMEOUT";
  o.error_class = "Recoverable";
  o.message = "timed out";
  o.http_status = 503;
  o.retry_after = "1m30s";
  o.attempt = 3;
  o.trace_id = "t-1";
  o.schema_version = "v2";
  o.content_type = "application/json";
  o.source = "kafka://x";
  o.headers = {"a=1", "b=x=y", "c="};
  o.lease_token = "lt";
  retryd::v1::ReportFailureRequest r;
  std::string error;
  ASSERT_TRUE(BuildReportFailureRequest(o, "PAYLOAD", &r, &error)) << error;
  EXPECT_EQ(r.envelope().service(), "billing");
  EXPECT_EQ(r.envelope().message_id(), "m-1");
  EXPECT_EQ(r.envelope().payload(), "PAYLOAD");
  EXPECT_EQ(r.envelope().attempt(), 3);
  EXPECT_EQ(r.envelope().trace_id(), "t-1");
  EXPECT_EQ(r.envelope().schema_version(), "v2");
  EXPECT_EQ(r.envelope().content_type(), "application/json");
  EXPECT_EQ(r.envelope().source(), "kafka://x");
  EXPECT_THAT(r.envelope().headers(),
              UnorderedElementsAre(Pair("a", "1"), Pair("b", "x=y"), Pair("c", "")));
  EXPECT_EQ(r.failure().error_code(), "UPSTREAM_TIMEOUT");
  EXPECT_EQ(r.failure().error_class(), retryd::v1::RECOVERABLE);
  EXPECT_EQ(r.failure().message(), "timed out");
  EXPECT_EQ(r.failure().http_status(), 503);
  EXPECT_EQ(r.failure().retry_after().seconds(), 90);
  EXPECT_EQ(r.lease_token(), "lt");
}

TEST(ReportFailureRequestTest, DefaultsLeaveOptionalFieldsUnset) {
  ReportFailureOptions o;
  o.service = "s";
  o.message_id = "m";
  retryd::v1::ReportFailureRequest r;
  std::string error;
  ASSERT_TRUE(BuildReportFailureRequest(o, "", &r, &error));
  EXPECT_EQ(r.failure().error_class(), retryd::v1::ERROR_CLASS_UNSPECIFIED);
  EXPECT_FALSE(r.failure().has_retry_after());
  EXPECT_TRUE(r.lease_token().empty());
}

TEST(ReportFailureRequestTest, RejectsBadValues) {
  ReportFailureOptions o;
  retryd::v1::ReportFailureRequest r;
  std::string error;
  o.error_class = "fatal";
  EXPECT_FALSE(BuildReportFailureRequest(o, "", &r, &error));
  EXPECT_THAT(error, HasSubstr("--class"));
  o.error_class = "";
  o.headers = {"=v"};
  EXPECT_FALSE(BuildReportFailureRequest(o, "", &r, &error));
  EXPECT_THAT(error, HasSubstr("header"));
  o.headers = {};
  o.retry_after = "later";
  EXPECT_FALSE(BuildReportFailureRequest(o, "", &r, &error));
  EXPECT_THAT(error, HasSubstr("--retry-after"));
}

TEST(LoadTlsFilesTest, PlaintextUnlessATlsFlagIsGiven) {
  GlobalFlags flags;
  TlsOptions tls;
  std::string error;
  EXPECT_EQ(LoadTlsFiles(flags, &tls, &error), kExitOk);
  EXPECT_FALSE(tls.enabled);
  flags.tls = true;
  EXPECT_EQ(LoadTlsFiles(flags, &tls, &error), kExitOk);
  EXPECT_TRUE(tls.enabled);
  EXPECT_TRUE(tls.ca_pem.empty());  // The system roots.
  flags = GlobalFlags();
  flags.tls_server_name = "retryd.internal";
  EXPECT_EQ(LoadTlsFiles(flags, &tls, &error), kExitOk);
  EXPECT_TRUE(tls.enabled);
  EXPECT_EQ(tls.server_name, "retryd.internal");
}

TEST(LoadTlsFilesTest, ReadsTheFilesAndNamesTheFlagOfOneItCannotRead) {
  const std::string dir = testing::MakeTempDir();
  testing::WriteFile(dir + "/ca.pem", "CA PEM");
  testing::WriteFile(dir + "/c.pem", "CERT PEM");
  testing::WriteFile(dir + "/k.pem", "KEY PEM");
  GlobalFlags flags;
  flags.tls_ca = dir + "/ca.pem";
  flags.tls_cert = dir + "/c.pem";
  flags.tls_key = dir + "/k.pem";
  TlsOptions tls;
  std::string error;
  ASSERT_EQ(LoadTlsFiles(flags, &tls, &error), kExitOk) << error;
  EXPECT_TRUE(tls.enabled);
  EXPECT_EQ(tls.ca_pem, "CA PEM");
  EXPECT_EQ(tls.cert_pem, "CERT PEM");
  EXPECT_EQ(tls.key_pem, "KEY PEM");

  flags.tls_key = dir + "/missing.pem";
  EXPECT_EQ(LoadTlsFiles(flags, &tls, &error), kExitLocalFailure);
  EXPECT_THAT(error, HasSubstr("--tls-key " + dir + "/missing.pem: cannot read"));
  flags.tls_key = "";
  EXPECT_EQ(LoadTlsFiles(flags, &tls, &error), kExitUsage);
  EXPECT_EQ(error, "--tls-cert needs --tls-key");
  testing::RemoveTree(dir);
}

TEST(LoadTlsFilesTest, AnUnreadableFileFailsBeforeAnyCall) {
  const testing::CliResult r = testing::RunCli(
      {"--server", testing::UnusedAddress(), "--tls-ca", "/nonexistent/ca.pem", "health"});
  EXPECT_EQ(r.exit_code, kExitLocalFailure);
  EXPECT_THAT(r.err, HasSubstr("--tls-ca /nonexistent/ca.pem: cannot read"));
}

}  // namespace
}  // namespace retryd::cli
