// retryd_loadgen: drives a real retryd (or bench/noop_server) over loopback with a fixed number of
// RPCs in flight, using gRPC's callback client API. Every subcommand prints ONE JSON object on
// stdout; progress and diagnostics go to stderr. See BENCHMARKS.md for what each figure means.
//
//   submit          ReportFailure of distinct envelopes (random message ids, N-byte payloads) for
//                   a fixed time after a warm-up: throughput and latency percentiles.
//   preload         ReportFailure of --count envelopes whose Retry-After makes them fall due
//                   uniformly over [offset, offset + spread] after the preload started.
//   cycle           preloads due envelopes for a while, then each in-flight slot loops
//                   Lease + ReportSuccess: cycles per second. With --refill each cycle first
//                   reports a new first failure, so the pool never runs dry (sustained load).
//   drain-lateness  long-polling workers lease and complete what falls due; lateness = arrival of
//                   the Lease response - the envelope's next_retry_at.
//   ready           waits for a just-started server (log line, TCP, health, one RPC) and reports
//                   each time since the process was exec'ed.
//   replay-pacing   dead-letters --count envelopes, starts a replay of them at --rate
//                   (AdminService.StartReplay), polls GetReplay and reports the achieved rate
//                   over a window against the applied max_per_second, then cancels it.
//
// Closed loop: each of the --concurrency slots has at most one RPC outstanding and issues the next
// one from the completion callback of the previous one.
#include <arpa/inet.h>
#include <fcntl.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "bench/loadgen/stats.h"
#include "nlohmann/json.hpp"
#include "retryd/v1/admin_service.grpc.pb.h"
#include "retryd/v1/retry_service.grpc.pb.h"

namespace bench {
namespace {

namespace v1 = retryd::v1;
using json = nlohmann::json;
using Steady = std::chrono::steady_clock;
using Wall = std::chrono::system_clock;

// ---------------------------------------------------------------------------------------------
// Small helpers.

[[noreturn]] void Die(const std::string& what) {
  std::cerr << "retryd_loadgen: " << what << "\n";
  std::exit(1);
}

absl::Duration ParseDurationFlag(const std::string& name, const std::string& value) {
  absl::Duration d;
  if (!absl::ParseDuration(value, &d) || d < absl::ZeroDuration()) {
    Die(absl::StrCat("--", name, ": not a duration: \"", value, "\" (e.g. 10s, 500ms)"));
  }
  return d;
}

double Seconds(Steady::duration d) { return std::chrono::duration<double>(d).count(); }
double Millis(Steady::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

int64_t WallMicrosNow() {
  return std::chrono::duration_cast<std::chrono::microseconds>(Wall::now().time_since_epoch())
      .count();
}

int64_t TimestampMicros(const google::protobuf::Timestamp& t) {
  return t.seconds() * 1000000 + t.nanos() / 1000;
}
int64_t DurationMicros(const google::protobuf::Duration& d) {
  return d.seconds() * 1000000 + d.nanos() / 1000;
}

void SetDuration(absl::Duration d, google::protobuf::Duration* out) {
  const int64_t ns = absl::ToInt64Nanoseconds(d);
  out->set_seconds(ns / 1000000000);
  out->set_nanos(static_cast<int32_t>(ns % 1000000000));
}

json SummaryJson(const Summary& s) {
  return json{{"count", s.count}, {"mean", s.mean}, {"min", s.min},   {"p50", s.p50},
              {"p90", s.p90},     {"p99", s.p99},   {"p999", s.p999}, {"max", s.max}};
}

// Error counts by gRPC status code name.
class ErrorCounts {
 public:
  void Add(const grpc::Status& s) {
    std::lock_guard<std::mutex> lock(mu_);
    counts_[CodeName(s.error_code())]++;
    if (first_.empty()) first_ = absl::StrCat(CodeName(s.error_code()), ": ", s.error_message());
  }
  int64_t Total() const {
    std::lock_guard<std::mutex> lock(mu_);
    int64_t n = 0;
    for (const auto& [code, c] : counts_) n += c;
    return n;
  }
  json Json() const {
    std::lock_guard<std::mutex> lock(mu_);
    json by_code = json::object();
    for (const auto& [code, c] : counts_) by_code[code] = c;
    return json{{"by_code", by_code}, {"first", first_}};
  }

 private:
  static std::string CodeName(grpc::StatusCode c) {
    static const char* const kNames[] = {
        "OK",        "CANCELLED",         "UNKNOWN",          "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",   "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
        "UNIMPLEMENTED", "INTERNAL",      "UNAVAILABLE",      "DATA_LOSS",
        "UNAUTHENTICATED"};
    const int i = static_cast<int>(c);
    return i >= 0 && i <= 16 ? kNames[i] : absl::StrCat("CODE_", i);
  }
  mutable std::mutex mu_;
  std::map<std::string, int64_t> counts_;
  std::string first_;
};

// Counts slots still running; Wait() returns when all have finished.
class SlotLatch {
 public:
  explicit SlotLatch(int n) : active_(n) {}
  void Done() {
    std::lock_guard<std::mutex> lock(mu_);
    if (--active_ == 0) cv_.notify_all();
  }
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return active_ == 0; });
  }
  // Waits at most `d`; true when all slots finished.
  bool WaitFor(std::chrono::milliseconds d) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, d, [this] { return active_ == 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int active_;
};

// ---------------------------------------------------------------------------------------------
// Channels.

struct ClientFlags {
  std::string target = "127.0.0.1:50051";
  int concurrency = 64;
  int connections = 1;
  std::string rpc_timeout = "30s";
};

void AddClientFlags(CLI::App* sub, ClientFlags* f) {
  sub->add_option("--target", f->target, "server address host:port")->required();
  sub->add_option("--concurrency", f->concurrency, "RPCs in flight (default 64)")
      ->check(CLI::Range(1, 100000));
  sub->add_option("--connections", f->connections,
                  "TCP connections (gRPC channels) the slots are spread over (default 1)")
      ->check(CLI::Range(1, 64));
  sub->add_option("--rpc-timeout", f->rpc_timeout, "deadline of each RPC (default 30s)");
}

// `n` channels to `target`, each on its own TCP connection, connected before returning.
std::vector<std::shared_ptr<grpc::Channel>> Connect(const std::string& target, int n) {
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < n; ++i) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt("retryd.bench.channel", i);  // Distinct args: never share a subchannel.
    args.SetMaxReceiveMessageSize(64 << 20);
    args.SetMaxSendMessageSize(64 << 20);
    auto ch = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
    if (!ch->WaitForConnected(Wall::now() + std::chrono::seconds(10))) {
      Die(absl::StrCat("cannot connect to ", target, " within 10 s"));
    }
    channels.push_back(std::move(ch));
  }
  return channels;
}

// ---------------------------------------------------------------------------------------------
// Request generation.

// 128 random bits as 32 hex digits.
std::string RandomId(std::mt19937_64& rng) {
  static const char kHex[] = "0123456789abcdef";
  std::string id(32, '0');
  uint64_t a = rng(), b = rng();
  for (int i = 0; i < 16; ++i) {
    id[i] = kHex[(a >> (4 * i)) & 0xf];
    id[16 + i] = kHex[(b >> (4 * i)) & 0xf];
  }
  return id;
}

std::mt19937_64 SeededRng(int salt) {
  std::random_device rd;
  std::seed_seq seq{rd(), rd(), rd(), rd(), static_cast<unsigned>(salt)};
  return std::mt19937_64(seq);
}

struct EnvelopeSpec {
  std::string service = "bench";
  int payload_bytes = 1024;
  // TRANSIENT failures are scheduled; PERMANENT ones are dead-lettered at once (replay-pacing).
  v1::ErrorClass error_class = v1::TRANSIENT;
};

