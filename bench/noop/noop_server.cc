// noop_server: the baseline of the submit benchmark. It serves retryd.v1.RetryService with the
// same gRPC build, the same callback API and the same server options as retryd, but does no work:
// ReportFailure answers an empty OK decision at once, Lease an empty list, ReportSuccess OK. The
// ratio retryd / noop_server shows how much of gRPC's own ceiling retryd keeps.
//
//   noop_server [--grpc-addr 127.0.0.1:0]
//
// Logs `{"event":"server_started","grpc_addr":...,"grpc_port":N}` on stderr once it serves (as
// retryd does) and stops on SIGTERM/SIGINT.
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include "CLI/CLI.hpp"
#include "retryd/v1/retry_service.grpc.pb.h"

namespace {

namespace v1 = retryd::v1;

class NoopRetryService final : public v1::RetryService::CallbackService {
  grpc::ServerUnaryReactor* ReportFailure(grpc::CallbackServerContext* ctx,
                                          const v1::ReportFailureRequest* req,
                                          v1::ReportFailureResponse* resp) override {
    resp->mutable_decision();
    return Ok(ctx);
  }
  grpc::ServerUnaryReactor* Lease(grpc::CallbackServerContext* ctx, const v1::LeaseRequest* req,
                                  v1::LeaseResponse* resp) override {
    resp->set_circuit_state(v1::CLOSED);
    return Ok(ctx);
  }
  grpc::ServerUnaryReactor* ReportSuccess(grpc::CallbackServerContext* ctx,
                                          const v1::ReportSuccessRequest* req,
                                          v1::ReportSuccessResponse* resp) override {
    return Ok(ctx);
  }

  static grpc::ServerUnaryReactor* Ok(grpc::CallbackServerContext* ctx) {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

}  // namespace

int main(int argc, char** argv) {
  std::string addr = "127.0.0.1:0";
  CLI::App app{"noop_server: a retryd.v1.RetryService that does nothing (benchmark baseline)"};
  app.add_option("--grpc-addr", addr, "listen address (default 127.0.0.1:0 = a free port)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  const auto start = std::chrono::steady_clock::now();
  NoopRetryService service;
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(addr, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  // The same options retryd sets (server/main.cc), so the two differ only in the work done.
  builder.SetMaxReceiveMessageSize((1 << 20) + (1 << 20));
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 2);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "{\"event\":\"listen_failed\",\"grpc_addr\":\"%s\"}\n", addr.c_str());
    return 1;
  }
  const double startup =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::fprintf(stderr,
               "{\"event\":\"server_started\",\"server\":\"noop\",\"grpc_addr\":\"%s\","
               "\"grpc_port\":%d,\"startup_seconds\":%.6f}\n",
               addr.c_str(), port, startup);
  std::fflush(stderr);

  int sig = 0;
  sigwait(&signals, &sig);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  server->Wait();
  std::fprintf(stderr, "{\"event\":\"server_stopped\",\"server\":\"noop\"}\n");
  return 0;
}
