// retryctl: the operator CLI of retryd. See app.h for the command tree, common.h for exit codes.
#include <iostream>
#include <string>
#include <vector>

#include "client/cli/app.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  return retryd::cli::RunRetryctl(args, std::cin, std::cout, std::cerr);
}