// A first-failure request with a random payload; Refresh() gives it a new random message id (also
// written over the head of the payload, so every envelope is distinct).
class FailureRequestMaker {
 public:
  FailureRequestMaker(const EnvelopeSpec& spec, std::mt19937_64& rng) {
    v1::Envelope* e = req_.mutable_envelope();
    e->set_service(spec.service);
    std::string payload(static_cast<size_t>(spec.payload_bytes), '\0');
    for (char& c : payload) c = static_cast<char>('a' + rng() % 26);
    e->set_payload(std::move(payload));
    e->set_content_type("application/octet-stream");
    e->set_source("bench.queue");
    v1::Failure* f = req_.mutable_failure();
    if (spec.error_class == v1::PERMANENT) {
      f->set_error_code("BAD_PAYLOAD");
      f->set_message("payload rejected (retryd_loadgen)");
    } else {
      f->set_error_code("UPSTREAM_TIMEOUT");
      f->set_message("upstream timed out (retryd_loadgen)");
    }
    f->set_error_class(spec.error_class);
  }
  v1::ReportFailureRequest* Refresh(std::mt19937_64& rng) {
    const std::string id = RandomId(rng);
    v1::Envelope* e = req_.mutable_envelope();
    e->set_message_id(id);
    std::string* payload = e->mutable_payload();
    payload->replace(0, std::min(payload->size(), id.size()), id, 0,
                     std::min(payload->size(), id.size()));
    return &req_;
  }

 private:
  v1::ReportFailureRequest req_;
};

// ---------------------------------------------------------------------------------------------
// submit / preload: closed-loop ReportFailure.

struct SubmitOptions {
  absl::Duration rpc_timeout = absl::Seconds(30);
  EnvelopeSpec spec;
  // Time mode (submit): issue until `stop`; completions inside [window_start, window_end) count.
  Steady::time_point window_start = Steady::time_point::min();
  Steady::time_point window_end = Steady::time_point::max();
  // Count mode (preload): issue exactly `limit` requests (0 = unlimited).
  int64_t limit = 0;
  // Retry-After: due = anchor + offset + uniform[0, spread] (wall clock); none when !retry_after.
  bool retry_after = false;
  int64_t anchor_us = 0;
  absl::Duration offset;
  absl::Duration spread;
};

class SubmitRun {
 public:
  SubmitRun(std::vector<std::shared_ptr<grpc::Channel>> channels, int concurrency,
            SubmitOptions opts)
      : opts_(std::move(opts)), latch_(concurrency) {
    for (auto& ch : channels) stubs_.push_back(v1::RetryService::NewStub(ch));
    for (int i = 0; i < concurrency; ++i) {
      slots_.push_back(std::make_unique<Slot>(this, stubs_[i % stubs_.size()].get(), i));
    }
  }

  void Start() {
    started_ = Steady::now();
    for (auto& s : slots_) s->Issue();
  }
  void Stop() { stop_.store(true); }
  void Wait() { latch_.Wait(); }
  bool WaitFor(std::chrono::milliseconds d) { return latch_.WaitFor(d); }
  int64_t Completed() const { return completed_.load(); }

  // Latencies (ms) of the completions inside the window; counters.
  std::vector<double> Latencies() const {
    std::vector<double> all;
    for (const auto& s : slots_) all.insert(all.end(), s->latencies.begin(), s->latencies.end());
    return all;
  }
  int64_t InWindow() const {
    int64_t n = 0;
    for (const auto& s : slots_) n += static_cast<int64_t>(s->latencies.size());
    return n;
  }
  int64_t Ok() const { return ok_.load(); }
  int64_t Duplicates() const { return duplicates_.load(); }
  int64_t NotScheduled() const { return not_scheduled_.load(); }
  int64_t DeadLettered() const { return dead_lettered_.load(); }
  int64_t LateSubmits() const { return late_submits_.load(); }
  const ErrorCounts& Errors() const { return errors_; }
  Steady::time_point started() const { return started_; }

 private:
  struct Slot {
    Slot(SubmitRun* run, v1::RetryService::Stub* stub, int index)
        : run(run), stub(stub), rng(SeededRng(index)), maker(run->opts_.spec, rng) {
      latencies.reserve(1 << 16);
    }

    void Issue() {
      if (run->stop_.load(std::memory_order_relaxed) ||
          (run->opts_.limit > 0 && run->issued_.fetch_add(1) >= run->opts_.limit)) {
        run->latch_.Done();
        return;
      }
      ctx = std::make_unique<grpc::ClientContext>();
      ctx->set_deadline(absl::ToChronoTime(absl::Now() + run->opts_.rpc_timeout));
      v1::ReportFailureRequest* req = maker.Refresh(rng);
      if (run->opts_.retry_after) {
        const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
        const int64_t due_us = run->opts_.anchor_us + absl::ToInt64Microseconds(run->opts_.offset) +
                               static_cast<int64_t>(u * absl::ToDoubleMicroseconds(run->opts_.spread));
        int64_t after_us = due_us - WallMicrosNow();
        if (after_us < 1000) {
          after_us = 1000;
          run->late_submits_.fetch_add(1, std::memory_order_relaxed);
        }
        SetDuration(absl::Microseconds(after_us), req->mutable_failure()->mutable_retry_after());
      }
      resp.Clear();
      t0 = Steady::now();
      stub->async()->ReportFailure(ctx.get(), req, &resp,
                                   [this](grpc::Status status) { OnDone(status); });
    }

    void OnDone(const grpc::Status& status) {
      const Steady::time_point t1 = Steady::now();
      run->completed_.fetch_add(1, std::memory_order_relaxed);
      if (!status.ok()) {
        run->errors_.Add(status);
        std::this_thread::sleep_for(std::chrono::milliseconds(1));  // Do not spin on errors.
      } else {
        run->ok_.fetch_add(1, std::memory_order_relaxed);
        if (resp.decision().duplicate()) run->duplicates_.fetch_add(1, std::memory_order_relaxed);
        if (resp.decision().kind() != v1::DECISION_SCHEDULED) {
          run->not_scheduled_.fetch_add(1, std::memory_order_relaxed);
        }
        if (resp.decision().kind() == v1::DECISION_DEAD_LETTERED) {
          run->dead_lettered_.fetch_add(1, std::memory_order_relaxed);
        }
        if (t1 >= run->opts_.window_start && t1 < run->opts_.window_end) {
          latencies.push_back(Millis(t1 - t0));
        }
      }
      Issue();
    }

    SubmitRun* run;
    v1::RetryService::Stub* stub;
    std::mt19937_64 rng;
    FailureRequestMaker maker;
    std::unique_ptr<grpc::ClientContext> ctx;
    v1::ReportFailureResponse resp;
    Steady::time_point t0;
    std::vector<double> latencies;
  };

  const SubmitOptions opts_;
  std::vector<std::unique_ptr<v1::RetryService::Stub>> stubs_;
  std::vector<std::unique_ptr<Slot>> slots_;
  SlotLatch latch_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> issued_{0};
  std::atomic<int64_t> completed_{0};
  std::atomic<int64_t> ok_{0};
  std::atomic<int64_t> duplicates_{0};
  std::atomic<int64_t> not_scheduled_{0};
  std::atomic<int64_t> dead_lettered_{0};
  std::atomic<int64_t> late_submits_{0};
  ErrorCounts errors_;
  Steady::time_point started_;
};

