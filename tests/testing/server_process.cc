#include "tests/testing/server_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <mutex>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace retryd::testing {

std::string MakeTempDir() {
  const char* base = getenv("TMPDIR");
  std::string tmpl = absl::StrCat(base != nullptr ? base : "/tmp", "/retryd-test-XXXXXX");
  char* made = mkdtemp(tmpl.data());
  return made != nullptr ? std::string(made) : std::string();
}

void RemoveTree(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
}

std::pair<int, std::string> RunRetryd(const std::string& dir,
                                      const std::vector<std::string>& args) {
  const char* bin = getenv("RETRYD_BIN");
  if (bin == nullptr) return {-1, "RETRYD_BIN is not set"};
  const std::string out = dir + "/run.out";
  std::string cmd = bin;
  for (const std::string& a : args) cmd += " '" + a + "'";
  cmd += " >" + out + " 2>&1";
  const int rc = std::system(cmd.c_str());
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, ReadFile(out)};
}

absl::StatusOr<std::unique_ptr<ServerProcess>> ServerProcess::Start(
    const std::string& dir, const std::string& config_json, std::vector<std::string> extra_args) {
  return StartBinary("", {}, dir, config_json, std::move(extra_args));
}

absl::StatusOr<std::unique_ptr<ServerProcess>> ServerProcess::StartBinary(
    std::string binary, std::vector<std::string> env, const std::string& dir,
    const std::string& config_json, std::vector<std::string> extra_args) {
  std::unique_ptr<ServerProcess> p(new ServerProcess());
  p->binary_ = std::move(binary);
  p->env_ = std::move(env);
  p->dir_ = dir;
  p->log_path_ = dir + "/retryd.log";
  p->args_ = {"--data-dir", dir + "/data", "--grpc-addr", "127.0.0.1:0"};
  // A free port per server, so that servers started in parallel never clash on the default.
  if (std::find(extra_args.begin(), extra_args.end(), "--metrics-addr") == extra_args.end()) {
    p->args_.push_back("--metrics-addr");
    p->args_.push_back("127.0.0.1:0");
  }
  if (!config_json.empty()) {
    const std::string config_path = dir + "/retryd.json";
    WriteFile(config_path, config_json);
    p->args_.push_back("--config");
    p->args_.push_back(config_path);
  }
  for (std::string& a : extra_args) p->args_.push_back(std::move(a));
  absl::Status s = p->Launch();
  if (!s.ok()) return s;
  return p;
}

ServerProcess::~ServerProcess() { Kill(); }

std::string ServerProcess::log() const { return ReadFile(log_path_); }

absl::Status ServerProcess::Launch() {
  const char* bin = binary_.empty() ? getenv("RETRYD_BIN") : binary_.c_str();
  if (bin == nullptr) return absl::FailedPreconditionError("RETRYD_BIN is not set");
  const size_t log_offset = ReadFile(log_path_).size();
  pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    int fd = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, STDERR_FILENO);
      dup2(fd, STDOUT_FILENO);
    }
    for (std::string& kv : env_) putenv(kv.data());
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(bin));
    for (std::string& a : args_) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(bin, argv.data());
    _exit(127);
  }
  pid_ = pid;
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (absl::Now() < deadline) {
    const std::string log = ReadFile(log_path_).substr(log_offset);
    const size_t started = log.find("\"event\":\"server_started\"");
    if (started != std::string::npos) {
      const size_t key = log.find("\"grpc_port\":", started);
      int port = 0;
      if (key != std::string::npos) {
        const size_t begin = key + 12;
        const size_t end = log.find_first_not_of("0123456789", begin);
        if (absl::SimpleAtoi(log.substr(begin, end - begin), &port) && port > 0) {
          port_ = port;
          metrics_port_ = 0;
          const size_t mkey = log.find("\"metrics_port\":", started);
          if (mkey != std::string::npos) {
            const size_t mbegin = mkey + 15;
            const size_t mend = log.find_first_not_of("0123456789", mbegin);
            if (!absl::SimpleAtoi(log.substr(mbegin, mend - mbegin), &metrics_port_)) {
              metrics_port_ = 0;
            }
          }
          return absl::OkStatus();
        }
      }
    }
    int wstatus = 0;
    if (waitpid(pid_, &wstatus, WNOHANG) == pid_) {
      pid_ = -1;
      return absl::InternalError(absl::StrCat("retryd exited during start-up:\n", log));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  Kill();
  return absl::DeadlineExceededError(absl::StrCat("retryd did not start within 20s:\n", log()));
}

void ServerProcess::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int wstatus = 0;
  waitpid(pid_, &wstatus, 0);
  pid_ = -1;
}

