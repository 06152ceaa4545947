#include "client/cli/table.h"

#include <algorithm>

#include "absl/strings/str_split.h"
#include "client/cli/format.h"

namespace retryd::cli {
namespace {

constexpr char kColumnGap[] = "  ";

void AppendLine(const std::vector<std::string>& cells, const std::vector<size_t>& widths,
                const std::string& indent, std::string* out) {
  out->append(indent);
  for (size_t i = 0; i < cells.size(); ++i) {
    out->append(cells[i]);
    if (i + 1 == cells.size()) break;
    out->append(widths[i] - DisplayWidth(cells[i]), ' ');
    out->append(kColumnGap);
  }
  out->push_back('\n');
}

}  // namespace

Table::Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}

void Table::AddRow(std::vector<std::string> cells) {
  cells.resize(headers_.size());
  for (std::string& cell : cells) {
    cell = cell.empty() ? std::string(kNone) : SanitizeCell(cell);
  }
  rows_.push_back(std::move(cells));
}

std::string Table::Render(bool with_headers, const std::string& indent) const {
  if (headers_.empty() || (rows_.empty() && !with_headers)) return "";
  std::vector<size_t> widths(headers_.size(), 0);
  if (with_headers) {
    for (size_t i = 0; i < headers_.size(); ++i) widths[i] = DisplayWidth(headers_[i]);
  }
  for (const auto& row : rows_) {
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], DisplayWidth(row[i]));
  }
  std::string out;
  if (with_headers) AppendLine(headers_, widths, indent, &out);
  for (const auto& row : rows_) AppendLine(row, widths, indent, &out);
  return out;
}

std::string RenderKeyValues(const KeyValues& fields, const std::string& indent) {
  size_t label_width = 0;
  for (const auto& [label, value] : fields) {
    label_width = std::max(label_width, DisplayWidth(label) + 1);  // + ':'
  }
  const size_t value_column = label_width + 2;
  std::string out;
  for (const auto& [label, value] : fields) {
    out.append(indent);
    out.append(label);
    out.push_back(':');
    bool first = true;
    for (absl::string_view raw : absl::StrSplit(value, '\n')) {
      if (!raw.empty() && raw.back() == '\r') raw.remove_suffix(1);
      const std::string line = SanitizeCell(std::string_view(raw.data(), raw.size()));
      if (first) {
        if (!line.empty()) out.append(value_column - DisplayWidth(label) - 1, ' ');
        first = false;
      } else {
        out.push_back('\n');
        if (!line.empty()) out.append(indent).append(value_column, ' ');
      }
      out.append(line);
    }
    out.push_back('\n');
  }
  return out;
}

}  // namespace retryd::cli
