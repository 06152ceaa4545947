// retryd_dlqbench: the dead-letter benchmark (issue #5). Two subcommands, each printing ONE JSON
// object on stdout (diagnostics on stderr); bench/dlq.sh drives them.
//
//   preload  writes --count dead letters straight into a data dir through SqliteStore (the
//            server's own store code, in 20 000-row transactions: the API would take minutes to
//            make a million dead letters, and the write path is not what is measured here).
//            Services, error codes, reasons and messages vary so that stats and groups have work.
//   measure  against a running retryd on that data dir: GetDeadLetterStats (all services and
//            one), the first page of ListFailureGroups, and a full page-by-page ListDeadLetters
//            of --list-count rows (page size 1000), each --runs times; medians.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "nlohmann/json.hpp"
#include "retryd/v1/admin_service.grpc.pb.h"
#include "server/store/sqlite_store.h"

namespace {

namespace v1 = retryd::v1;
using json = nlohmann::json;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

int Preload(const std::string& data_dir, int64_t count, int services) {
  auto store = retryd::SqliteStore::Open(data_dir);
  if (!store.ok()) {
    std::cerr << store.status() << "\n";
    return 1;
  }
  std::mt19937_64 rng(42);
  const absl::Time now = absl::Now();
  const auto start = std::chrono::steady_clock::now();
  const char* kCodes[] = {"UPSTREAM_TIMEOUT", "BAD_SCHEMA", "HTTP_503", "HTTP_404", "AUTH",
                          "DEADLOCK", "RATE_LIMITED", "INVALID_FIELD"};
  const char* kMessages[] = {"upstream timed out after %d ms", "item %d not found",
                             "field 'f%d' is invalid", "connection reset by peer %d"};
  for (int64_t done = 0; done < count;) {
    if (!(*store)->Begin().ok()) return 1;
    for (int i = 0; i < 20000 && done < count; ++i, ++done) {
      retryd::Envelope e;
      // Skewed: service 0 holds about a third of the rows.
      const int svc = rng() % 3 == 0 ? 0 : static_cast<int>(rng() % services);
      e.service = absl::StrCat("svc-", svc);
      e.message_id = absl::StrCat("dl-", done);
      e.attempt = 5;
      e.max_attempts = 5;
      e.first_seen_at = now - absl::Hours(80);
      e.created_at = e.first_seen_at;
      e.updated_at = now;
      e.schema_version = rng() % 2 ? "v1" : "v2";
      e.payload = std::string(64, 'p');
      e.state = retryd::EnvelopeState::kDeadLettered;
      e.dead_lettered_at = now - absl::Seconds(static_cast<int64_t>(rng() % (72 * 3600)));
      e.dead_letter_reason = static_cast<retryd::DeadLetterReason>(1 + rng() % 4);
      e.last_error.error_code = kCodes[rng() % 8];
      e.last_error_class = static_cast<retryd::ErrorClass>(1 + rng() % 3);
      e.last_error.error_class = e.last_error_class;
      char msg[128];
      snprintf(msg, sizeof msg, kMessages[rng() % 4], static_cast<int>(rng() % 100000));
      e.last_error.message = msg;
      e.last_decision = retryd::DecisionKind::kDeadLettered;
      absl::Status s = (*store)->Insert(&e);
      if (!s.ok()) {
        std::cerr << s << "\n";
        return 1;
      }
    }
    if (!(*store)->Commit().ok()) return 1;
    if (done % 200000 == 0) std::cerr << "preloaded " << done << "\n";
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << json{{"count", count}, {"seconds", secs}}.dump() << "\n";
  return 0;
}

template <typename F>
double TimeIt(F f) {
  const auto start = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

std::unique_ptr<grpc::ClientContext> Ctx() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  return ctx;
}

int Measure(const std::string& addr, int runs, int64_t list_count) {
  auto channel = grpc::CreateChannel(addr, grpc::InsecureChannelCredentials());
  auto stub = v1::AdminService::NewStub(channel);
  std::vector<double> stats_all, stats_one, groups, listing, listing_service, page_ms;
  int64_t total = 0, listed = 0, listed_service = 0, group_count = 0;
  bool ok = true;
  for (int r = 0; r < runs; ++r) {
    stats_all.push_back(TimeIt([&] {
      v1::GetDeadLetterStatsResponse resp;
      grpc::Status s = stub->GetDeadLetterStats(Ctx().get(), v1::GetDeadLetterStatsRequest(), &resp);
      ok = ok && s.ok();
      total = resp.total();
    }));
    stats_one.push_back(TimeIt([&] {
      v1::GetDeadLetterStatsRequest req;
      req.set_service("svc-1");
      v1::GetDeadLetterStatsResponse resp;
      ok = ok && stub->GetDeadLetterStats(Ctx().get(), req, &resp).ok();
    }));
    groups.push_back(TimeIt([&] {
      v1::ListFailureGroupsRequest req;
      req.set_page_size(50);
      v1::ListFailureGroupsResponse resp;
      ok = ok && stub->ListFailureGroups(Ctx().get(), req, &resp).ok();
      group_count = resp.groups_size();
    }));
    // Unfiltered: the first list_count rows, page by page.
    listing.push_back(TimeIt([&] {
      v1::ListDeadLettersRequest req;
      req.set_page_size(1000);
      listed = 0;
      while (listed < list_count) {
        v1::ListDeadLettersResponse resp;
        const double ms = TimeIt([&] {
          ok = ok && stub->ListDeadLetters(Ctx().get(), req, &resp).ok();
        });
        page_ms.push_back(ms);
        listed += resp.dead_letters_size();
        if (resp.next_page_token().empty()) break;
        req.set_page_token(resp.next_page_token());
      }
    }));
    // Filtered by service and reason: every page to the end.
    listing_service.push_back(TimeIt([&] {
      v1::ListDeadLettersRequest req;
      req.set_page_size(1000);
      req.mutable_filter()->set_service("svc-0");
      req.mutable_filter()->add_reasons(v1::RETRY_EXHAUSTED);
      req.mutable_filter()->add_reasons(v1::NON_RETRYABLE);
      listed_service = 0;
      while (true) {
        v1::ListDeadLettersResponse resp;
        ok = ok && stub->ListDeadLetters(Ctx().get(), req, &resp).ok();
        listed_service += resp.dead_letters_size();
        if (resp.next_page_token().empty()) break;
        req.set_page_token(resp.next_page_token());
      }
    }));
  }
  std::sort(page_ms.begin(), page_ms.end());
  json out = {
      {"ok", ok},
      {"runs", runs},
      {"dead_letters", total},
      {"stats_all_ms_median", Median(stats_all)},
      {"stats_one_service_ms_median", Median(stats_one)},
      {"failure_groups_first_page_ms_median", Median(groups)},
      {"failure_groups_on_page", group_count},
      {"list_rows", listed},
      {"list_all_pages_ms_median", Median(listing)},
      {"list_page_ms_median", Median(page_ms)},
      {"list_page_ms_p99", page_ms.empty() ? 0 : page_ms[page_ms.size() * 99 / 100]},
      {"list_service_reason_rows", listed_service},
      {"list_service_reason_all_pages_ms_median", Median(listing_service)},
      {"samples_ms",
       {{"stats_all", stats_all}, {"list_all_pages", listing}, {"list_service", listing_service}}},
  };
  std::cout << out.dump() << "\n";
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"retryd_dlqbench: dead-letter benchmark"};
  app.require_subcommand(1);
  std::string data_dir, addr = "127.0.0.1:50051";
  int64_t count = 1000000, list_count = 100000;
  int services = 20, runs = 3;
  CLI::App* preload = app.add_subcommand("preload", "write dead letters into a data dir");
  preload->add_option("--data-dir", data_dir)->required();
  preload->add_option("--count", count);
  preload->add_option("--services", services);
  CLI::App* measure = app.add_subcommand("measure", "time stats and listings");
  measure->add_option("--addr", addr);
  measure->add_option("--runs", runs);
  measure->add_option("--list-count", list_count);
  CLI11_PARSE(app, argc, argv);
  if (preload->parsed()) return Preload(data_dir, count, services);
  return Measure(addr, runs, list_count);
}
