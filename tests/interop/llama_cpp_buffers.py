# SPDX-License-Identifier: MIT
"""Which CPU buffers llama.cpp (through llama-cpp-python) puts GGUF weights into, shared by the
interop test (tests/interop/check_llama_cpp.py) and the speed baseline (bench/llama_cpp_speed.py).

On a CPU with AMX, ggml uses extra CPU buffer types (AMX tiles, repacked layouts), and
llama-cpp-python 0.3.36 then crashes in eval on small-llama (512 wide, ffn 1280) with
llama-quantize's own Q8_0 / Q4_K_M / Q5_K_M files, byte-identical to qforge's. There the weights go
into plain buffers instead: the same tensors on ggml's generic CPU kernels. The choice is printed,
never hidden; QFORGE_LLAMA_CPP_EXTRA_BUFTS=1 (or mode "extra") keeps the extra buffer types.
"""
import os


def has_amx():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return "amx_int8" in f.read()
    except OSError:
        return False


def choose_buffers(llama_cpp, mode="auto"):
    """mode: auto (plain on AMX hosts unless QFORGE_LLAMA_CPP_EXTRA_BUFTS=1), extra, plain.
    Returns "extra" or "plain"; for plain, every later Llama() of this process loads that way."""
    if mode == "auto":
        keep = not has_amx() or os.environ.get("QFORGE_LLAMA_CPP_EXTRA_BUFTS") == "1"
        mode = "extra" if keep else "plain"
    if mode == "plain":
        lc = llama_cpp.llama_cpp  # Llama() takes its model params from this module's default
        default = lc.llama_model_default_params

        def without_extra_bufts():
            params = default()
            params.use_extra_bufts = False
            return params

        lc.llama_model_default_params = without_extra_bufts
    elif mode != "extra":
        raise ValueError(f"llama.cpp buffers: unknown mode {mode!r} (auto, extra, plain)")
    return mode
