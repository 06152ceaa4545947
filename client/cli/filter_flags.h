// The flags shared by the listing and bulk commands: the structured Filter of DESIGN.md as flags
// (--service, --error-code, --class, --reason, --schema-version, --message-id, --fingerprint,
// --after, --before), the pagination flags (--page-size, --page-token, --all, --limit), and how
// they turn into request fields, a one-line filter summary and a "next page" hint.
//
// Within one repeatable flag the values are ORed; different flags are ANDed (as the server
// evaluates Filter). Times are RFC 3339 ("2025-01-02T15:04:05Z", any offset), "now", or an age
// meaning "that long ago": "90m", "2h", "7d" (a leading '-' is allowed: "-2h" is the same).
// Ages are resolved once per command, to whole seconds, so every page of one listing uses the
// same filter (the server rejects a page token reused with a different filter).
#ifndef RETRYD_CLIENT_CLI_FILTER_FLAGS_H_
#define RETRYD_CLIENT_CLI_FILTER_FLAGS_H_

#include <ostream>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "client/cli/common.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "retryd/v1/envelope.pb.h"

namespace CLI {
class App;
}  // namespace CLI

namespace retryd::cli {

struct FilterFlags {
  std::string service;
  std::vector<std::string> error_codes;
  std::vector<std::string> classes;  // Enum names, upper case once CLI11 checked them.
  std::vector<std::string> reasons;  // Enum names, upper case once CLI11 checked them.
  std::vector<std::string> schema_versions;
  std::vector<std::string> message_ids;
  std::vector<std::string> fingerprints;
  std::string after;
  std::string before;

  // True when no filter flag was given.
  bool empty() const;
};

// Which listing the filter selects from: dead letters have a reason and a failure fingerprint,
// scheduled retries do not (the server refuses those fields there), and the time bounds apply to
// dead_lettered_at or next_retry_at.
enum class FilterTarget { kDeadLetters, kRetries };

// Adds the filter flags for `target` to `cmd`.
void AddFilterFlags(CLI::App* cmd, FilterFlags* flags, FilterTarget target);

// The help footer of a command with filter flags: how values combine and the time forms.
extern const char kFilterHelp[];

// Parses a time bound (see the file comment). `now` resolves ages. On failure returns false and
// sets `error`.
bool ParseTimeBound(const std::string& text, absl::Time now, absl::Time* out, std::string* error);

// Fills `filter` from `flags`, resolving ages against `now`. Returns false with `error` set when
// the flags do not fit together (--after not before --before).
bool BuildFilter(const FilterFlags& flags, absl::Time now, retryd::v1::Filter* filter,
                 std::string* error);

// A compact one-line description of `filter` for tables, prompts and detail views:
// "service=billing error_code=A|B class=TRANSIENT after=2025-01-02T03:04:05Z"; "(all)" when empty.
std::string FilterSummary(const retryd::v1::Filter& filter);

// The flags that reproduce `filter`, each preceded by a space (" --service billing --error-code
// A"), values shell-quoted, times as exact RFC 3339. Empty for an empty filter.
std::string FilterAsFlags(const retryd::v1::Filter& filter);

// `s` as one shell word: unchanged when it only has safe characters, else single-quoted.
std::string ShellQuote(const std::string& s);

// --- pagination ----------------------------------------------------------------------------

struct PageFlags {
  int page_size = 0;  // 0 = the server's default (50)
  std::string page_token;
  bool all = false;   // follow page tokens to the end
  int limit = 0;      // follow page tokens until this many rows (0 = no limit)

  bool follow() const { return all || limit > 0; }
};

// Adds --page-size, --page-token, --all and --limit to `cmd`; `noun` is what is listed ("dead
// letters").
void AddPageFlags(CLI::App* cmd, PageFlags* flags, const std::string& noun);

// The stderr hint that shows how to fetch the next page, e.g.
// "Next page: retryctl dlq list --service billing --page-size 20 --page-token abc".
// `filter` may be null for listings without a filter.
std::string NextPageHint(const std::string& command, const retryd::v1::Filter* filter,
                         int page_size, const std::string& next_page_token);

// Fetches one page, or follows page tokens as `flags` say, merging every page's rows into
// `merged` (whose next_page_token is the last page's). `fetch(page_token, page_size, &page)`
// makes one call; `rows(&response)` returns the response's repeated field. With --limit the page
// size of the last calls shrinks so no page is cut and the token stays valid. Returns the first
// failed call's status.
template <typename Response, typename Fetch, typename Rows>
grpc::Status FetchPages(const PageFlags& flags, Fetch fetch, Rows rows, Response* merged) {
  std::string token = flags.page_token;
  while (true) {
    int page_size = flags.page_size;
    if (flags.limit > 0) {
      const int remaining = flags.limit - rows(merged)->size();
      if (page_size == 0 || page_size > remaining) page_size = remaining;
    }
    Response page;
    const grpc::Status status = fetch(token, page_size, &page);
    if (!status.ok()) return status;
    for (auto& row : *rows(&page)) *rows(merged)->Add() = std::move(row);
    merged->set_next_page_token(page.next_page_token());
    if (!flags.follow() || page.next_page_token().empty()) break;
    if (flags.limit > 0 && rows(merged)->size() >= flags.limit) break;
    if (page.next_page_token() == token) {
      return grpc::Status(grpc::StatusCode::INTERNAL,
                          "the server returned the same page token twice; stopping");
    }
    token = page.next_page_token();
  }
  return grpc::Status::OK;
}

// A whole listing command: FetchPages, then the rows as JSON (one document) or as the table
// `format(response, headers)` returns, `empty_message` on stderr when there are no rows, and the
// next-page hint on stderr when there are more. Returns the exit code.
template <typename Response, typename Fetch, typename Rows, typename Format>
int RunListing(const CliContext& ctx, const std::string& command,
               const retryd::v1::Filter* filter, const PageFlags& flags, Fetch fetch, Rows rows,
               Format format, const std::string& empty_message) {
  Response merged;
  const grpc::Status status = FetchPages(flags, fetch, rows, &merged);
  if (!status.ok()) return ReportRpcError(ctx, status);
  int rc = kExitOk;
  if (ctx.output() == OutputFormat::kJson) {
    rc = PrintJson(ctx, merged);
  } else {
    *ctx.out << format(merged, ctx.headers());
    ctx.out->flush();
    if (rows(&merged)->empty()) *ctx.err << empty_message << std::endl;
  }
  if (rc == kExitOk && !merged.next_page_token().empty()) {
    *ctx.err << NextPageHint(command, filter, flags.page_size, merged.next_page_token())
             << std::endl;
  }
  return rc;
}

}  // namespace retryd::cli

#endif  // RETRYD_CLIENT_CLI_FILTER_FLAGS_H_
