// ServerProcess: runs the real `retryd` binary (path from $RETRYD_BIN) as a child process on
// 127.0.0.1 port 0 with a data dir of the test's own, reads the bound port from its
// `server_started` log line, and stops it (SIGKILL) when destroyed. Also: temp dirs and stubs.
#ifndef RETRYD_TESTS_TESTING_SERVER_PROCESS_H_
#define RETRYD_TESTS_TESTING_SERVER_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "retryd/v1/admin_service.grpc.pb.h"
#include "retryd/v1/retry_service.grpc.pb.h"

namespace retryd::testing {

// A fresh directory under $TMPDIR (or /tmp), removed by the caller or left for inspection.
std::string MakeTempDir();
// Removes a directory tree; errors are ignored.
void RemoveTree(const std::string& path);
// Reads a whole file ("" if it cannot).
std::string ReadFile(const std::string& path);
// Writes a whole file.
void WriteFile(const std::string& path, const std::string& content);
// Runs $RETRYD_BIN with `args` to completion (e.g. --check-config), its output in
// `dir`/run.out; returns the exit code (-1 if it did not exit) and the output, stderr included.
std::pair<int, std::string> RunRetryd(const std::string& dir, const std::vector<std::string>& args);

class ServerProcess {
 public:
  // Starts retryd with `--data-dir <dir>/data --grpc-addr 127.0.0.1:0`, plus
  // `--metrics-addr 127.0.0.1:0` unless `extra_args` has its own --metrics-addr, plus `--config`
  // with `config_json` when it is not empty, plus `extra_args`. Waits up to 20 s for it to serve.
  static absl::StatusOr<std::unique_ptr<ServerProcess>> Start(
      const std::string& dir, const std::string& config_json = "",
      std::vector<std::string> extra_args = {});
  // Start() with another binary than $RETRYD_BIN (empty: $RETRYD_BIN) and extra environment
  // variables ("NAME=value") for it.
  static absl::StatusOr<std::unique_ptr<ServerProcess>> StartBinary(
      std::string binary, std::vector<std::string> env, const std::string& dir,
      const std::string& config_json = "", std::vector<std::string> extra_args = {});
  ~ServerProcess();

  // "127.0.0.1:<port>" of the running process.
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  // The port of the /metrics listener (0 when metrics are off).
  int metrics_port() const { return metrics_port_; }
  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }
  // The child's stderr (its JSON log lines) so far, across restarts.
  std::string log() const;

  // SIGKILL and reap.
  void Kill();
  // SIGTERM, then wait up to `timeout`; returns the exit code (or an error if it had to be
  // killed or died from a signal).
  absl::StatusOr<int> Terminate(absl::Duration timeout);
  // Starts again with the same dir, config and arguments (after Kill or Terminate). The port
  // changes.
  absl::Status Restart();
  // The binary (instead of $RETRYD_BIN; empty: $RETRYD_BIN again) and the extra environment
  // ("NAME=value") of the next Restart.
  void UseBinary(std::string binary, std::vector<std::string> env = {});
  // Waits up to `timeout` for the process to exit by itself; its exit code, or an error if it
  // died from a signal (or was killed at the timeout).
  absl::StatusOr<int> WaitForExit(absl::Duration timeout);

  std::unique_ptr<v1::RetryService::Stub> RetryStub() const;
  std::unique_ptr<v1::AdminService::Stub> AdminStub() const;

 private:
  ServerProcess() = default;
  absl::Status Launch();
  // Reaps the process once it exits (its exit code, or an error if a signal ended it); kills it
  // after `timeout` with the error `killed`.
  absl::StatusOr<int> WaitOrKill(absl::Duration timeout, const char* killed);

  std::string dir_;
  std::string binary_;            // Empty: $RETRYD_BIN.
  std::vector<std::string> env_;  // Added to the child's environment.
  std::vector<std::string> args_;
  std::string log_path_;
  pid_t pid_ = -1;
  int port_ = 0;
  int metrics_port_ = 0;
};

// Sends one unary call of `method` with raw request bytes (which need not be a valid message) and
// a 5 s deadline; fills `response` with the raw response bytes.
grpc::Status RawUnaryCall(const std::string& address, const std::string& method,
                          const std::string& request_bytes, std::string* response);
// The same on `channel`, with an `authorization: <authorization>` header unless it is empty.
grpc::Status RawUnaryCall(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                          const std::string& request_bytes, const std::string& authorization,
                          std::string* response);

// GETs http://127.0.0.1:<port><path> (HTTP/1.0, 5 s timeout); the body on a 200, else an error.
absl::StatusOr<std::string> HttpGet(int port, const std::string& path);

// A TCP port on 127.0.0.1 that was free a moment ago (for processes that cannot bind port 0 and
// report it back, such as Prometheus).
int FreePort();

// A client context whose deadline is now + `timeout`.
std::unique_ptr<grpc::ClientContext> Context(absl::Duration timeout = absl::Seconds(10));

}  // namespace retryd::testing

#endif  // RETRYD_TESTS_TESTING_SERVER_PROCESS_H_
