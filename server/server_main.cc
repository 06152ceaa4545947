// retryd: the retry and dead-letter control plane server (RetrydMain; main.cc calls it).
//
// Reads a JSON ServerConfig (--config), applies command-line overrides, opens the SQLite store,
// rebuilds the schedule, and serves retryd.v1.RetryService, retryd.v1.AdminService,
// grpc.health.v1.Health and server reflection, over TLS when configured, with bearer-token auth
// when tokens are configured (health and reflection stay open). SIGTERM/SIGINT: health goes
// NOT_SERVING, parked long-polls are answered, in-flight calls finish (up to --shutdown-grace),
// the store is flushed, and the process exits 0.
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"
#include "server/auth/authorizer.h"
#include "server/auth/tls.h"
#include "server/auth/token_table.h"
#include "server/config/config.h"
#include "server/console/console_server.h"
#include "server/engine/engine.h"
#include "server/metrics/gauge_source.h"
#include "server/metrics/metrics.h"
#include "server/metrics/rpc_interceptor.h"
#include "server/rpc/admin_service.h"
#include "server/rpc/retry_service.h"
#include "server/server_main.h"
#include "server/dlq/dlq_counters.h"
#include "server/dlq/replay_runner.h"
#include "server/dlq/retention.h"
#include "server/store/free_space.h"
#include "server/dlq/shared_job_claims.h"
#include "server/store/pg/pg_dsn.h"
#include "server/store/pg/pg_fleet_guards.h"
#include "server/store/pg/pg_migrate.h"
#include "server/store/pg/pg_store.h"
#include "server/store/pg/shared_scheduler.h"
#include "server/store/sqlite_store.h"
#include "server/util/clock.h"
#include "server/util/log.h"
#include "server/util/random.h"
#include "server/util/status_macros.h"
#include "server/util/time_conversion.h"

