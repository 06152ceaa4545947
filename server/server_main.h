// RetrydMain: the whole retryd server process (flags, config, store, engine, gRPC, metrics,
// signals), as a function so that a test build can wrap it (tests/testing/faulty_retryd_main.cc
// installs a fault-injecting storage layer first). server/main.cc is the production entry point.
#ifndef RETRYD_SERVER_SERVER_MAIN_H_
#define RETRYD_SERVER_SERVER_MAIN_H_

namespace retryd {

// Runs retryd with these command-line arguments; returns the process's exit code.
int RetrydMain(int argc, char** argv);

}  // namespace retryd

#endif  // RETRYD_SERVER_SERVER_MAIN_H_
