// What the region file's tests (config_test.cc) and the pair file's (pair_config_test.cc) share:
// editing a valid file one line at a time, and a fixture that writes a file into a temporary
// directory, loads it and reads the error it fails with.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "base/fs.h"
#include "base/status.h"

namespace tandem::region::test_util {

inline std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

inline std::string Join(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& l : lines) out += l + "\n";
  return out;
}

// `text` with line `n` (1-based) replaced by `with` ("" removes the line).
inline std::string ReplaceLine(const std::string& text, int n, const std::string& with) {
  std::vector<std::string> lines = Lines(text);
  if (with.empty()) {
    lines.erase(lines.begin() + (n - 1));
  } else {
    lines[n - 1] = with;
  }
  return Join(lines);
}

// `text` with `insert` inserted after line `n`, so that it becomes line n + 1.
inline std::string InsertAfterLine(const std::string& text, int n, const std::string& insert) {
  std::vector<std::string> lines = Lines(text);
  lines.insert(lines.begin() + n, insert);
  return Join(lines);
}

// What postgres.managed.run_as defaults to for this process.
inline std::string DefaultRunAs() { return geteuid() == 0 ? "tandem" : ""; }

// A fixture for the tests of one kind of configuration file, Config, loaded by `load`: each test
// gets a temporary directory of its own, holding the file `file_name` that Load writes.
template <typename Config>
class ConfigFileTest : public ::testing::Test {
 protected:
  using LoadFunction = Result<Config> (*)(const std::string&);

  ConfigFileTest(std::string file_name, LoadFunction load)
      : file_name_(std::move(file_name)), load_(load) {}

  void SetUp() override {
    auto dir = TempDir::Create("tandem-config");
    ASSERT_TRUE(dir.ok()) << dir.status().ToString();
    dir_.emplace(std::move(dir).value());
    path_ = dir_->path() + "/" + file_name_;
  }

  // Writes `text` to the file and loads it.
  Result<Config> Load(const std::string& text) {
    Status written = WriteFileAtomic(path_, text);
    if (!written.ok()) return written;
    return load_(path_);
  }

  // The message loading `text` fails with; fails the test when it loads.
  std::string ErrorOf(const std::string& text) {
    auto c = Load(text);
    EXPECT_FALSE(c.ok()) << "loaded:\n" << text;
    if (c.ok()) return "";
    EXPECT_EQ(c.status().code(), Code::kInvalidArgument) << c.status().ToString();
    return c.status().message();
  }

  // "<path>:<line>: <rest>", as messages begin.
  std::string At(int line, const std::string& rest) const {
    return path_ + ":" + std::to_string(line) + ": " + rest;
  }

  std::optional<TempDir> dir_;
  std::string path_;

 private:
  const std::string file_name_;
  const LoadFunction load_;
};

}  // namespace tandem::region::test_util