int RunSubmit(const ClientFlags& cf, const EnvelopeSpec& spec, const std::string& duration_s,
              const std::string& warmup_s) {
  const absl::Duration duration = ParseDurationFlag("duration", duration_s);
  const absl::Duration warmup = ParseDurationFlag("warmup", warmup_s);
  auto channels = Connect(cf.target, cf.connections);
  SubmitOptions opts;
  opts.rpc_timeout = ParseDurationFlag("rpc-timeout", cf.rpc_timeout);
  opts.spec = spec;
  const Steady::time_point start = Steady::now();
  opts.window_start = start + absl::ToChronoNanoseconds(warmup);
  opts.window_end = opts.window_start + absl::ToChronoNanoseconds(duration);
  SubmitRun run(channels, cf.concurrency, opts);
  run.Start();
  std::this_thread::sleep_until(opts.window_end);
  run.Stop();
  run.Wait();
  std::vector<double> lat = run.Latencies();
  const int64_t n = static_cast<int64_t>(lat.size());
  const Summary s = Summarize(lat);
  const double window = absl::ToDoubleSeconds(duration);
  json out{{"mode", "submit"},
           {"target", cf.target},
           {"service", spec.service},
           {"concurrency", cf.concurrency},
           {"connections", cf.connections},
           {"payload_bytes", spec.payload_bytes},
           {"warmup_s", absl::ToDoubleSeconds(warmup)},
           {"duration_s", window},
           {"ops", n},
           {"throughput_ops_s", n / window},
           {"latency_ms", SummaryJson(s)},
           {"p50_ms", s.p50},
           {"p99_ms", s.p99},
           {"max_ms", s.max},
           {"errors", run.Errors().Total()},
           {"error_detail", run.Errors().Json()},
           {"duplicates", run.Duplicates()},
           {"not_scheduled", run.NotScheduled()},
           {"total_completed", run.Completed()}};
  std::cout << out.dump() << std::endl;
  return run.Errors().Total() > 0 && run.Ok() == 0 ? 1 : 0;
}

// Runs a preload until `limit` requests completed (or `max_time`), printing progress.
json Preload(const std::vector<std::shared_ptr<grpc::Channel>>& channels, int concurrency,
             SubmitOptions opts, absl::Duration max_time, const char* what) {
  SubmitRun run(channels, concurrency, opts);
  const Steady::time_point start = Steady::now();
  const Steady::time_point deadline = start + absl::ToChronoNanoseconds(max_time);
  run.Start();
  Steady::time_point next_report = start + std::chrono::seconds(15);
  bool stopped_by_time = false;
  while (!run.WaitFor(std::chrono::milliseconds(100))) {
    const Steady::time_point now = Steady::now();
    if (now >= deadline && !stopped_by_time) {
      run.Stop();
      stopped_by_time = true;
    }
    if (now >= next_report) {
      const int64_t done = run.Completed();
      std::cerr << "retryd_loadgen: " << what << ": " << done << " done in "
                << static_cast<int>(Seconds(now - start)) << " s ("
                << static_cast<int64_t>(done / Seconds(now - start)) << "/s)\n";
      next_report = now + std::chrono::seconds(15);
    }
  }
  const double elapsed = Seconds(Steady::now() - start);
  std::vector<double> lat = run.Latencies();
  const Summary s = Summarize(lat);
  return json{{"submitted_ok", run.Ok()},
              {"elapsed_s", elapsed},
              {"throughput_ops_s", run.Ok() / elapsed},
              {"latency_ms", SummaryJson(s)},
              {"errors", run.Errors().Total()},
              {"error_detail", run.Errors().Json()},
              {"duplicates", run.Duplicates()},
              {"not_scheduled", run.NotScheduled()},
              {"dead_lettered", run.DeadLettered()},
              {"late_submits", run.LateSubmits()},
              {"stopped_by_time", stopped_by_time}};
}

int RunPreload(const ClientFlags& cf, const EnvelopeSpec& spec, int64_t count,
               const std::string& offset_s, const std::string& spread_s,
               const std::string& max_time_s) {
  auto channels = Connect(cf.target, cf.connections);
  SubmitOptions opts;
  opts.rpc_timeout = ParseDurationFlag("rpc-timeout", cf.rpc_timeout);
  opts.spec = spec;
  opts.limit = count;
  opts.retry_after = true;
  opts.anchor_us = WallMicrosNow();
  opts.offset = ParseDurationFlag("offset", offset_s);
  opts.spread = ParseDurationFlag("spread", spread_s);
  json out = Preload(channels, cf.concurrency, opts, ParseDurationFlag("max-time", max_time_s),
                     "preload");
  out["mode"] = "preload";
  out["target"] = cf.target;
  out["service"] = spec.service;
  out["count"] = count;
  out["concurrency"] = cf.concurrency;
  out["payload_bytes"] = spec.payload_bytes;
  out["anchor_unix_us"] = opts.anchor_us;
  out["due_from_unix_us"] = opts.anchor_us + absl::ToInt64Microseconds(opts.offset);
  out["due_to_unix_us"] =
      opts.anchor_us + absl::ToInt64Microseconds(opts.offset) + absl::ToInt64Microseconds(opts.spread);
  std::cout << out.dump() << std::endl;
  return out["submitted_ok"].get<int64_t>() == count ? 0 : 1;
}

// ---------------------------------------------------------------------------------------------
// cycle: Lease + ReportSuccess of due envelopes.

class CycleRun {
 public:
  // With `refill` set, each cycle starts with a ReportFailure of a new envelope of that spec
  // (due at once under the service's tiny backoff), so the pool stays as large as the preload
  // made it and the cycles can go on for as long as the window lasts.
  CycleRun(std::vector<std::shared_ptr<grpc::Channel>> channels, int concurrency,
           std::string service, int batch, absl::Duration rpc_timeout,
           Steady::time_point window_start, Steady::time_point window_end,
           std::optional<EnvelopeSpec> refill = std::nullopt)
      : service_(std::move(service)),
        batch_(batch),
        refill_(std::move(refill)),
        rpc_timeout_(rpc_timeout),
        window_start_(window_start),
        window_end_(window_end),
        latch_(concurrency) {
    for (auto& ch : channels) stubs_.push_back(v1::RetryService::NewStub(ch));
    for (int i = 0; i < concurrency; ++i) {
      slots_.push_back(std::make_unique<Slot>(this, stubs_[i % stubs_.size()].get(), i));
    }
  }
  void Start() {
    for (auto& s : slots_) s->Next();
  }
  void Stop() { stop_.store(true); }
  void Wait() { latch_.Wait(); }

  std::vector<double> Latencies() const {
    std::vector<double> all;
    for (const auto& s : slots_) all.insert(all.end(), s->latencies.begin(), s->latencies.end());
    return all;
  }
  // Cycles completed inside [window_start, end).
  int64_t CyclesBefore(Steady::time_point end) const {
    int64_t n = 0;
    for (const auto& s : slots_) {
      for (const auto& t : s->done_at) n += t < end ? 1 : 0;
    }
    return n;
  }
  // When a Lease first came back empty (the pool ran dry), or max().
  Steady::time_point ExhaustedAt() const {
    return Steady::time_point(Steady::duration(exhausted_at_.load()));
  }
  int64_t Leases() const { return leases_.load(); }
  int64_t EmptyLeases() const { return empty_leases_.load(); }
  int64_t Refills() const { return refills_.load(); }
  const ErrorCounts& Errors() const { return errors_; }

 private:
  struct Slot {
    Slot(CycleRun* run, v1::RetryService::Stub* stub, int index)
        : run(run), stub(stub), rng(SeededRng(index)) {
      latencies.reserve(1 << 15);
      done_at.reserve(1 << 15);
      if (run->refill_.has_value()) {
        maker = std::make_unique<FailureRequestMaker>(*run->refill_, rng);
      }
    }

    // Starts the next cycle (its latency is measured from here).
    void Next() {
      if (run->stop_.load(std::memory_order_relaxed)) {
        run->latch_.Done();
        return;
      }
      t0 = Steady::now();
      if (maker != nullptr) {
        Refill();
      } else {
        Lease();
      }
    }

