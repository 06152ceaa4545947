// A small column formatter (Debian 12 packages no table library): left-aligned columns separated
// by two spaces, the last column never padded, so no line has trailing blanks. And a key/value
// block for detail views ("Service:   billing").
#ifndef RETRYD_CLIENT_CLI_TABLE_H_
#define RETRYD_CLIENT_CLI_TABLE_H_

#include <string>
#include <utility>
#include <vector>

namespace retryd::cli {

class Table {
 public:
  explicit Table(std::vector<std::string> headers);

  // Adds a row. Cells are sanitized (SanitizeCell); a missing cell is empty, an extra one is
  // dropped, an empty one shows as kNone.
  void AddRow(std::vector<std::string> cells);

  size_t row_count() const { return rows_.size(); }

  // The table, one line per row (each ending in '\n'), headers first when `with_headers`.
  // Every line starts with `indent`. Empty string when there is nothing to print.
  std::string Render(bool with_headers, const std::string& indent = "") const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

// Label/value lines with the values aligned: "Label:" padded to the longest label plus two
// spaces. A value spanning several lines continues at the value column. Each line ends in '\n'.
using KeyValues = std::vector<std::pair<std::string, std::string>>;
std::string RenderKeyValues(const KeyValues& fields, const std::string& indent = "");

}  // namespace retryd::cli

#endif  // RETRYD_CLIENT_CLI_TABLE_H_