namespace retryd {
namespace {

constexpr char kVersion[] = "0.1.0";
constexpr absl::Duration kDefaultShutdownGrace = absl::Seconds(20);

struct Flags {
  std::string config;
  std::string grpc_addr;
  std::string metrics_addr;
  std::string data_dir;
  std::string store;
  std::string postgres_dsn;
  std::string min_free_bytes;
  std::string shutdown_grace;
  std::string log_level;
  std::string log_format = "json";
  std::string auth_file;
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  std::string tls_client_auth;
  std::string console_addr;
  bool insecure_allow_remote = false;
  bool check_config = false;
};

// True for 127.0.0.0/8, localhost and [::1] listen addresses.
bool IsLoopback(absl::string_view addr) {
  return absl::StartsWith(addr, "127.") || absl::StartsWith(addr, "localhost:") ||
         absl::StartsWith(addr, "[::1]:");
}

// "off", or "host:port" with a numeric port (0 = any free port). The metrics listener may bind a
// non-loopback address without --insecure-allow-remote: it serves read-only counts (no payloads,
// no message ids); in Kubernetes pair it with the chart's NetworkPolicy.
absl::Status ValidateMetricsAddr(absl::string_view addr) {
  if (addr == "off") return absl::OkStatus();
  const size_t colon = addr.rfind(':');
  int port = -1;
  if (colon == absl::string_view::npos || colon == 0 ||
      !absl::SimpleAtoi(addr.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metrics_addr: must be \"host:port\" (e.g. 127.0.0.1:9464) or \"off\", got \"", addr,
        "\""));
  }
  return absl::OkStatus();
}

// store.type is sqlite or postgres; a DSN only goes with postgres.
absl::Status ValidateStoreConfig(const v1::StoreConfig& store) {
  if (store.type() != "sqlite" && store.type() != "postgres") {
    return absl::InvalidArgumentError(absl::StrCat(
        "store.type (--store): must be sqlite or postgres, got \"", store.type(), "\""));
  }
  if (store.type() == "sqlite" && !store.postgres_dsn().empty()) {
    return absl::InvalidArgumentError(
        "store.postgres_dsn (--postgres-dsn, RETRYD_POSTGRES_DSN) is set but store.type is "
        "sqlite; set store.type (--store) to postgres, or drop the DSN");
  }
  return absl::OkStatus();
}

// The store the configuration names. On PostgreSQL every replica serves (several may share one
// database, docs/shared-replicas.md): `pg` is the same store, for the parts of shared mode.
struct OpenedStore {
  std::unique_ptr<Store> store;
  PgStore* pg = nullptr;
};

absl::StatusOr<OpenedStore> OpenConfiguredStore(const v1::ServerConfig& cfg) {
  OpenedStore opened;
  if (cfg.store().type() == "postgres") {
    PgStore::Options options;
    // The engine takes every decision in the database (SharedScheduler): no single owner.
    options.single_owner = false;
    ASSIGN_OR_RETURN(std::unique_ptr<PgStore> s,
                     PgStore::Open(cfg.store().postgres_dsn(), std::move(options)));
    opened.pg = s.get();
    opened.store = std::move(s);
    return opened;
  }
  ASSIGN_OR_RETURN(std::unique_ptr<SqliteStore> s, SqliteStore::Open(cfg.data_dir()));
  opened.store = std::move(s);
  return opened;
}

// This process's name among the replicas of one database (host:pid:random), for the rows it
// claims: HALF_OPEN trials and operator jobs.
std::string ReplicaName() {
  absl::StatusOr<std::string> id = pg::FleetGuardSync::NewReplicaId();
  if (id.ok()) return *id;
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  return absl::StrCat(host, ":", getpid());
}

// The validated configuration: the file config with the flags applied over it and defaults
// filled in, plus what it turns into for auth and TLS.
struct Setup {
  v1::ServerConfig cfg;
  TokenTable tokens;                 // Empty: auth off.
  std::optional<TlsSettings> tls;    // nullopt: plaintext.
};

// Error messages name the flag that set a TLS setting, else its config field.
TlsSources TlsSourcesOf(const Flags& flags) {
  TlsSources sources;
  if (!flags.tls_cert.empty()) sources.cert = "--tls-cert";
  if (!flags.tls_key.empty()) sources.key = "--tls-key";
  if (!flags.tls_client_ca.empty()) sources.client_ca = "--tls-client-ca";
  if (!flags.tls_client_auth.empty()) sources.client_auth = "--tls-client-auth";
  return sources;
}

absl::Status ValidateConsole(Setup& setup, absl::string_view source);

absl::StatusOr<Setup> EffectiveConfig(const Flags& flags) {
  Setup setup;
  v1::ServerConfig& cfg = setup.cfg;
  if (!flags.config.empty()) {
    ASSIGN_OR_RETURN(cfg, LoadServerConfigFile(flags.config));
  }
  if (!flags.grpc_addr.empty()) cfg.set_grpc_addr(flags.grpc_addr);
  if (!flags.data_dir.empty()) cfg.set_data_dir(flags.data_dir);
  if (!flags.store.empty()) cfg.mutable_store()->set_type(flags.store);
  if (!flags.postgres_dsn.empty()) cfg.mutable_store()->set_postgres_dsn(flags.postgres_dsn);
  if (!flags.min_free_bytes.empty()) {
    int64_t n = 0;
    if (!absl::SimpleAtoi(flags.min_free_bytes, &n)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--min-free-bytes: not a whole number of bytes: \"", flags.min_free_bytes, "\""));
    }
    cfg.mutable_limits()->set_min_free_bytes(n);
  }
  if (!flags.metrics_addr.empty()) cfg.set_metrics_addr(flags.metrics_addr);
  if (!flags.log_level.empty()) cfg.set_log_level(flags.log_level);
  if (flags.insecure_allow_remote) cfg.set_insecure_allow_remote(true);
  if (!flags.shutdown_grace.empty()) {
    absl::Duration grace;
    if (!absl::ParseDuration(flags.shutdown_grace, &grace)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--shutdown-grace: not a duration: \"", flags.shutdown_grace, "\""));
    }
    DurationToProto(grace, cfg.mutable_shutdown_grace());
  }
  std::string auth_path = "auth";
  if (!flags.auth_file.empty()) {
    if (cfg.auth().tokens_size() > 0) {
      return absl::InvalidArgumentError(
          "--auth-file: the config file has auth.tokens too; keep the tokens in one place");
    }
    ASSIGN_OR_RETURN(*cfg.mutable_auth(), LoadAuthConfigFile(flags.auth_file));
    auth_path = absl::StrCat("--auth-file ", flags.auth_file, ": auth");
  }
  if (!flags.tls_cert.empty()) cfg.mutable_tls()->set_cert_file(flags.tls_cert);
  if (!flags.tls_key.empty()) cfg.mutable_tls()->set_key_file(flags.tls_key);
  if (!flags.tls_client_ca.empty()) cfg.mutable_tls()->set_client_ca_file(flags.tls_client_ca);
  if (!flags.tls_client_auth.empty()) cfg.mutable_tls()->set_client_auth(flags.tls_client_auth);
  const v1::TlsConfig& tls = cfg.tls();
  if (cfg.grpc_addr().empty()) cfg.set_grpc_addr("127.0.0.1:50051");
  if (cfg.data_dir().empty()) cfg.set_data_dir("./retryd-data");
  if (cfg.store().type().empty()) cfg.mutable_store()->set_type("sqlite");
  if (cfg.metrics_addr().empty()) cfg.set_metrics_addr("127.0.0.1:9464");
  if (cfg.log_level().empty()) cfg.set_log_level("info");
  if (!cfg.has_shutdown_grace()) DurationToProto(kDefaultShutdownGrace, cfg.mutable_shutdown_grace());

  LogLevel level;
  if (!ParseLogLevel(cfg.log_level(), &level)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "log_level: must be debug, info, warn or error, got \"", cfg.log_level(), "\""));
  }
  const absl::Duration grace = DurationFromProto(cfg.shutdown_grace());
  if (grace < absl::ZeroDuration() || grace > absl::Minutes(5)) {
    return absl::InvalidArgumentError("shutdown_grace: must be between 0s and 5m");
  }
  ASSIGN_OR_RETURN(setup.tokens, TokenTable::FromConfig(cfg.auth(), auth_path));
  const TlsPaths paths{tls.cert_file(), tls.key_file(), tls.client_ca_file(), tls.client_auth()};
  if (TlsConfigured(paths)) {
    ASSIGN_OR_RETURN(setup.tls, LoadTls(paths, TlsSourcesOf(flags)));
  }
  // Who may reach a non-loopback address: callers with a token, or with a client certificate
  // the server verified (TLS alone authenticates the server, not the caller).
  const bool client_certs_required =
      setup.tls.has_value() && setup.tls->client_auth == ClientAuth::kRequire;
  if (!IsLoopback(cfg.grpc_addr()) && setup.tokens.empty() && !client_certs_required &&
      !cfg.insecure_allow_remote()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "grpc_addr ", cfg.grpc_addr(), " is not loopback and no auth is configured (neither "
        "auth.tokens nor --tls-client-auth require); configure one, or pass "
        "--insecure-allow-remote to serve it unauthenticated"));
  }
  RETURN_IF_ERROR(ValidateMetricsAddr(cfg.metrics_addr()));
  if (!flags.console_addr.empty()) {
    cfg.mutable_console()->set_listen(flags.console_addr == "off" ? "" : flags.console_addr);
  }
  RETURN_IF_ERROR(ValidateConsole(setup, flags.console_addr.empty() ? "console.listen"
                                                                    : "--console-addr"));
  RETURN_IF_ERROR(ValidateStoreConfig(cfg.store()));
  RETURN_IF_ERROR(PolicySetFromConfig(cfg).status());
  RETURN_IF_ERROR(LimitsFromProto(cfg.limits()).status());
  return setup;
}