    void Refill() {
      ctx = std::make_unique<grpc::ClientContext>();
      ctx->set_deadline(absl::ToChronoTime(absl::Now() + run->rpc_timeout_));
      refill_resp.Clear();
      stub->async()->ReportFailure(ctx.get(), maker->Refresh(rng), &refill_resp,
                                   [this](grpc::Status status) {
                                     if (status.ok()) {
                                       run->refills_.fetch_add(1, std::memory_order_relaxed);
                                     } else {
                                       run->errors_.Add(status);
                                     }
                                     Lease();
                                   });
    }

    void Lease() {
      ctx = std::make_unique<grpc::ClientContext>();
      ctx->set_deadline(absl::ToChronoTime(absl::Now() + run->rpc_timeout_));
      lease_req.set_service(run->service_);
      lease_req.set_max_messages(run->batch_);
      lease_resp.Clear();
      stub->async()->Lease(ctx.get(), &lease_req, &lease_resp,
                           [this](grpc::Status status) { OnLease(status); });
    }

    void OnLease(const grpc::Status& status) {
      run->leases_.fetch_add(1, std::memory_order_relaxed);
      if (!status.ok()) {
        run->errors_.Add(status);
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        Next();
        return;
      }
      if (lease_resp.envelopes_size() == 0 && maker != nullptr) {
        // Nothing due this instant (a refill is due 1 ms after it was decided): refill again,
        // which leaves one more in the pool.
        run->empty_leases_.fetch_add(1, std::memory_order_relaxed);
        Next();
        return;
      }
      if (lease_resp.envelopes_size() == 0) {
        // The pool ran dry: stop this slot and remember when it first happened.
        run->empty_leases_.fetch_add(1, std::memory_order_relaxed);
        int64_t now = Steady::now().time_since_epoch().count();
        int64_t prev = run->exhausted_at_.load();
        while (now < prev && !run->exhausted_at_.compare_exchange_weak(prev, now)) {
        }
        run->latch_.Done();
        return;
      }
      next = 0;
      Success();
    }

    void Success() {
      ctx = std::make_unique<grpc::ClientContext>();
      ctx->set_deadline(absl::ToChronoTime(absl::Now() + run->rpc_timeout_));
      success_req.set_service(run->service_);
      success_req.set_lease_token(lease_resp.envelopes(next).lease_token());
      stub->async()->ReportSuccess(ctx.get(), &success_req, &success_resp,
                                   [this](grpc::Status status) { OnSuccess(status); });
    }

    void OnSuccess(const grpc::Status& status) {
      const Steady::time_point t1 = Steady::now();
      if (!status.ok()) {
        run->errors_.Add(status);
      } else if (t1 >= run->window_start_ && t1 < run->window_end_) {
        latencies.push_back(Millis(t1 - t0));
        done_at.push_back(t1);
      }
      if (++next < lease_resp.envelopes_size()) {
        Success();
      } else {
        Next();
      }
    }

    CycleRun* run;
    v1::RetryService::Stub* stub;
    std::mt19937_64 rng;
    std::unique_ptr<FailureRequestMaker> maker;  // Set with --refill.
    v1::ReportFailureResponse refill_resp;
    std::unique_ptr<grpc::ClientContext> ctx;
    v1::LeaseRequest lease_req;
    v1::LeaseResponse lease_resp;
    v1::ReportSuccessRequest success_req;
    v1::ReportSuccessResponse success_resp;
    int next = 0;
    Steady::time_point t0;
    std::vector<double> latencies;
    std::vector<Steady::time_point> done_at;
  };

  const std::string service_;
  const int batch_;
  const std::optional<EnvelopeSpec> refill_;
  const absl::Duration rpc_timeout_;
  const Steady::time_point window_start_;
  const Steady::time_point window_end_;
  std::vector<std::unique_ptr<v1::RetryService::Stub>> stubs_;
  std::vector<std::unique_ptr<Slot>> slots_;
  SlotLatch latch_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> exhausted_at_{Steady::time_point::max().time_since_epoch().count()};
  std::atomic<int64_t> leases_{0};
  std::atomic<int64_t> empty_leases_{0};
  std::atomic<int64_t> refills_{0};
  ErrorCounts errors_;
};

