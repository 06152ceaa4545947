// retryctl: the operator CLI of retryd. See app.h for the command tree, common.h for exit codes.
#include <unistd.h>

#include <iostream>
#include <string>
#include <vector>

#include "client/cli/app.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  retryd::cli::TerminalInfo terminal;
  terminal.stdin_is_terminal = isatty(STDIN_FILENO) == 1;
  terminal.stderr_is_terminal = isatty(STDERR_FILENO) == 1;
  return retryd::cli::RunRetryctl(args, std::cin, std::cout, std::cerr, terminal);
}
