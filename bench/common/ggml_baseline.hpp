// SPDX-License-Identifier: MIT
// ggml's own quantizer as a benchmark baseline, shared by the encoder benches: ggml_quantize_chunk
// is looked up at run time in the libggml-base.so that llama-cpp-python ships (path from
// $QFORGE_GGML_LIB, else asked of python3), so the benches neither link nor require ggml. When the
// library is absent the lookup yields null and the callers skip their ggml rows.
#pragma once
#include <dlfcn.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace qforge::bench {

// ggml_quantize_chunk(type, src, dst, start, nrows, n_per_row, imatrix) -> bytes written.
using ggml_quantize_chunk_fn = std::size_t (*)(int, const float*, void*, std::int64_t, std::int64_t,
                                               std::int64_t, const float*);

inline std::string ggml_lib_path() {
  if (const char* env = std::getenv("QFORGE_GGML_LIB"); env != nullptr && *env != '\0') return env;
  FILE* p = ::popen("python3 -c \"import llama_cpp,os;print(os.path.dirname(llama_cpp.__file__))\""
                    " 2>/dev/null",
                    "r");
  if (p == nullptr) return "";
  char buf[4096] = {};
  const bool got = std::fgets(buf, sizeof buf, p) != nullptr;
  ::pclose(p);
  if (!got) return "";
  std::string dir(buf);
  while (!dir.empty() && (dir.back() == '\n' || dir.back() == '\r')) dir.pop_back();
  return dir.empty() ? "" : dir + "/lib/libggml-base.so";
}

// Loaded once per process; the handle is kept open for the life of the process on purpose.
inline ggml_quantize_chunk_fn ggml_quantize_chunk() {
  static const ggml_quantize_chunk_fn fn = [] {
    const std::string path = ggml_lib_path();
    void* h = path.empty() ? nullptr : ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (h == nullptr) {
      std::fprintf(stderr, "ggml baseline skipped: cannot load '%s'\n", path.c_str());
      return ggml_quantize_chunk_fn{nullptr};
    }
    return reinterpret_cast<ggml_quantize_chunk_fn>(::dlsym(h, "ggml_quantize_chunk"));
  }();
  return fn;
}

}  // namespace qforge::bench