int RunCycle(const ClientFlags& cf, const EnvelopeSpec& spec, int batch, int64_t preload_count,
             const std::string& preload_time_s, const std::string& duration_s,
             const std::string& warmup_s, bool refill) {
  const absl::Duration duration = ParseDurationFlag("duration", duration_s);
  const absl::Duration warmup = ParseDurationFlag("warmup", warmup_s);
  const absl::Duration rpc_timeout = ParseDurationFlag("rpc-timeout", cf.rpc_timeout);
  auto channels = Connect(cf.target, cf.connections);

  // 1. Preload: first failures without Retry-After, so the service's (tiny) backoff makes them
  //    due at once. By count, or for a fixed time when --preload is 0.
  SubmitOptions popts;
  popts.rpc_timeout = rpc_timeout;
  popts.spec = spec;
  popts.limit = preload_count;
  const absl::Duration preload_time =
      preload_count > 0 ? absl::Hours(1) : ParseDurationFlag("preload-time", preload_time_s);
  json preload = Preload(channels, cf.concurrency, popts, preload_time, "cycle preload");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // Let the backoff pass.

  // 2. Cycle until the window ends or the pool runs dry.
  const Steady::time_point start = Steady::now();
  const Steady::time_point window_start = start + absl::ToChronoNanoseconds(warmup);
  const Steady::time_point window_end = window_start + absl::ToChronoNanoseconds(duration);
  CycleRun run(channels, cf.concurrency, spec.service, batch, rpc_timeout, window_start,
               window_end, refill ? std::optional<EnvelopeSpec>(spec) : std::nullopt);
  run.Start();
  std::thread stopper([&] {
    while (Steady::now() < window_end) {
      if (run.ExhaustedAt() != Steady::time_point::max()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    run.Stop();
  });
  run.Wait();
  stopper.join();

  const Steady::time_point exhausted = run.ExhaustedAt();
  const Steady::time_point end = std::min(window_end, exhausted);
  const double window = end > window_start ? Seconds(end - window_start) : 0.0;
  const int64_t cycles = run.CyclesBefore(end);
  std::vector<double> lat = run.Latencies();
  const Summary s = Summarize(lat);
  json out{{"mode", "cycle"},
           {"target", cf.target},
           {"service", spec.service},
           {"concurrency", cf.concurrency},
           {"batch", batch},
           {"payload_bytes", spec.payload_bytes},
           {"refill", refill},
           {"refills", run.Refills()},
           {"preload", preload},
           {"warmup_s", absl::ToDoubleSeconds(warmup)},
           {"duration_s", window},
           {"requested_duration_s", absl::ToDoubleSeconds(duration)},
           {"pool_exhausted", exhausted != Steady::time_point::max()},
           {"cycles", cycles},
           {"throughput_cycles_s", window > 0 ? cycles / window : 0.0},
           {"cycle_latency_ms", SummaryJson(s)},
           {"leases", run.Leases()},
           {"empty_leases", run.EmptyLeases()},
           {"errors", run.Errors().Total()},
           {"error_detail", run.Errors().Json()}};
  std::cout << out.dump() << std::endl;
  return window > 0 ? 0 : 1;
}

// ---------------------------------------------------------------------------------------------
// drain-lateness: long-polling workers take what falls due.

class DrainRun {
 public:
  DrainRun(std::vector<std::shared_ptr<grpc::Channel>> channels, int workers, std::string service,
           int batch, absl::Duration wait_time, absl::Duration visibility, int64_t measure_from_us)
      : measure_from_us_(measure_from_us),
        service_(std::move(service)),
        batch_(batch),
        wait_time_(wait_time),
        visibility_(visibility),
        latch_(workers) {
    for (auto& ch : channels) stubs_.push_back(v1::RetryService::NewStub(ch));
    for (int i = 0; i < workers; ++i) {
      workers_.push_back(std::make_unique<Worker>(this, stubs_[i % stubs_.size()].get()));
    }
  }
  void Start() {
    for (auto& w : workers_) w->Lease();
  }
  void Stop() { stop_.store(true); }
  bool WaitFor(std::chrono::milliseconds d) { return latch_.WaitFor(d); }
  int64_t Drained() const { return drained_.load(); }
  int64_t Leased() const { return leased_.load(); }

  std::vector<double> Lateness() const {
    std::vector<double> all;
    for (const auto& w : workers_) all.insert(all.end(), w->lateness.begin(), w->lateness.end());
    return all;
  }
  // Per second since `from_us`: envelopes leased and their largest lateness (ms), to see whether
  // the tail comes in bursts.
  json Timeline(int64_t from_us) const {
    std::vector<int64_t> count;
    std::vector<double> worst;
    for (const auto& w : workers_) {
      for (size_t i = 0; i < w->lateness.size(); ++i) {
        const int64_t sec = std::max<int64_t>(0, (w->arrived[i] - from_us) / 1000000);
        if (static_cast<size_t>(sec) >= count.size()) {
          count.resize(sec + 1, 0);
          worst.resize(sec + 1, 0.0);
        }
        count[sec]++;
        worst[sec] = std::max(worst[sec], w->lateness[i]);
      }
    }
    return json{{"from_unix_us", from_us}, {"count", count}, {"max_ms", worst}};
  }
  int64_t Leases() const { return leases_.load(); }
  int64_t EmptyLeases() const { return empty_leases_.load(); }
  int64_t UnknownDue() const { return unknown_due_.load(); }
  int64_t Early() const { return early_.load(); }
  int64_t Backlog() const { return backlog_.load(); }
  const ErrorCounts& Errors() const { return errors_; }

 private:
  struct Worker {
    Worker(DrainRun* run, v1::RetryService::Stub* stub) : run(run), stub(stub) {
      lateness.reserve(1 << 16);
    }

    void Lease() {
      if (run->stop_.load(std::memory_order_relaxed)) {
        run->latch_.Done();
        return;
      }
      ctx = std::make_unique<grpc::ClientContext>();
      ctx->set_deadline(absl::ToChronoTime(absl::Now() + run->wait_time_ + absl::Seconds(10)));
      req.set_service(run->service_);
      req.set_max_messages(run->batch_);
      SetDuration(run->visibility_, req.mutable_visibility_timeout());
      SetDuration(run->wait_time_, req.mutable_wait_time());
      resp.Clear();
      stub->async()->Lease(ctx.get(), &req, &resp,
                           [this](grpc::Status status) { OnLease(status); });
    }

    void OnLease(const grpc::Status& status) {
      const int64_t arrived_us = WallMicrosNow();
      run->leases_.fetch_add(1, std::memory_order_relaxed);
      if (!status.ok()) {
        run->errors_.Add(status);
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        Lease();
        return;
      }
      const int n = resp.envelopes_size();
      if (n == 0) {
        run->empty_leases_.fetch_add(1, std::memory_order_relaxed);
        Lease();
        return;
      }
      run->leased_.fetch_add(n, std::memory_order_relaxed);
      for (const v1::LeasedEnvelope& le : resp.envelopes()) {
        // The leased envelope does not carry next_retry_at (SCHEDULED only); the due time is the
        // last failure's time plus the delay chosen then, which is exactly how it was computed.
        const v1::Envelope& e = le.envelope();
        int64_t due_us = 0;
        if (e.has_next_retry_at()) {
          due_us = TimestampMicros(e.next_retry_at());
        } else if (e.history_size() > 0) {
          const v1::AttemptRecord& last = e.history(e.history_size() - 1);
          due_us = TimestampMicros(last.failed_at()) + DurationMicros(last.delay());
        } else {
          run->unknown_due_.fetch_add(1, std::memory_order_relaxed);
          continue;
        }
        if (due_us < run->measure_from_us_) {
          // Fell due before the workers were there: a backlog, not dispatch lateness.
          run->backlog_.fetch_add(1, std::memory_order_relaxed);
          continue;
        }
        const double late_ms = static_cast<double>(arrived_us - due_us) / 1000.0;
        if (late_ms < 0) run->early_.fetch_add(1, std::memory_order_relaxed);
        lateness.push_back(late_ms);
        arrived.push_back(arrived_us);
      }
      // Complete the whole batch in parallel, then lease again.
      pending.store(n);
      calls.clear();
      for (int i = 0; i < n; ++i) calls.push_back(std::make_unique<SuccessCall>());
      for (int i = 0; i < n; ++i) {
        SuccessCall* c = calls[i].get();
        c->ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
        c->req.set_service(run->service_);
        c->req.set_lease_token(resp.envelopes(i).lease_token());
        stub->async()->ReportSuccess(&c->ctx, &c->req, &c->resp,
                                     [this](grpc::Status status) { OnSuccess(status); });
      }
    }

    void OnSuccess(const grpc::Status& status) {
      if (!status.ok()) {
        run->errors_.Add(status);
      } else {
        run->drained_.fetch_add(1, std::memory_order_relaxed);
      }
      if (pending.fetch_sub(1) == 1) Lease();
    }

    struct SuccessCall {
      grpc::ClientContext ctx;
      v1::ReportSuccessRequest req;
      v1::ReportSuccessResponse resp;
    };

    DrainRun* run;
    v1::RetryService::Stub* stub;
    std::unique_ptr<grpc::ClientContext> ctx;
    v1::LeaseRequest req;
    v1::LeaseResponse resp;
    std::vector<std::unique_ptr<SuccessCall>> calls;
    std::atomic<int> pending{0};
    std::vector<double> lateness;
    std::vector<int64_t> arrived;  // Wall-clock micros, parallel to `lateness`.
  };

  const int64_t measure_from_us_;
  const std::string service_;
  const int batch_;
  const absl::Duration wait_time_;
  const absl::Duration visibility_;
  std::vector<std::unique_ptr<v1::RetryService::Stub>> stubs_;
  std::vector<std::unique_ptr<Worker>> workers_;
  SlotLatch latch_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> drained_{0};
  std::atomic<int64_t> leased_{0};
  std::atomic<int64_t> leases_{0};
  std::atomic<int64_t> empty_leases_{0};
  std::atomic<int64_t> unknown_due_{0};
  std::atomic<int64_t> early_{0};
  std::atomic<int64_t> backlog_{0};
  ErrorCounts errors_;
};

int RunDrain(const ClientFlags& cf, const std::string& service, int workers, int batch,
             const std::string& wait_s, const std::string& visibility_s,
             const std::string& duration_s, const std::string& settle_s, int64_t expect) {
  const absl::Duration duration = ParseDurationFlag("duration", duration_s);
  const absl::Duration settle = ParseDurationFlag("settle", settle_s);
  auto channels = Connect(cf.target, cf.connections);
  const int64_t started_us = WallMicrosNow();
  DrainRun run(channels, workers, service, batch, ParseDurationFlag("wait-time", wait_s),
               ParseDurationFlag("visibility", visibility_s),
               started_us + absl::ToInt64Microseconds(settle));
  const Steady::time_point start = Steady::now();
  const Steady::time_point deadline = start + absl::ToChronoNanoseconds(duration);
  run.Start();
  Steady::time_point next_report = start + std::chrono::seconds(10);
  bool reached = false;
  Steady::time_point first_drained = Steady::time_point::max();
  while (!run.WaitFor(std::chrono::milliseconds(50))) {
    const Steady::time_point now = Steady::now();
    if (first_drained == Steady::time_point::max() && run.Drained() > 0) first_drained = now;
    if (expect > 0 && run.Drained() >= expect && !reached) {
      reached = true;
      run.Stop();
    }
    if (now >= deadline) run.Stop();
    if (now >= next_report) {
      std::cerr << "retryd_loadgen: drain: " << run.Drained() << " drained in "
                << static_cast<int>(Seconds(now - start)) << " s\n";
      next_report = now + std::chrono::seconds(10);
    }
  }
  const double elapsed = Seconds(Steady::now() - start);
  const json timeline = run.Timeline(started_us);
  std::vector<double> late = run.Lateness();
  const Summary s = Summarize(late);
  const double drain_time =
      first_drained == Steady::time_point::max() ? 0.0 : Seconds(Steady::now() - first_drained);
  json out{{"mode", "drain-lateness"},
           {"target", cf.target},
           {"service", service},
           {"workers", workers},
           {"batch", batch},
           {"elapsed_s", elapsed},
           {"expected", expect},
           {"drained", run.Drained()},
           {"leased", run.Leased()},
           {"all_drained", expect > 0 && run.Drained() >= expect},
           {"drain_rate_s", drain_time > 0 ? run.Drained() / drain_time : 0.0},
           {"lateness_ms", SummaryJson(s)},
           {"p50_ms", s.p50},
           {"p99_ms", s.p99},
           {"max_ms", s.max},
           {"count", s.count},
           {"early", run.Early()},
           {"backlog", run.Backlog()},
           {"unknown_due", run.UnknownDue()},
           {"started_unix_us", started_us},
           {"ended_unix_us", WallMicrosNow()},
           {"settle_s", absl::ToDoubleSeconds(settle)},
           {"timeline_per_second", timeline},
           {"leases", run.Leases()},
           {"empty_leases", run.EmptyLeases()},
           {"errors", run.Errors().Total()},
           {"error_detail", run.Errors().Json()}};
  std::cout << out.dump() << std::endl;
  return 0;
}

// ---------------------------------------------------------------------------------------------
// ready: how long a just-exec'ed server took to log server_started, accept TCP, answer the health
// check SERVING, and answer one real RPC (a Lease that goes through retryd's engine).

bool TcpAccepts(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return ok;
}

std::shared_ptr<grpc::Channel> FreshChannel(int port) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port),
                                   grpc::InsecureChannelCredentials(), args);
}

