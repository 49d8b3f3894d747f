// SPDX-License-Identifier: MIT
// libFuzzer target: tokenizer input through qforge::fuzz::tokenizer (entry_points.hpp), the same entry
// the regression test replays in the normal build.
#include "entry_points.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  qforge::fuzz::tokenizer({data, size});
  return 0;
}
