// retryd_faulty: the retryd server with FaultVfs (fault_vfs.h) under SQLite, configured by the
// environment variable RETRYD_FAULT (FaultConfig::Parse; empty: no fault, only the tracking).
// Built for the fault-injection tests only; never installed or shipped.
#include <cstdio>
#include <cstdlib>

#include "absl/status/statusor.h"
#include "server/server_main.h"
#include "tests/testing/fault_vfs.h"

int main(int argc, char** argv) {
  const char* spec = std::getenv("RETRYD_FAULT");
  absl::StatusOr<retryd::testing::FaultConfig> config =
      retryd::testing::FaultConfig::Parse(spec != nullptr ? spec : "");
  if (!config.ok()) {
    std::fprintf(stderr, "retryd_faulty: RETRYD_FAULT: %s\n", config.status().ToString().c_str());
    return 2;
  }
  const absl::Status installed = retryd::testing::InstallFaultVfs(*config);
  if (!installed.ok()) {
    std::fprintf(stderr, "retryd_faulty: %s\n", installed.ToString().c_str());
    return 2;
  }
  return retryd::RetrydMain(argc, argv);
}