// grpc.health.v1.Health/Check for the whole server, without the health protos: the request is
// empty and a SERVING response is the two bytes {field 1, varint 1}.
bool HealthServing(int port) {
  auto channel = FreshChannel(port);
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(Wall::now() + std::chrono::seconds(2));
  grpc::ByteBuffer request;  // Empty HealthCheckRequest.
  grpc::Slice empty("", 0);
  request = grpc::ByteBuffer(&empty, 1);
  grpc::ByteBuffer response;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  grpc::Status result;
  stub.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&](grpc::Status s) {
                   std::lock_guard<std::mutex> lock(mu);
                   result = std::move(s);
                   done = true;
                   cv.notify_all();
                 });
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return done; });
  if (!result.ok()) return false;
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return false;
  std::string bytes;
  for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return bytes == std::string("\x08\x01", 2);
}

bool RpcAnswers(int port, const std::string& service) {
  auto stub = v1::RetryService::NewStub(FreshChannel(port));
  grpc::ClientContext ctx;
  ctx.set_deadline(Wall::now() + std::chrono::seconds(5));
  v1::LeaseRequest req;
  req.set_service(service);
  req.set_max_messages(1);
  v1::LeaseResponse resp;
  return stub->Lease(&ctx, req, &resp).ok();
}

bool ProcessAlive(int pid) {
  if (pid <= 0) return true;
  std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
  std::string line;
  if (!stat || !std::getline(stat, line)) return false;
  const size_t paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] != 'Z';
}

int RunReady(const std::string& log_path, double t0_epoch, int port, int pid,
             const std::string& timeout_s, const std::string& probe_service) {
  const absl::Duration timeout = ParseDurationFlag("timeout", timeout_s);
  const int64_t t0_us = static_cast<int64_t>(t0_epoch * 1e6);
  auto since_ms = [&] { return static_cast<double>(WallMicrosNow() - t0_us) / 1000.0; };
  const Steady::time_point deadline = Steady::now() + absl::ToChronoNanoseconds(timeout);
  json out{{"mode", "ready"}, {"pid", pid}};
  std::optional<double> line_ms, tcp_ms, health_ms, rpc_ms;
  std::string log;
  size_t scanned = 0;
  static const std::regex kPort("\"grpc_port\":([0-9]+)");
  static const std::regex kStartup("\"startup_seconds\":([0-9.eE+-]+)");
  static const std::regex kScheduled("\"scheduled\":([0-9]+)");
  while (Steady::now() < deadline) {
    if (!line_ms) {
      std::ifstream in(log_path, std::ios::binary);
      log.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      const size_t at = log.find("\"server_started\"", scanned > 64 ? scanned - 64 : 0);
      if (at != std::string::npos) {
        line_ms = since_ms();
        const size_t bol = log.rfind('\n', at);
        const size_t eol = log.find('\n', at);
        const std::string line = log.substr(bol == std::string::npos ? 0 : bol + 1,
                                            eol == std::string::npos ? std::string::npos
                                                                     : eol - bol - 1);
        std::smatch m;
        if (std::regex_search(line, m, kPort) && port == 0) port = std::stoi(m[1]);
        if (std::regex_search(line, m, kStartup)) out["startup_seconds_logged"] = std::stod(m[1]);
        if (std::regex_search(line, m, kScheduled)) out["scheduled_logged"] = std::stoll(m[1]);
      }
      scanned = log.size();
    }
    if (port > 0 && !tcp_ms && TcpAccepts(port)) tcp_ms = since_ms();
    if (tcp_ms && !health_ms && HealthServing(port)) health_ms = since_ms();
    if (health_ms && !rpc_ms && RpcAnswers(port, probe_service)) rpc_ms = since_ms();
    if (line_ms && rpc_ms) break;
    if (!ProcessAlive(pid)) {
      out["error"] = "the server process exited";
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(tcp_ms ? 2 : 1));
  }
  out["port"] = port;
  out["to_log_line_ms"] = line_ms ? json(*line_ms) : json(nullptr);
  out["to_tcp_ms"] = tcp_ms ? json(*tcp_ms) : json(nullptr);
  out["to_health_ms"] = health_ms ? json(*health_ms) : json(nullptr);
  out["to_rpc_ms"] = rpc_ms ? json(*rpc_ms) : json(nullptr);
  const bool ok = line_ms && rpc_ms;
  if (!ok && !out.contains("error")) out["error"] = "timed out";
  std::cout << out.dump() << std::endl;
  return ok ? 0 : 1;
}

// ---------------------------------------------------------------------------------------------
// replay-pacing: how closely a replay keeps to its max_per_second. The server paces a replay by
// elapsed time (ReplayRunner: floor(rate * t) envelopes by time t, one batch per tick), and
// `replayed` is committed with each batch, so Δreplayed/Δt between two GetReplay observations
// some seconds apart is the achieved rate; the quantization is one tick's batch at each end.

struct ReplayPacingFlags {
  double rate = 500;
  int64_t count = 0;  // 0: enough for the warm-up and the window at `rate`, plus 5 s.
  std::string duration = "10s";
  std::string warmup = "1s";
  std::string poll = "50ms";
  std::string start_timeout = "30s";
};

struct ReplayObservation {
  Steady::time_point at;  // Midpoint of the GetReplay call.
  int64_t replayed = 0;
  v1::ReplayState state = v1::REPLAY_STATE_UNSPECIFIED;
};

bool ReplayEnded(v1::ReplayState s) {
  return s == v1::REPLAY_SUCCEEDED || s == v1::REPLAY_FAILED || s == v1::REPLAY_CANCELLED;
}

std::string StatusText(const grpc::Status& s) {
  return absl::StrCat("code ", static_cast<int>(s.error_code()), ": ", s.error_message());
}

