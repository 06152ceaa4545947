// The console's static files (server/console/assets/), compiled into the binary by
// embed_assets.cmake so that nothing is fetched at run time.
#ifndef RETRYD_SERVER_CONSOLE_ASSETS_H_
#define RETRYD_SERVER_CONSOLE_ASSETS_H_

#include "absl/strings/string_view.h"

namespace retryd {

struct ConsoleAsset {
  absl::string_view path;          // e.g. "/static/app.js".
  absl::string_view content_type;  // e.g. "text/javascript; charset=utf-8".
  absl::string_view body;
};

// The asset served at `path`, or nullptr.
const ConsoleAsset* FindConsoleAsset(absl::string_view path);

}  // namespace retryd

#endif  // RETRYD_SERVER_CONSOLE_ASSETS_H_
