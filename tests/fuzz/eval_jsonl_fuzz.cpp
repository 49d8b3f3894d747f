// SPDX-License-Identifier: MIT
// libFuzzer target: eval_jsonl input through qforge::fuzz::eval_jsonl (entry_points.hpp), the same entry
// the regression test replays in the normal build.
#include "entry_points.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  qforge::fuzz::eval_jsonl({data, size});
  return 0;
}