grpc::Status GetReplay(v1::AdminService::Stub& admin, const std::string& name,
                       absl::Duration timeout, v1::Replay* out, ReplayObservation* obs) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  v1::GetReplayRequest req;
  req.set_name(name);
  const Steady::time_point t0 = Steady::now();
  grpc::Status s = admin.GetReplay(&ctx, req, out);
  const Steady::time_point t1 = Steady::now();
  if (s.ok() && obs != nullptr) {
    obs->at = t0 + (t1 - t0) / 2;
    obs->replayed = out->replayed();
    obs->state = out->state();
  }
  return s;
}

// `replayed` as last observed at or before `t` (observations are in time order).
int64_t ReplayedAt(const std::vector<ReplayObservation>& obs, Steady::time_point t) {
  int64_t n = 0;
  for (const auto& o : obs) {
    if (o.at > t) break;
    n = o.replayed;
  }
  return n;
}

// Envelopes replayed in each whole second from `from` on (boundaries resolved to the poll before
// them, so a count may move one poll's worth between neighbouring seconds).
std::vector<int64_t> ReplayTimeline(const std::vector<ReplayObservation>& obs,
                                    Steady::time_point from) {
  std::vector<int64_t> per_second;
  if (obs.empty()) return per_second;
  for (int k = 0; from + std::chrono::seconds(k + 1) <= obs.back().at; ++k) {
    per_second.push_back(ReplayedAt(obs, from + std::chrono::seconds(k + 1)) -
                         ReplayedAt(obs, from + std::chrono::seconds(k)));
  }
  return per_second;
}

int RunReplayPacing(const ClientFlags& cf, EnvelopeSpec spec, const ReplayPacingFlags& f) {
  const absl::Duration duration = ParseDurationFlag("duration", f.duration);
  const absl::Duration warmup = ParseDurationFlag("warmup", f.warmup);
  const absl::Duration poll = ParseDurationFlag("poll", f.poll);
  const absl::Duration start_timeout = ParseDurationFlag("start-timeout", f.start_timeout);
  const absl::Duration rpc_timeout = ParseDurationFlag("rpc-timeout", cf.rpc_timeout);
  if (duration <= absl::ZeroDuration()) Die("--duration: must be > 0");
  if (poll <= absl::ZeroDuration() || poll > absl::Seconds(1)) {
    Die("--poll: must be > 0 and at most 1s");
  }
  const int64_t count =
      f.count > 0 ? f.count
                  : std::max<int64_t>(100, static_cast<int64_t>(std::ceil(
                                               f.rate * absl::ToDoubleSeconds(
                                                            warmup + duration + absl::Seconds(5)))));
  json out{{"mode", "replay-pacing"},
           {"target", cf.target},
           {"service", spec.service},
           {"count", count},
           {"requested_rate", f.rate},
           {"warmup_s", absl::ToDoubleSeconds(warmup)},
           {"duration_s", absl::ToDoubleSeconds(duration)},
           {"poll_ms", absl::ToDoubleMilliseconds(poll)}};
  auto fail = [&out](const std::string& why) {
    out["error"] = why;
    std::cout << out.dump() << std::endl;
    return 1;
  };

  // 1. Dead-letter `count` envelopes of the service: PERMANENT failures are dead-lettered at once.
  auto channels = Connect(cf.target, cf.connections);
  SubmitOptions opts;
  opts.rpc_timeout = rpc_timeout;
  spec.error_class = v1::PERMANENT;
  opts.spec = spec;
  opts.limit = count;
  json dl = Preload(channels, cf.concurrency, opts, absl::Seconds(600), "dead-letter");
  out["dead_letter"] = json{{"dead_lettered", dl["dead_lettered"]},
                            {"elapsed_s", dl["elapsed_s"]},
                            {"throughput_ops_s", dl["throughput_ops_s"]},
                            {"errors", dl["errors"]},
                            {"error_detail", dl["error_detail"]}};
  if (dl["dead_lettered"].get<int64_t>() != count) {
    return fail(absl::StrCat("only ", dl["dead_lettered"].get<int64_t>(), " of ", count,
                             " envelopes were dead-lettered"));
  }
  std::cerr << "retryd_loadgen: replay-pacing: " << count << " dead letters in "
            << dl["elapsed_s"].get<double>() << " s; starting the replay at " << f.rate << "/s\n";

  // 2. StartReplay of that service at the requested rate; the answer has the applied rate.
  auto admin = v1::AdminService::NewStub(channels[0]);
  std::mt19937_64 rng = SeededRng(7);
  v1::StartReplayRequest start;
  start.mutable_filter()->set_service(spec.service);
  start.set_max_per_second(f.rate);
  start.set_note("retryd_loadgen replay-pacing");
  start.set_request_id(RandomId(rng));
  v1::Replay started;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + rpc_timeout));
    const grpc::Status s = admin->StartReplay(&ctx, start, &started);
    if (!s.ok()) return fail(absl::StrCat("StartReplay: ", StatusText(s)));
  }
  const Steady::time_point started_at = Steady::now();
  const double applied = started.max_per_second();
  out["replay"] = started.name();
  out["applied_rate"] = applied;
  out["capped"] = applied < f.rate;
  out["matched"] = started.matched();

  // 3. Poll: wait until it replays, skip the warm-up, then measure over `duration`.
  std::vector<ReplayObservation> obs;
  std::optional<size_t> running, first, second;
  std::string error;
  Steady::time_point next_poll = started_at;
  while (true) {
    ReplayObservation o;
    v1::Replay r;
    const grpc::Status s = GetReplay(*admin, started.name(), rpc_timeout, &r, &o);
    if (!s.ok()) {
      error = absl::StrCat("GetReplay: ", StatusText(s));
      break;
    }
    obs.push_back(o);
    const size_t i = obs.size() - 1;
    if (!running && o.state == v1::REPLAY_RUNNING && o.replayed > 0) running = i;
    if (running && !first && o.at >= obs[*running].at + absl::ToChronoNanoseconds(warmup)) {
      first = i;
    }
    if (first && o.at >= obs[*first].at + absl::ToChronoNanoseconds(duration)) {
      second = i;
      break;
    }
    if (ReplayEnded(o.state)) {
      error = absl::StrCat("the replay ended (", v1::ReplayState_Name(o.state),
                           ") before the window closed: raise --count");
      if (o.state == v1::REPLAY_FAILED) absl::StrAppend(&error, "; server: ", r.error());
      break;
    }
    if (!running && o.at - started_at > absl::ToChronoNanoseconds(start_timeout)) {
      error = "the replay did not start replaying within --start-timeout";
      break;
    }
    next_poll += absl::ToChronoNanoseconds(poll);
    std::this_thread::sleep_until(std::max(next_poll, Steady::now()));
  }

  // 4. Cancel it (it would otherwise run on through the rest of the dead letters).
  v1::Replay cancelled;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + rpc_timeout));
    v1::CancelReplayRequest req;
    req.set_name(started.name());
    const grpc::Status s = admin->CancelReplay(&ctx, req, &cancelled);
    out["cancel"] = s.ok() ? json("OK") : json(StatusText(s));
  }
  v1::Replay last;
  if (GetReplay(*admin, started.name(), rpc_timeout, &last, nullptr).ok()) {
    out["final_state"] = v1::ReplayState_Name(last.state());
    out["final_replayed"] = last.replayed();
    // The server's own view: everything replayed between its start_time and end_time.
    const double server_s = static_cast<double>(TimestampMicros(last.end_time()) -
                                                TimestampMicros(last.start_time())) /
                            1e6;
    if (last.has_start_time() && last.has_end_time() && server_s > 0) {
      out["overall_rate_server_clock"] = last.replayed() / server_s;
    }
  }

  out["polls"] = obs.size();
  if (running) {
    out["time_to_replaying_ms"] = Millis(obs[*running].at - started_at);
    out["timeline_per_second"] = ReplayTimeline(obs, obs[*running].at);
  }
  if (!second) return fail(error.empty() ? "no measurement window" : error);
  const double window = Seconds(obs[*second].at - obs[*first].at);
  const int64_t in_window = obs[*second].replayed - obs[*first].replayed;
  const double achieved = in_window / window;
  const double error_pct = applied > 0 ? 100.0 * (achieved - applied) / applied : 0.0;
  out["window_s"] = window;
  out["replayed_in_window"] = in_window;
  out["achieved_rate"] = achieved;
  out["error_pct"] = error_pct;
  out["within_5pct"] = applied > 0 && std::abs(error_pct) <= 5.0;
  std::cout << out.dump() << std::endl;
  return 0;
}

}  // namespace
}  // namespace bench

