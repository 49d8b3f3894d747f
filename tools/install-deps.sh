#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs what qforge's build, tests and tools need, skipping whatever is already present:
# Debian packages (compilers, CMake, header libraries), then the Python clients the interop tests
# drive (gguf, numpy, safetensors, tokenizers, llama-cpp-python). llama-cpp-python compiles llama.cpp
# (~15 min on 2 cores) and is installed only when missing; pip caches the wheel afterwards. Where
# torch and transformers are installed, gptqmodel too (transformers' AWQ loader needs it), in a venv
# that sees the system packages and leaves them as they are.
set -euo pipefail

debs=(build-essential cmake pkg-config python3 python3-pip python3-venv libxsimd-dev catch2 libbenchmark-dev
      libcli11-dev nlohmann-json3-dev libsimdjson-dev libpcre2-dev libutf8proc-dev gnuplot-nox
      clang)  # clang: libFuzzer for tools/fuzz.sh
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "qforge: installing Debian packages: ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
pip_flags=(-q)
$PY -m pip install --help 2>/dev/null | grep -q -- --break-system-packages && pip_flags+=(--break-system-packages)
if ! $PY -c "import gguf, numpy, safetensors, tokenizers" 2>/dev/null; then
  echo "qforge: installing Python test clients (gguf numpy safetensors tokenizers)" >&2
  $PY -m pip install "${pip_flags[@]}" gguf numpy safetensors tokenizers
fi
if [ "${QFORGE_SKIP_LLAMA_CPP:-0}" != 1 ] && ! $PY -c "import llama_cpp" 2>/dev/null; then
  echo "qforge: installing llama-cpp-python (compiles llama.cpp once, ~15 min on 2 cores)" >&2
  CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) $PY -m pip install "${pip_flags[@]}" llama-cpp-python
fi

# gptqmodel is pure Python; its CPU AWQ kernel is compiled on first use (~5 min on 2 cores, cached
# under ~/.cache/gptqmodel). Without torch + transformers the test that uses it reports "skipped".
hf_venv=${QFORGE_HF_VENV:-$HOME/.cache/qforge/hf-venv}
if [ "${QFORGE_SKIP_HF:-0}" != 1 ] && $PY -c "import torch, transformers" >/dev/null 2>&1 &&
   ! $PY -c "import gptqmodel" >/dev/null 2>&1 && ! "$hf_venv/bin/python" -c "import gptqmodel" >/dev/null 2>&1; then
  echo "qforge: installing gptqmodel into $hf_venv (transformers' AWQ loader)" >&2
  $PY -m venv --system-site-packages "$hf_venv"
  "$hf_venv/bin/python" -m pip install -q gptqmodel
fi
