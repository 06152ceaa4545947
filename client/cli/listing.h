// The listing commands of AdminService (dlq list, dlq groups, retries list, replay list, audit):
// one page call per FetchPages step and the whole command around RunListing, so each command
// only names its RPC, its rows, its table and its "nothing found" line.
#ifndef RETRYD_CLIENT_CLI_LISTING_H_
#define RETRYD_CLIENT_CLI_LISTING_H_

#include <string>
#include <utility>

#include "absl/time/clock.h"
#include "client/cli/common.h"
#include "client/cli/filter_flags.h"
#include "retryd/v1/admin_service.grpc.pb.h"

namespace retryd::cli {

// A paginated AdminService RPC, e.g. &retryd::v1::AdminService::Stub::ListDeadLetters.
template <typename Request, typename Response>
using AdminListMethod = grpc::Status (retryd::v1::AdminService::Stub::*)(grpc::ClientContext*,
                                                                         const Request&,
                                                                         Response*);

// The `fetch` of FetchPages/RunListing for `method`: each call sends a copy of `base` (which
// carries the filter, if the RPC has one) with the page size and token, under the connection's
// deadline and metadata. `stub` must outlive the returned callable.
template <typename Request, typename Response>
auto AdminPageFetcher(const ConnectionOptions& conn, retryd::v1::AdminService::Stub* stub,
                      AdminListMethod<Request, Response> method, Request base) {
  return [conn, stub, method, base = std::move(base)](const std::string& token, int page_size,
                                                       Response* page) {
    Request request = base;
    request.set_page_size(page_size);
    request.set_page_token(token);
    grpc::ClientContext call;
    PrepareContext(conn, &call);
    return (stub->*method)(&call, request, page);
  };
}

// A listing without a filter (replay list, audit): RunListing over `method`.
template <typename Request, typename Response, typename Rows, typename Format>
int RunAdminListing(const CliContext& ctx, const std::string& command, const PageFlags& pages,
                    AdminListMethod<Request, Response> method, Rows rows, Format format,
                    const std::string& empty_message) {
  const ConnectionOptions conn = ctx.connection();
  auto stub = retryd::v1::AdminService::NewStub(CreateChannel(conn));
  return RunListing<Response>(ctx, command, nullptr, pages,
                              AdminPageFetcher(conn, stub.get(), method, Request()), rows, format,
                              empty_message);
}

// A listing with the filter flags (dlq list, dlq groups, retries list): the flags become one
// Filter (ages resolved now, once, so every page uses the same filter; a usage error when they
// do not fit together), sent with every page and repeated in the next-page hint.
template <typename Request, typename Response, typename Rows, typename Format>
int RunFilteredAdminListing(const CliContext& ctx, const std::string& command,
                            const FilterFlags& flags, const PageFlags& pages,
                            AdminListMethod<Request, Response> method, Rows rows, Format format,
                            const std::string& empty_message) {
  Request base;
  std::string error;
  if (!BuildFilter(flags, absl::Now(), base.mutable_filter(), &error)) {
    return ReportUsageError(ctx, command, error);
  }
  const ConnectionOptions conn = ctx.connection();
  auto stub = retryd::v1::AdminService::NewStub(CreateChannel(conn));
  return RunListing<Response>(ctx, command, &base.filter(), pages,
                              AdminPageFetcher(conn, stub.get(), method, base), rows, format,
                              empty_message);
}

}  // namespace retryd::cli

#endif  // RETRYD_CLIENT_CLI_LISTING_H_
