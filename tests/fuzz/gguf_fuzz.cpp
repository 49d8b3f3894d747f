// SPDX-License-Identifier: MIT
// libFuzzer target: gguf input through qforge::fuzz::gguf (entry_points.hpp), the same entry
// the regression test replays in the normal build.
#include "entry_points.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  qforge::fuzz::gguf({data, size});
  return 0;
}