// The console's address and session timeout. Like the gRPC address, a non-loopback console needs
// tokens (or --insecure-allow-remote): the console acts with the operator's token.
absl::Status ValidateConsole(Setup& setup, absl::string_view source) {
  v1::ServerConfig& cfg = setup.cfg;
  if (!cfg.has_console()) return absl::OkStatus();
  v1::ConsoleConfig& console = *cfg.mutable_console();
  if (!console.has_session_idle_timeout()) {
    DurationToProto(absl::Minutes(30), console.mutable_session_idle_timeout());
  }
  const absl::Duration idle = DurationFromProto(console.session_idle_timeout());
  if (idle < absl::Minutes(1) || idle > absl::Hours(24)) {
    return absl::InvalidArgumentError(
        "console.session_idle_timeout: must be between 1m and 24h");
  }
  if (console.listen().empty()) return absl::OkStatus();
  std::string host;
  int port = 0;
  if (!SplitHostPort(console.listen(), &host, &port)) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": must be \"host:port\" (e.g. 127.0.0.1:8081) or \"off\", got \"",
        console.listen(), "\""));
  }
  if (!IsLoopback(console.listen()) && setup.tokens.empty() && !cfg.insecure_allow_remote()) {
    return absl::FailedPreconditionError(absl::StrCat(
        source, " ", console.listen(), " is not loopback and no auth.tokens are configured; "
        "configure tokens, or pass --insecure-allow-remote to serve the console to anyone"));
  }
  return absl::OkStatus();
}

