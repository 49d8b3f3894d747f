// SPDX-License-Identifier: MIT
// libFuzzer target: safetensors input through qforge::fuzz::safetensors_file (entry_points.hpp), the same entry
// the regression test replays in the normal build.
#include "entry_points.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  qforge::fuzz::safetensors_file({data, size});
  return 0;
}
