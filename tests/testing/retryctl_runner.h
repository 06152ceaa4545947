// In-process retryctl for the CLI tests: RunCli() runs the command tree through RunRetryctl()
// with the given stdin and returns the exit code and both outputs; UnusedAddress() is a loopback
// address nobody listens on, for "unreachable server" cases and to make sure a command that
// should fail before any call never reaches a server.
#ifndef RETRYD_TESTS_TESTING_RETRYCTL_RUNNER_H_
#define RETRYD_TESTS_TESTING_RETRYCTL_RUNNER_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/cli/app.h"
#include "gtest/gtest.h"

namespace retryd::testing {

struct CliResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// `retryctl args...` in this process.
inline CliResult RunCli(std::vector<std::string> args, const std::string& stdin_data = "") {
  args.insert(args.begin(), "retryctl");
  std::istringstream in(stdin_data);
  std::ostringstream out;
  std::ostringstream err;
  CliResult r;
  r.exit_code = cli::RunRetryctl(args, in, out, err);
  r.out = out.str();
  r.err = err.str();
  return r;
}

// A loopback port nobody listens on: bound then released (SO_REUSEADDR not set, no listen()).
inline int UnusedPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  EXPECT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  EXPECT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  close(fd);
  return ntohs(addr.sin_port);
}

inline std::string UnusedAddress() { return absl::StrCat("127.0.0.1:", UnusedPort()); }

}  // namespace retryd::testing

#endif  // RETRYD_TESTS_TESTING_RETRYCTL_RUNNER_H_