// The start-up warnings and notes about who can call this server.
void LogSecurity(const Setup& setup) {
  const v1::ServerConfig& cfg = setup.cfg;
  const bool loopback = IsLoopback(cfg.grpc_addr());
  const bool client_certs_required =
      setup.tls.has_value() && setup.tls->client_auth == ClientAuth::kRequire;
  if (setup.tokens.empty()) {
    LogEvent(LogLevel::kWarn, "auth_disabled")
        .Str("msg", client_certs_required
                        ? "no bearer tokens configured: any client with a certificate signed by "
                          "the client CA may call every RPC"
                        : loopback ? "no bearer tokens configured: every caller may call every "
                                     "RPC; listening on loopback only"
                                   : "no bearer tokens configured: every caller may call every RPC")
        .Str("grpc_addr", cfg.grpc_addr());
    if (!loopback && !client_certs_required) {
      LogEvent(LogLevel::kWarn, "insecure_remote")
          .Str("msg", "serving a non-loopback address without auth (--insecure-allow-remote)")
          .Str("grpc_addr", cfg.grpc_addr());
    }
  } else if (!setup.tls.has_value() && !loopback) {
    LogEvent(LogLevel::kWarn, "tokens_in_plaintext")
        .Str("msg", "bearer tokens are sent in clear text to a non-loopback address; configure "
                    "TLS (--tls-cert, --tls-key)")
        .Str("grpc_addr", cfg.grpc_addr());
  }
}

// Blocks SIGTERM/SIGINT in this thread and every thread started after it, so sigwait() below is
// the only place they are received.
void BlockShutdownSignals(sigset_t* set) {
  sigemptyset(set);
  sigaddset(set, SIGTERM);
  sigaddset(set, SIGINT);
  pthread_sigmask(SIG_BLOCK, set, nullptr);
}