absl::StatusOr<int> ServerProcess::Terminate(absl::Duration timeout) {
  if (pid_ <= 0) return absl::FailedPreconditionError("not running");
  kill(pid_, SIGTERM);
  return WaitOrKill(timeout, "retryd did not exit after SIGTERM; killed");
}

absl::StatusOr<int> ServerProcess::WaitOrKill(absl::Duration timeout, const char* killed) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    int wstatus = 0;
    if (waitpid(pid_, &wstatus, WNOHANG) == pid_) {
      pid_ = -1;
      if (WIFEXITED(wstatus)) return WEXITSTATUS(wstatus);
      return absl::InternalError(absl::StrCat("retryd died from signal ", WTERMSIG(wstatus)));
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  Kill();
  return absl::DeadlineExceededError(killed);
}

absl::Status ServerProcess::Restart() {
  if (pid_ > 0) return absl::FailedPreconditionError("still running");
  return Launch();
}

void ServerProcess::UseBinary(std::string binary, std::vector<std::string> env) {
  binary_ = std::move(binary);
  env_ = std::move(env);
}

absl::StatusOr<int> ServerProcess::WaitForExit(absl::Duration timeout) {
  if (pid_ <= 0) return absl::FailedPreconditionError("not running");
  return WaitOrKill(timeout, "retryd did not exit by itself; killed");
}

std::unique_ptr<v1::RetryService::Stub> ServerProcess::RetryStub() const {
  return v1::RetryService::NewStub(
      grpc::CreateChannel(address(), grpc::InsecureChannelCredentials()));
}

std::unique_ptr<v1::AdminService::Stub> ServerProcess::AdminStub() const {
  return v1::AdminService::NewStub(
      grpc::CreateChannel(address(), grpc::InsecureChannelCredentials()));
}

grpc::Status RawUnaryCall(const std::string& address, const std::string& method,
                          const std::string& request_bytes, std::string* response) {
  return RawUnaryCall(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()), method,
                      request_bytes, "", response);
}

grpc::Status RawUnaryCall(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                          const std::string& request_bytes, const std::string& authorization,
                          std::string* response) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  if (!authorization.empty()) ctx.AddMetadata("authorization", authorization);
  grpc::Slice slice(request_bytes);
  grpc::ByteBuffer req(&slice, 1);
  grpc::ByteBuffer resp;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  grpc::Status status;
  stub.UnaryCall(&ctx, method, grpc::StubOptions(), &req, &resp, [&](grpc::Status s) {
    std::lock_guard<std::mutex> lock(mu);
    status = s;
    done = true;
    cv.notify_one();
  });
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return done; });
  std::vector<grpc::Slice> slices;
  if (status.ok() && resp.Dump(&slices).ok()) {
    for (const auto& s : slices) {
      response->append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
  }
  return status;
}

absl::StatusOr<std::string> HttpGet(int port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError("socket failed");
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return absl::UnavailableError(absl::StrCat("cannot connect to 127.0.0.1:", port));
  }
  const std::string request =
      absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: 127.0.0.1:", port, "\r\n\r\n");
  if (send(fd, request.data(), request.size(), 0) != static_cast<ssize_t>(request.size())) {
    close(fd);
    return absl::UnavailableError("send failed");
  }
  std::string response;
  char buf[16384];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) response.append(buf, static_cast<size_t>(n));
  close(fd);
  if (n < 0) return absl::DeadlineExceededError(absl::StrCat("GET ", path, ": read failed"));
  const size_t body = response.find("\r\n\r\n");
  if (body == std::string::npos) return absl::InternalError("malformed HTTP response");
  const std::string status_line = response.substr(0, response.find("\r\n"));
  if (status_line.find(" 200") == std::string::npos) {
    return absl::InternalError(absl::StrCat("GET ", path, ": ", status_line, "\n",
                                            response.substr(body + 4, 2000)));
  }
  return response.substr(body + 4);
}

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

std::unique_ptr<grpc::ClientContext> Context(absl::Duration timeout) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return ctx;
}

}  // namespace retryd::testing
