// Storage faults against the real server: retryd_faulty (retryd with FaultVfs under SQLite, see
// tests/testing/fault_vfs.h) runs under concurrent load until the injected fault stops it; then
// the production binary restarts on the same data directory, and every change that was
// acknowledged must be there, nothing half-applied (SQLite's integrity check, and every
// acknowledged state), and the server must serve again.
//
//   PowerCut*: the power is cut at a random write or sync (per seed): every file goes back to its
//              last successful sync. This is the test of "durable before acknowledged": it fails
//              if an answer is ever sent before the log holding it was synced (for instance with
//              synchronous=NORMAL and no sync of our own).
//   *Error:    the Nth write, sync or read fails with an I/O error (a failed sync also drops the
//              file's unsynced writes, as the kernel does): the process must stop (exit 74,
//              store_failed) without acknowledging what the failure may have lost.
//   DiskFull:  the files may not grow past a byte budget (SQLITE_FULL): the same, and the server
//              serves again once there is room.
//
// Seeds: RETRYD_FAULT_SEEDS (default 6 per test; the closing figures come from longer runs by
// hand, e.g. RETRYD_FAULT_SEEDS=200), the first seed RETRYD_FAULT_FIRST_SEED (default 1).
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/testing/fault_vfs.h"
#include "tests/testing/integrity_check.h"
#include "tests/testing/requests.h"
#include "tests/testing/server_process.h"

namespace retryd::testing {
namespace {

constexpr char kService[] = "faults";
// Short backoff, so that leases find due retries while the load runs.
constexpr char kConfig[] = R"({
  "metricsAddr": "off",
  "policies": [{"name": "default", "maxAttempts": 20,
                "backoff": {"initial": "0.01s", "multiplier": 1, "max": "0.01s",
                            "jitter": "NONE"}}]
})";

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  int n = 0;
  return v != nullptr && absl::SimpleAtoi(v, &n) && n > 0 ? n : fallback;
}

// What the clients were told: first failures acknowledged, and retries acknowledged as
// succeeded.
struct Acknowledged {
  std::mutex mu;
  std::vector<std::string> reported;
  std::vector<std::string> succeeded;
};