int Serve(const Setup& setup) {
  const v1::ServerConfig& cfg = setup.cfg;
  sigset_t signals;
  BlockShutdownSignals(&signals);

  absl::StatusOr<PolicySet> policies = PolicySetFromConfig(cfg);
  absl::StatusOr<Limits> limits = LimitsFromProto(cfg.limits());
  if (!policies.ok() || !limits.ok()) return 2;  // Validated by EffectiveConfig already.

  const absl::Time start = absl::Now();
  const bool on_postgres = cfg.store().type() == "postgres";
  absl::StatusOr<OpenedStore> store = OpenConfiguredStore(cfg);
  if (!store.ok()) {
    LogEvent(LogLevel::kError, "store_open_failed")
        .Str("store", cfg.store().type())
        .Str("error", store.status().ToString());
    return 1;
  }
  // The metrics listener comes first, so that a taken port fails start-up loudly before anything
  // else is opened.
  // "off" turns metrics off entirely: no listener, no engine observer, no RPC interceptor.
  Metrics metrics(kVersion);
  const bool metrics_on = cfg.metrics_addr() != "off";
  if (metrics_on) {
    absl::Status listening = metrics.Serve(cfg.metrics_addr());
    if (!listening.ok()) {
      LogEvent(LogLevel::kError, "metrics_listen_failed")
          .Str("metrics_addr", cfg.metrics_addr())
          .Str("error", listening.ToString());
      return 1;
    }
  }
  MtRandom rng;
  EngineOptions engine_options;
  engine_options.observer = metrics_on ? &metrics : nullptr;
  engine_options.max_lease_response_bytes = limits->max_lease_response_bytes;
  engine_options.dedupe_window = limits->dedupe_window;
  engine_options.max_pending_requests = limits->max_pending_requests;
  // The disk-full pre-check guards the SQLite file's filesystem; PostgreSQL manages its own.
  engine_options.min_free_bytes = on_postgres ? 0 : limits->min_free_bytes;
  engine_options.free_bytes_where = cfg.data_dir();
  engine_options.free_bytes = [dir = cfg.data_dir()] { return FreeBytes(dir); };
  // On PostgreSQL every replica serves: the schedule, the leases and the guards are the
  // database's (SharedScheduler, FleetGuardSync), and so are the operator jobs' claims.
  const std::string replica = on_postgres ? ReplicaName() : std::string();
  std::unique_ptr<pg::FleetGuardSync> guard_sync;
  std::unique_ptr<JobClaims> job_claims;
  if (PgStore* pg = store->pg; pg != nullptr) {
    guard_sync = std::make_unique<pg::FleetGuardSync>(
        [pg]() -> pg::Connection& { return pg->writer(); }, *policies, replica);
    SharedSchedulerOptions shared;
    shared.replica = replica;
    shared.dsn = cfg.store().postgres_dsn();
    engine_options.make_scheduler =
        [pg, sync = guard_sync.get(), shared](const SchedulerContext& ctx)
        -> std::unique_ptr<Scheduler> {
      return std::make_unique<SharedScheduler>(ctx, pg, sync, shared);
    };
    SharedJobClaims::Options claims_options;
    claims_options.owner = replica;
    absl::StatusOr<std::unique_ptr<SharedJobClaims>> claims =
        SharedJobClaims::Open(cfg.store().postgres_dsn(), pg, std::move(claims_options));
    if (!claims.ok()) {
      LogEvent(LogLevel::kError, "store_open_failed")
          .Str("store", cfg.store().type())
          .Str("error", claims.status().ToString());
      return 1;
    }
    job_claims = std::move(*claims);
  }
  absl::StatusOr<std::unique_ptr<Engine>> engine =
      Engine::Start(store->store.get(), &*policies, &SystemClock::Get(), &rng, engine_options);
  if (!engine.ok()) {
    LogEvent(LogLevel::kError, "schedule_rebuild_failed").Str("error", engine.status().ToString());
    return 1;
  }
  const absl::flat_hash_map<std::string, ServiceStats> stats = (*engine)->Stats();
  int64_t scheduled = 0;
  int64_t leased = 0;
  for (const auto& [name, s] : stats) {
    scheduled += s.scheduled;
    leased += s.leased;
  }

  // Dead-letter operations beside the engine: paced replays (resumed from the store) and the
  // retention sweeper; the metrics count what they remove and replay.
  DlqCounters dlq_counters;
  if (metrics_on) dlq_counters.observer = &metrics;
  ReplayRunner replays(engine->get(), store->store.get(), &*policies, &SystemClock::Get(),
                       &dlq_counters, job_claims.get());
  RetentionSweeper retention(engine->get(), store->store.get(), &*policies, &SystemClock::Get(),
                             &dlq_counters);

  Metrics::GaugeSource gauges =
      MakeGaugeSource(engine->get(), store->store.get(), &*policies, &SystemClock::Get(), &metrics);
  metrics.SetGaugeSource([gauges = std::move(gauges), &replays, &metrics] {
    // A failed scan of the replays leaves their gauges out of the scrape (not the last counts).
    absl::StatusOr<std::vector<ReplayProgress>> progress = replays.Progress();
    if (progress.ok()) {
      std::vector<ReplayFigures> running;
      for (const ReplayProgress& r : *progress) {
        running.push_back({r.name, r.matched, r.replayed + r.skipped_blocked_schema});
      }
      metrics.SetReplays(running);
    } else {
      metrics.ClearReplays();
      metrics.CountGaugeReadFailure("replays");
    }
    return gauges();
  });
  // Counters of the configured and stored services start at 0, so increase() sees their first
  // event after a restart too.
  for (const Policy& p : policies->policies()) {
    if (p.name != "default" && !absl::EndsWith(p.name, "*")) metrics.RegisterService(p.name);
  }
  for (const auto& [name, unused] : stats) metrics.RegisterService(name);
  // The exposer outlives the engine and store (declared earlier); detach its gauge source before
  // they go, waiting for a scrape in progress.
  struct DetachGauges {
    Metrics* m;
    ~DetachGauges() { m->SetGaugeSource(nullptr); }
  } detach_gauges{&metrics};

  const Authorizer auth(setup.tokens, /*certificate_identity=*/setup.tls.has_value() &&
                                         setup.tls->client_auth != ClientAuth::kNone);
  RetryServiceImpl retry_service(engine->get(), &SystemClock::Get(),
                                 RequestLimits{limits->max_payload_bytes}, &auth);
  AdminServiceImpl admin_service(store->store.get(), engine->get(), &*policies, &SystemClock::Get(),
                                 &auth);
  admin_service.SetDlq(&replays, &dlq_counters);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  // The metrics listener stays plain HTTP; only the gRPC port speaks TLS.
  builder.AddListeningPort(cfg.grpc_addr(),
                           setup.tls.has_value() ? ServerCredentialsFor(*setup.tls)
                                                 : grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(&retry_service);
  builder.RegisterService(&admin_service);
  builder.SetMaxReceiveMessageSize(static_cast<int>(limits->max_payload_bytes + (1 << 20)));
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 2);
  if (metrics_on) {
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
    creators.push_back(std::make_unique<RpcMetricsInterceptorFactory>(&metrics));
    builder.experimental().SetInterceptorCreators(std::move(creators));
  }
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    LogEvent(LogLevel::kError, "listen_failed").Str("grpc_addr", cfg.grpc_addr());
    (*engine)->Stop();
    return 1;
  }
  // The console calls the services above in-process, with each operator's own token.
  std::unique_ptr<ConsoleServer> console;
  if (!cfg.console().listen().empty()) {
    ConsoleOptions console_options;
    console_options.listen = cfg.console().listen();
    console_options.session_idle = DurationFromProto(cfg.console().session_idle_timeout());
    console_options.auth_enabled = !setup.tokens.empty();
    if (setup.tls.has_value()) {
      console_options.tls_cert_pem = setup.tls->cert_pem;
      console_options.tls_key_pem = setup.tls->key_pem;
    }
    console_options.identity_of = [&setup](const std::string& token) {
      const TokenEntry* entry = setup.tokens.Find(token);
      return entry == nullptr ? std::string("anonymous") : entry->name;
    };
    grpc::ChannelArguments channel_args;
    channel_args.SetMaxReceiveMessageSize(-1);
    absl::StatusOr<std::unique_ptr<ConsoleServer>> started = ConsoleServer::Start(
        std::move(console_options), server->InProcessChannel(channel_args), &SystemClock::Get());
    if (!started.ok()) {
      LogEvent(LogLevel::kError, "console_listen_failed")
          .Str("console_addr", cfg.console().listen())
          .Str("error", started.status().ToString());
      server->Shutdown();
      (*engine)->Stop();
      return 1;
    }
    console = std::move(*started);
  }
  replays.Start();
  retention.Start();
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  for (const char* name : {"", "retryd.v1.RetryService", "retryd.v1.AdminService"}) {
    health->SetServingStatus(name, true);
  }
  LogSecurity(setup);
  LogEvent(LogLevel::kInfo, "server_started")
      .Str("version", kVersion)
      .Str("grpc_addr", cfg.grpc_addr())
      .Int("grpc_port", port)
      .Str("store", cfg.store().type())
      .Str(on_postgres ? "postgres_dsn" : "data_dir",
           on_postgres ? pg::RedactDsn(cfg.store().postgres_dsn()) : cfg.data_dir())
      .Str("metrics_addr", cfg.metrics_addr())
      .Int("metrics_port", metrics.port())
      .Str("console_url", console ? console->url() : "off")
      .Int("auth_tokens", static_cast<int64_t>(setup.tokens.size()))
      .Str("tls", setup.tls.has_value() ? "on" : "off")
      .Str("tls_client_auth",
           setup.tls.has_value() ? ClientAuthName(setup.tls->client_auth) : "none")
      .Int("scheduled", scheduled)
      .Int("leased", leased)
      .Double("startup_seconds", absl::ToDoubleSeconds(absl::Now() - start));

  int sig = 0;
  sigwait(&signals, &sig);
  const absl::Duration grace = DurationFromProto(cfg.shutdown_grace());
  LogEvent(LogLevel::kInfo, "server_stopping")
      .Str("signal", sig == SIGTERM ? "SIGTERM" : "SIGINT")
      .Double("grace_seconds", absl::ToDoubleSeconds(grace));
  for (const char* name : {"", "retryd.v1.RetryService", "retryd.v1.AdminService"}) {
    health->SetServingStatus(name, false);
  }
  // The metrics listener takes about a second to stop: do it alongside the drain.
  std::thread metrics_stopper([&metrics] { metrics.StopServing(); });
  console.reset();  // No new page calls during the drain.
  (*engine)->StopParking();
  server->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  replays.Stop();
  retention.Stop();
  LogEvent(LogLevel::kDebug, "rpcs_drained");
  (*engine)->Stop();
  LogEvent(LogLevel::kDebug, "store_flushed");
  server->Wait();
  metrics_stopper.join();
  LogEvent(LogLevel::kInfo, "server_stopped");
  return 0;
}

}  // namespace
}  // namespace retryd

