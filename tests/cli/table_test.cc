#include "client/cli/table.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace retryd::cli {
namespace {

TEST(TableTest, AlignsLeftWithTwoSpacesAndNoTrailingBlanks) {
  Table table({"NAME", "COUNT", "NOTE"});
  table.AddRow({"billing", "12", "ok"});
  table.AddRow({"a", "1234567", "x"});
  EXPECT_EQ(table.Render(/*with_headers=*/true),
            "NAME     COUNT    NOTE\n"
            "billing  12       ok\n"
            "a        1234567  x\n");
}

TEST(TableTest, NoHeadersSizesColumnsByRowsOnly) {
  Table table({"A_LONG_HEADER", "B"});
  table.AddRow({"x", "y"});
  EXPECT_EQ(table.Render(/*with_headers=*/false), "x  y\n");
}

TEST(TableTest, EmptyTablePrintsHeaderOrNothing) {
  Table table({"A", "B"});
  EXPECT_EQ(table.Render(true), "A  B\n");
  EXPECT_EQ(table.Render(false), "");
}

TEST(TableTest, EmptyCellsShowDashMissingCellsArePaddedExtraDropped) {
  Table table({"A", "B", "C"});
  table.AddRow({"1", ""});
  table.AddRow({"1", "2", "3", "4"});
  EXPECT_EQ(table.Render(true),
            "A  B  C\n"
            "1  -  -\n"
            "1  2  3\n");
}

TEST(TableTest, CellsAreSanitizedToOneLine) {
  Table table({"A", "B"});
  table.AddRow({"line1\nline2\tx", "esc\x1b[31m"});
  EXPECT_EQ(table.Render(false), "line1 line2 x  esc?[31m\n");
}

TEST(TableTest, WidthCountsCodePointsNotBytes) {
  Table table({"NAME", "N"});
  table.AddRow({"caf\xc3\xa9", "1"});  // "café": 5 bytes, 4 columns
  table.AddRow({"abcde", "2"});
  EXPECT_EQ(table.Render(true),
            "NAME   N\n"
            "caf\xc3\xa9   1\n"
            "abcde  2\n");
}

TEST(TableTest, IndentPrefixesEveryLine) {
  Table table({"A", "B"});
  table.AddRow({"1", "2"});
  EXPECT_EQ(table.Render(true, "  "), "  A  B\n  1  2\n");
}

TEST(KeyValuesTest, AlignsValuesAfterTheLongestLabel) {
  EXPECT_EQ(RenderKeyValues({{"Service", "billing"}, {"Message ID", "m-1"}}),
            "Service:     billing\n"
            "Message ID:  m-1\n");
}

TEST(KeyValuesTest, MultiLineValuesContinueAtTheValueColumn) {
  EXPECT_EQ(RenderKeyValues({{"Message", "first\r\nsecond\n\nthird"}, {"Id", "1"}}, "  "),
            "  Message:  first\n"
            "            second\n"
            "\n"
            "            third\n"
            "  Id:       1\n");
}

TEST(KeyValuesTest, EmptyValueLeavesNoTrailingBlanks) {
  EXPECT_EQ(RenderKeyValues({{"Empty", ""}, {"X", "y"}}), "Empty:\nX:      y\n");
}

}  // namespace
}  // namespace retryd::cli