int main(int argc, char** argv) {
  using namespace bench;
  signal(SIGPIPE, SIG_IGN);
  CLI::App app{"retryd_loadgen: closed-loop load generator for retryd (see BENCHMARKS.md)"};
  app.require_subcommand(1);

  ClientFlags cf;
  EnvelopeSpec spec;
  std::string duration = "10s", warmup = "1s";

  CLI::App* submit = app.add_subcommand("submit", "ReportFailure of distinct envelopes");
  AddClientFlags(submit, &cf);
  submit->add_option("--duration", duration, "measured time after the warm-up (default 10s)");
  submit->add_option("--warmup", warmup, "unmeasured time first (default 1s)");
  submit->add_option("--payload-bytes", spec.payload_bytes, "payload size (default 1024)")
      ->check(CLI::Range(0, 1 << 20));
  submit->add_option("--service", spec.service, "envelope.service (default bench)");

  int64_t count = 100000;
  std::string offset = "10s", spread = "120s", max_time = "3600s";
  CLI::App* preload = app.add_subcommand("preload", "submit N envelopes falling due over time");
  AddClientFlags(preload, &cf);
  preload->add_option("--count", count, "envelopes to submit")->check(CLI::Range(1LL, 1LL << 40));
  preload->add_option("--offset", offset,
                      "first due time, after the preload started (default 10s)");
  preload->add_option("--spread", spread, "due times spread uniformly over this (default 120s)");
  preload->add_option("--max-time", max_time, "give up after this (default 3600s)");
  preload->add_option("--payload-bytes", spec.payload_bytes, "payload size (default 1024)")
      ->check(CLI::Range(0, 1 << 20));
  preload->add_option("--service", spec.service, "envelope.service (default bench)");

  int batch = 1;
  int64_t preload_count = 0;
  std::string preload_time = "10s";
  CLI::App* cycle = app.add_subcommand("cycle", "Lease + ReportSuccess of due envelopes");
  AddClientFlags(cycle, &cf);
  cycle->add_option("--duration", duration, "measured time after the warm-up (default 10s)");
  cycle->add_option("--warmup", warmup, "unmeasured time first (default 1s)");
  cycle->add_option("--batch", batch, "Lease max_messages (default 1)")->check(CLI::Range(1, 100));
  cycle->add_option("--preload", preload_count,
                    "envelopes to preload first (default 0: preload for --preload-time)");
  cycle->add_option("--preload-time", preload_time, "preload for this long (default 10s)");
  cycle->add_option("--payload-bytes", spec.payload_bytes, "payload size (default 1024)")
      ->check(CLI::Range(0, 1 << 20));
  cycle->add_option("--service", spec.service,
                    "service with a tiny backoff policy (default bench)");
  bool refill = false;
  cycle->add_flag("--refill", refill,
                  "each cycle first reports a new first failure (ReportFailure + Lease + "
                  "ReportSuccess), so the pool never runs dry: sustained successes for as long "
                  "as --duration");

  int workers = 8;
  int drain_batch = 32;
  std::string wait_time = "1s", visibility = "60s", drain_duration = "300s", settle = "0s";
  int64_t expect = 0;
  std::string drain_service = "bench";
  CLI::App* drain = app.add_subcommand("drain-lateness", "long-poll, lease and complete what falls due");
  drain->add_option("--target", cf.target, "server address host:port")->required();
  drain->add_option("--connections", cf.connections, "TCP connections (default 1)")
      ->check(CLI::Range(1, 64));
  drain->add_option("--service", drain_service, "service to drain (default bench)");
  drain->add_option("--workers", workers, "concurrent long-polling workers (default 8)")
      ->check(CLI::Range(1, 10000));
  drain->add_option("--batch", drain_batch, "Lease max_messages (default 32)")
      ->check(CLI::Range(1, 100));
  drain->add_option("--wait-time", wait_time, "Lease wait_time (default 1s)");
  drain->add_option("--visibility", visibility, "Lease visibility_timeout (default 60s)");
  drain->add_option("--duration", drain_duration, "stop after this (default 300s)");
  drain->add_option("--expect", expect, "stop once this many were completed (default 0: never)");
  drain->add_option("--settle", settle,
                    "leave out envelopes due before start + this: a backlog, not lateness "
                    "(default 0s)");

  std::string log_path, ready_timeout = "120s", probe_service = "bench-probe";
  double t0 = 0;
  int port = 0, pid = 0;
  CLI::App* ready = app.add_subcommand("ready", "time a just-started server until it serves");
  ready->add_option("--log", log_path, "the server's stderr log file")->required();
  ready->add_option("--t0", t0, "when the server was exec'ed, unix seconds ($EPOCHREALTIME)")
      ->required();
  ready->add_option("--port", port, "gRPC port (default: read from the server_started line)");
  ready->add_option("--pid", pid, "the server's pid (to notice it died)");
  ready->add_option("--timeout", ready_timeout, "give up after this (default 120s)");
  ready->add_option("--probe-service", probe_service,
                    "service of the probe Lease (default bench-probe)");

  ReplayPacingFlags rp;
  EnvelopeSpec replay_spec;
  replay_spec.service = "replay";
  CLI::App* replay = app.add_subcommand(
      "replay-pacing", "dead-letter N envelopes, replay them at --rate, measure the pace");
  AddClientFlags(replay, &cf);
  replay->add_option("--service", replay_spec.service,
                     "service of the dead letters; its policy's replay.maxPerSecond caps the "
                     "rate (default replay)");
  replay->add_option("--rate", rp.rate, "StartReplay max_per_second (default 500)")
      ->check(CLI::Range(0.1, 1e6));
  replay->add_option("--count", rp.count,
                     "dead letters to create (default: rate x (warmup + duration + 5 s), "
                     "at least 100)")
      ->check(CLI::Range(int64_t{1}, int64_t{100000000}));
  replay->add_option("--duration", rp.duration, "measured window (default 10s)");
  replay->add_option("--warmup", rp.warmup,
                     "unmeasured time after the replay starts replaying (default 1s)");
  replay->add_option("--poll", rp.poll, "GetReplay interval (default 50ms)");
  replay->add_option("--start-timeout", rp.start_timeout,
                     "give up if it is not replaying after this (default 30s)");
  replay->add_option("--payload-bytes", replay_spec.payload_bytes, "payload size (default 1024)")
      ->check(CLI::Range(0, 1 << 20));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  if (*submit) return RunSubmit(cf, spec, duration, warmup);
  if (*preload) return RunPreload(cf, spec, count, offset, spread, max_time);
  if (*cycle) {
    return RunCycle(cf, spec, batch, preload_count, preload_time, duration, warmup, refill);
  }
  if (*drain) {
    return RunDrain(cf, drain_service, workers, drain_batch, wait_time, visibility,
                    drain_duration, settle, expect);
  }
  if (*replay) return RunReplayPacing(cf, replay_spec, rp);
  if (*ready) return RunReady(log_path, t0, port, pid, ready_timeout, probe_service);
  return 2;
}
