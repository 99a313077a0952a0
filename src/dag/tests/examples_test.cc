// The bundles under examples/ are what a new user deploys first: they must import cleanly.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "dag/bundle.h"

namespace tandem::dag {
namespace {

std::map<std::string, std::string> ReadDir(const std::filesystem::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::ifstream in(e.path());
    std::stringstream text;
    text << in.rdbuf();
    files[std::filesystem::relative(e.path(), dir).string()] = text.str();
  }
  return files;
}

TEST(ExamplesTest, EveryExampleBundleImportsWithoutErrors) {
  const std::filesystem::path root = std::filesystem::path(TANDEM_SOURCE_DIR) / "examples/bundles";
  int bundles = 0;
  for (const auto& e : std::filesystem::directory_iterator(root)) {
    if (!e.is_directory()) continue;
    ++bundles;
    Bundle b = ParseBundle(ReadDir(e.path()));
    for (const ImportError& err : b.errors) {
      ADD_FAILURE() << e.path().filename() << ": " << err.file << ":" << err.line << ": "
                    << err.message;
    }
    EXPECT_FALSE(b.dags.empty()) << e.path();
  }
  EXPECT_GE(bundles, 3);
}

TEST(ExamplesTest, TheFanOutRunsItsPartsInParallel) {
  const std::filesystem::path dir =
      std::filesystem::path(TANDEM_SOURCE_DIR) / "examples/bundles/fan_out";
  Bundle b = ParseBundle(ReadDir(dir));
  const DagSpec* fan = b.find_dag("fan_out");
  ASSERT_NE(fan, nullptr);
  EXPECT_EQ(fan->downstream("split").size(), 24u);
  EXPECT_EQ(fan->task("merge").upstream.size(), 24u);
}

}  // namespace
}  // namespace tandem::dag
