// SPDX-License-Identifier: MIT
// libFuzzer target: awq input through qforge::fuzz::awq_checkpoint (entry_points.hpp), the same entry
// the regression test replays in the normal build.
#include "entry_points.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  qforge::fuzz::awq_checkpoint({data, size});
  return 0;
}