// Runs first failures from `reporters` clients and Lease + ReportSuccess cycles from `cyclers`
// clients until the server stops answering (or `limit` passes).
void DriveLoad(const std::string& address, Acknowledged* acked, absl::Duration limit) {
  constexpr int kReporters = 6;
  constexpr int kCyclers = 2;
  std::atomic<bool> stop{false};
  const absl::Time deadline = absl::Now() + limit;
  std::vector<std::thread> threads;
  for (int c = 0; c < kReporters; ++c) {
    threads.emplace_back([&, c] {
      auto stub = v1::RetryService::NewStub(
          grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
      for (int n = 0; !stop && absl::Now() < deadline; ++n) {
        const std::string id = absl::StrCat("r", c, "-", n);
        v1::ReportFailureResponse resp;
        grpc::Status s = stub->ReportFailure(Context(absl::Seconds(5)).get(),
                                             FirstFailure(kService, id), &resp);
        if (!s.ok()) break;
        std::lock_guard<std::mutex> lock(acked->mu);
        acked->reported.push_back(id);
      }
      stop = true;
    });
  }
  for (int c = 0; c < kCyclers; ++c) {
    threads.emplace_back([&] {
      auto stub = v1::RetryService::NewStub(
          grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
      while (!stop && absl::Now() < deadline) {
        v1::LeaseResponse leased;
        grpc::Status s = LeaseSome(*stub, kService, 8, absl::Milliseconds(50), &leased);
        if (!s.ok()) break;
        for (const v1::LeasedEnvelope& l : leased.envelopes()) {
          v1::ReportSuccessRequest req;
          req.set_service(kService);
          req.set_lease_token(l.lease_token());
          v1::ReportSuccessResponse resp;
          s = stub->ReportSuccess(Context(absl::Seconds(5)).get(), req, &resp);
          if (!s.ok()) break;
          std::lock_guard<std::mutex> lock(acked->mu);
          acked->succeeded.push_back(l.envelope().message_id());
        }
        if (!s.ok()) break;
      }
      stop = true;
    });
  }
  for (std::thread& t : threads) t.join();
}

// Restarts the production binary on the faulty run's directory and checks every
// acknowledgement, the file's integrity, and that the server takes new work. Returns the number
// of acknowledgements checked.
int64_t VerifyRecovery(const std::string& dir, ServerProcess& server, Acknowledged& acked,
                       const std::string& label) {
  server.UseBinary("");
  absl::Status restarted = server.Restart();
  EXPECT_TRUE(restarted.ok()) << label << ": the server did not start after the fault: "
                              << restarted << "\n" << server.log();
  if (!restarted.ok()) return 0;
  auto admin = server.AdminStub();
  std::map<std::string, v1::EnvelopeState> states;
  int64_t missing = 0;
  auto state_of = [&](const std::string& id) -> std::optional<v1::EnvelopeState> {
    v1::Envelope e;
    grpc::Status s = GetEnvelope(*admin, kService, id, &e);
    if (!s.ok()) return std::nullopt;
    return e.state();
  };
  for (const std::string& id : acked.reported) {
    if (!state_of(id).has_value()) {
      ++missing;
      ADD_FAILURE() << label << ": acknowledged first failure " << id << " is lost";
    }
  }
  for (const std::string& id : acked.succeeded) {
    std::optional<v1::EnvelopeState> state = state_of(id);
    if (state != v1::SUCCEEDED) {
      ++missing;
      ADD_FAILURE() << label << ": " << id << " was acknowledged as succeeded, is "
                    << (state.has_value() ? v1::EnvelopeState_Name(*state) : "lost");
    }
  }
  // New work is taken.
  auto stub = server.RetryStub();
  v1::ReportFailureResponse resp;
  grpc::Status s = Report(*stub, FirstFailure(kService, "after-recovery"), &resp);
  EXPECT_TRUE(s.ok()) << label << ": " << s.error_message();
  absl::StatusOr<int> code = server.Terminate(absl::Seconds(20));
  EXPECT_TRUE(code.ok() && *code == 0) << label << ": " << code.status();
  EXPECT_EQ(IntegrityCheck(dir + "/data/retryd.db"), "ok") << label;
  EXPECT_EQ(missing, 0) << label;
  return static_cast<int64_t>(acked.reported.size() + acked.succeeded.size());
}

struct RunResult {
  bool injected = false;  // The VFS logged the fault (it was reached).
  bool started = false;  // False: the fault stopped the start-up (which then must not serve).
  int exit_code = -1;    // -1: did not exit by itself.
  int64_t acknowledged = 0;
  // The fault stopped the process as a store failure must: at start-up, or with exit code 74.
  bool stopped_as_store_failure() const { return !started || exit_code == 74; }
};

// One seed: retryd_faulty with `fault` under load until it exits, then the recovery check.
RunResult RunWithFault(const std::string& fault, const std::string& label) {
  const std::string dir = MakeTempDir();
  RunResult result;
  absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::StartBinary(
      RETRYD_FAULTY_BIN, {"RETRYD_FAULT=" + fault}, dir, kConfig);
  Acknowledged acked;
  std::unique_ptr<ServerProcess> process;
  if (server.ok()) {
    result.started = true;
    process = *std::move(server);
    DriveLoad(process->address(), &acked, absl::Seconds(8));
    absl::StatusOr<int> code = process->WaitForExit(absl::Seconds(10));
    if (code.ok()) result.exit_code = *code;
    result.injected = absl::StrContains(process->log(), "fault_vfs: ");
    // What the faulty run logged at error level (the store failure, or an error it answered).
    int shown = 0;
    for (absl::string_view line : absl::StrSplit(process->log(), '\n')) {
      if (shown < 3 && absl::StrContains(line, "\"level\":\"error\"")) {
        std::printf("%s: %s\n", label.c_str(), std::string(line.substr(0, 400)).c_str());
        ++shown;
      }
    }
  } else {
    // The fault hit during start-up: nothing was acknowledged; recovery must still work. Start
    // the production binary on the directory through a fresh process object.
    std::fprintf(stderr, "%s: stopped during start-up: %s\n", label.c_str(),
                 std::string(server.status().message()).substr(0, 300).c_str());
    absl::StatusOr<std::unique_ptr<ServerProcess>> clean = ServerProcess::Start(dir, kConfig);
    EXPECT_TRUE(clean.ok()) << label << ": " << clean.status();
    if (!clean.ok()) return result;
    process = *std::move(clean);
    process->Kill();
  }
  result.acknowledged = VerifyRecovery(dir, *process, acked, label);
  std::printf("%s: fault=%s exit=%d acknowledged=%lld (first failures %zu, successes %zu)\n",
              label.c_str(), fault.c_str(), result.exit_code,
              static_cast<long long>(result.acknowledged), acked.reported.size(),
              acked.succeeded.size());
  RemoveTree(dir);
  return result;
}

class FaultInjectionTest : public ::testing::Test {
 protected:
  int seeds_ = EnvInt("RETRYD_FAULT_SEEDS", 6);
  int first_ = EnvInt("RETRYD_FAULT_FIRST_SEED", 1);
};

TEST_F(FaultInjectionTest, PowerCutLosesNothingAcknowledged) {
  int64_t acknowledged = 0;
  int cuts = 0;
  for (int seed = first_; seed < first_ + seeds_; ++seed) {
    std::mt19937_64 rng(seed);
    // Start-up takes a few dozen events; the load makes thousands a second.
    const int64_t at = std::uniform_int_distribution<int64_t>(10, 6000)(rng);
    const RunResult r = RunWithFault(absl::StrCat("powercut_at=", at),
                                     absl::StrCat("powercut seed ", seed));
    if (r.exit_code == kPowerCutExitCode || !r.started) ++cuts;
    acknowledged += r.acknowledged;
  }
  std::printf("power cuts: %d of %d seeds cut the power; %lld acknowledgements checked\n", cuts,
              seeds_, static_cast<long long>(acknowledged));
  EXPECT_EQ(cuts, seeds_) << "every seed's cut point must be reached";
  EXPECT_GT(acknowledged, 0);
}

// The I/O error tests: the process must stop with the store-failure exit code.
void ExpectStopsOnError(const std::string& kind, int64_t lo, int64_t hi, int seeds, int first) {
  int stopped = 0;
  for (int seed = first; seed < first + seeds; ++seed) {
    std::mt19937_64 rng(seed);
    const int64_t at = std::uniform_int_distribution<int64_t>(lo, hi)(rng);
    const RunResult r = RunWithFault(absl::StrCat("fail=", kind, ",at=", at),
                                     absl::StrCat(kind, " error seed ", seed));
    if (r.stopped_as_store_failure()) ++stopped;
  }
  EXPECT_EQ(stopped, seeds) << "every injected " << kind << " error must stop the process (exit 74)";
}

TEST_F(FaultInjectionTest, SyncErrorStopsWithoutAcknowledging) {
  ExpectStopsOnError("sync", 5, 400, seeds_, first_);
}

TEST_F(FaultInjectionTest, WriteErrorStopsWithoutAcknowledging) {
  ExpectStopsOnError("write", 20, 4000, seeds_, first_);
}

TEST_F(FaultInjectionTest, ReadErrorStopsOrIsAnsweredAndLosesNothing) {
  // A read can fail on the writer's connection or the checkpointer's (the process stops) or on a
  // reader's (that call is answered with an error); either way nothing acknowledged may be lost.
  // Reads are rare (the page cache serves most), so the fault comes early.
  int injected = 0;
  for (int seed = first_; seed < first_ + seeds_; ++seed) {
    std::mt19937_64 rng(seed);
    const int64_t at = std::uniform_int_distribution<int64_t>(5, 300)(rng);
    const RunResult r =
        RunWithFault(absl::StrCat("fail=read,at=", at), absl::StrCat("read error seed ", seed));
    if (r.injected || !r.started) ++injected;
  }
  EXPECT_GT(injected, 0) << "no seed reached its read fault";
}

TEST_F(FaultInjectionTest, DiskFullStopsCleanlyAndServesAgainWhenThereIsRoom) {
  int stopped = 0;
  for (int seed = first_; seed < first_ + seeds_; ++seed) {
    std::mt19937_64 rng(seed);
    const int64_t budget = std::uniform_int_distribution<int64_t>(100000, 3000000)(rng);
    const RunResult r = RunWithFault(absl::StrCat("full_after_bytes=", budget),
                                     absl::StrCat("disk full seed ", seed));
    if (r.stopped_as_store_failure()) ++stopped;
  }
  EXPECT_EQ(stopped, seeds_);
}

}  // namespace
}  // namespace retryd::testing