namespace retryd {

int RetrydMain(int argc, char** argv) {
  // Debian's Abseil checks every Mutex acquisition for lock-order cycles (a debug aid that costs
  // about 2 % of the server's CPU under load); the tests' builds keep it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  Flags flags;
  CLI::App app{"retryd: retry and dead-letter control plane server"};
  app.add_option("--config", flags.config, "JSON ServerConfig file")->envname("RETRYD_CONFIG");
  app.add_option("--grpc-addr", flags.grpc_addr, "gRPC listen address (default 127.0.0.1:50051)");
  app.add_option("--metrics-addr", flags.metrics_addr,
                 "Prometheus /metrics listen address, or \"off\" (default 127.0.0.1:9464)");
  app.add_option("--data-dir", flags.data_dir, "data directory (default ./retryd-data)");
  app.add_option("--store", flags.store, "sqlite (default: the file in --data-dir) or postgres");
  app.add_option("--postgres-dsn", flags.postgres_dsn,
                 "PostgreSQL connection string or URI for --store postgres (default: libpq's "
                 "PG* environment variables); its password is never logged")
      ->envname("RETRYD_POSTGRES_DSN");
  app.add_option("--min-free-bytes", flags.min_free_bytes,
                 "disk-full reserve (limits.min_free_bytes): below this many free bytes on the "
                 "data directory's filesystem, writes are refused with RESOURCE_EXHAUSTED and "
                 "the server keeps serving reads, until space is freed; 0 = off (default "
                 "67108864, 64 MiB)");
  app.add_option("--shutdown-grace", flags.shutdown_grace,
                 "how long SIGTERM waits for in-flight calls (default 20s)");
  app.add_option("--log-level", flags.log_level, "debug|info|warn|error (default info)");
  app.add_option("--log-format", flags.log_format, "json|text (default json)");
  app.add_option("--auth-file", flags.auth_file,
                 "JSON file with the auth section only ({\"tokens\": [...]}), e.g. a mounted "
                 "Secret; instead of auth in --config");
  app.add_option("--tls-cert", flags.tls_cert, "PEM certificate (chain) of the gRPC port");
  app.add_option("--tls-key", flags.tls_key, "PEM private key of --tls-cert");
  app.add_option("--tls-client-ca", flags.tls_client_ca,
                 "PEM CA bundle that signs client certificates (with --tls-client-auth)");
  app.add_option("--tls-client-auth", flags.tls_client_auth,
                 "client certificates: none (default), request (optional, verified when sent) "
                 "or require (mTLS)");
  app.add_option("--console-addr", flags.console_addr,
                 "operator web console listen address HOST:PORT (console.listen), or \"off\"; "
                 "off unless set; HTTPS when --tls-cert is set");
  app.add_flag("--insecure-allow-remote", flags.insecure_allow_remote,
               "serve a non-loopback address without auth (no tokens, no required client "
               "certificates)");
  app.add_flag("--check-config", flags.check_config,
               "parse and validate the config, print the effective config as JSON, and exit");
  app.set_version_flag("--version", std::string("retryd ") + retryd::kVersion);
  std::string migrate_from;
  std::string migrate_to;
  CLI::App* migrate = app.add_subcommand(
      "migrate", "copy a SQLite store into an empty PostgreSQL database (one transaction, counts "
                 "verified; refuses a non-empty target)");
  migrate->add_option("--from", migrate_from, "sqlite:PATH (the data dir or its retryd.db)")
      ->required();
  migrate->add_option("--to", migrate_to,
                      "postgres:DSN (libpq connection string or URI; empty DSN: PG* variables)")
      ->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (*migrate) return retryd::pg::RunMigrateCommand(migrate_from, migrate_to);
  if (!retryd::SetLogFormat(flags.log_format)) {
    std::cerr << "retryd: --log-format must be json or text\n";
    return 2;
  }
  absl::StatusOr<retryd::Setup> setup = retryd::EffectiveConfig(flags);
  if (!setup.ok()) {
    std::cerr << "retryd: invalid configuration: " << setup.status().message() << "\n";
    return 2;
  }
  const retryd::v1::ServerConfig* cfg = &setup->cfg;
  retryd::LogLevel level = retryd::LogLevel::kInfo;
  retryd::ParseLogLevel(cfg->log_level(), &level);
  retryd::SetLogLevel(level);
  if (flags.check_config) {
    std::string json;
    google::protobuf::util::JsonPrintOptions options;
    options.add_whitespace = true;
    options.preserve_proto_field_names = true;
    retryd::v1::ServerConfig printed = *cfg;
    printed.mutable_store()->set_postgres_dsn(
        retryd::pg::RedactDsn(printed.store().postgres_dsn()));
    if (!google::protobuf::util::MessageToJsonString(printed, &json, options).ok()) return 1;
    std::cout << json;
    return 0;
  }
  return retryd::Serve(*setup);
}

}  // namespace retryd
