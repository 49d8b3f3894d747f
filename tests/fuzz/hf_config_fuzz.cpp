// SPDX-License-Identifier: MIT
// libFuzzer target: hf_config input through qforge::fuzz::hf_config (entry_points.hpp), the same entry
// the regression test replays in the normal build.
#include "entry_points.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  qforge::fuzz::hf_config({data, size});
  return 0;
}
