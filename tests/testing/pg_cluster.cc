#include "tests/testing/pg_cluster.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "server/store/pg/pg_conn.h"

namespace retryd::testing {

namespace {

// Runs `scripts/pg-cluster.sh ACTION DIR`; its stdout (the DSN) on success.
absl::StatusOr<std::string> RunScript(const std::string& action, const std::string& dir) {
  const std::string cmd = absl::StrCat("bash '", PgClusterScript(), "' ", action, " '", dir, "'");
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return absl::InternalError("popen failed");
  std::string out;
  char buf[512];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  const int rc = pclose(p);
  if (rc != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(cmd, " failed (status ", rc, "); PostgreSQL tests need Debian's postgresql "
                     "(bash scripts/install-deps.sh postgres), or RETRYD_SKIP_POSTGRES_TESTS=1 "
                     "to skip them"));
  }
  return std::string(absl::StripAsciiWhitespace(out));
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return std::string(absl::StripAsciiWhitespace(s));
}

}  // namespace

std::string PgClusterScript() {
  return absl::StrCat(RETRYD_SOURCE_DIR, "/scripts/pg-cluster.sh");
}

bool SkipPostgres() {
  const char* v = std::getenv("RETRYD_SKIP_POSTGRES_TESTS");
  return v != nullptr && std::string(v) == "1";
}

absl::StatusOr<std::unique_ptr<PgCluster>> PgCluster::Start() {
  char tmpl[] = "/tmp/retryd-pgtest.XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return absl::InternalError("mkdtemp failed");
  auto dsn = RunScript("start", tmpl);
  if (!dsn.ok()) return dsn.status();
  return std::unique_ptr<PgCluster>(new PgCluster(tmpl, *dsn, /*owned=*/true));
}

absl::StatusOr<PgCluster*> PgCluster::Shared() {
  static std::mutex mu;
  static PgCluster* shared = nullptr;
  static absl::Status failed;
  std::lock_guard<std::mutex> lock(mu);
  if (shared != nullptr) return shared;
  if (!failed.ok()) return failed;
  // ctest's cluster, when its fixture started one and it answers.
  const std::string dir = RETRYD_TEST_PG_DIR;
  const std::string dsn = ReadFile(absl::StrCat(dir, "/dsn"));
  if (!dsn.empty() && pg::Connection::Open(dsn).ok()) {
    shared = new PgCluster(dir, dsn, /*owned=*/false);
    return shared;
  }
  auto started = Start();
  if (!started.ok()) {
    failed = started.status();
    return failed;
  }
  shared = started->release();
  // Stopped at exit (gtest's main returns normally).
  std::atexit([] { delete shared; });
  return shared;
}

PgCluster::~PgCluster() {
  if (!owned_) return;
  RunScript("stop", dir_).IgnoreError();
  rmdir(dir_.c_str());
}

absl::StatusOr<std::string> PgCluster::CreateDatabase() {
  static std::atomic<int> counter{0};
  const std::string name = absl::StrCat("t_", getpid(), "_", counter.fetch_add(1));
  auto conn = pg::Connection::Open(dsn_);
  if (!conn.ok()) return conn.status();
  absl::Status s = (*conn)->ExecScript(absl::StrCat("CREATE SCHEMA ", name));
  if (!s.ok()) return s;
  return absl::StrCat(dsn_, " options='-csearch_path=", name, "'");
}

int PgCluster::postmaster_pid() const { return std::atoi(ReadFile(dir_ + "/pid").c_str()); }

void PgCluster::Kill() {
  if (!owned_) return;
  const int pid = postmaster_pid();
  if (pid > 0) kill(pid, SIGKILL);
}

absl::Status PgCluster::Restart() {
  auto dsn = RunScript("restart", dir_);
  return dsn.status();
}

}  // namespace retryd::testing
