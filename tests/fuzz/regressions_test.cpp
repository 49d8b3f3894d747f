// SPDX-License-Identifier: MIT
// Replays every saved fuzz input through the same entry points the fuzz targets use
// (entry_points.hpp), in the normal build: tests/fuzz/regressions/<target>/* are inputs that once
// crashed, leaked or tripped UBSan (each fixed in its reader), tests/fuzz/corpus/<target>/* the
// committed seeds. Each must end in success or a qforge::error; anything else fails here.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "fuzz/entry_points.hpp"

namespace fs = std::filesystem;

namespace {

std::vector<std::uint8_t> slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::size_t replay(const char* folder) {
  const fs::path root = fs::path(__FILE__).parent_path() / folder;
  std::size_t n = 0;
  for (const auto& t : qforge::fuzz::targets) {
    const fs::path dir = root / t.name;
    if (!fs::is_directory(dir)) continue;
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(dir))
      if (e.is_regular_file()) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      INFO(t.name << ": " << f.filename().string());
      const auto data = slurp(f);
      CHECK_NOTHROW(t.run(data));
      ++n;
    }
  }
  return n;
}

}  // namespace

TEST_CASE("fuzz: every input that once failed now ends in success or qforge::error", "[fuzz]") {
  CHECK(replay("regressions") > 0);
}

TEST_CASE("fuzz: the committed seeds load", "[fuzz]") { CHECK(replay("corpus") > 0); }
