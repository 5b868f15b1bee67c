#!/usr/bin/env bash
# Compiles every kernel header in csrc/cuda/ with plain nvcc, no PyTorch and no GPU needed.
#
# Each *.cuh must end with an `#ifdef B2V_CUDA_COMPILE_CHECK` block that explicitly
# instantiates its kernels for float, half and bfloat16, so template bodies are really
# compiled (a header without one fails the check). For every header a one-line .cu that
# defines B2V_CUDA_COMPILE_CHECK and includes it is compiled with `nvcc -c` for sm_80 and
# sm_90 into a temporary directory. Exits non-zero on the first error; prints a skip
# message and exits 0 when nvcc is not installed.
#
# Usage: csrc/cuda/compile_check.sh          (NVCC=/path/to/nvcc to choose the compiler,
#                                              B2V_CUDA_ARCHS="80 90" to choose the targets)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=find_nvcc.sh
. "$here"/find_nvcc.sh

archs="${B2V_CUDA_ARCHS:-80 90}"
gencode=()
for arch in $archs; do
  gencode+=("-gencode=arch=compute_${arch},code=sm_${arch}")
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

shopt -s nullglob
headers=("$here"/*.cuh)
if [[ ${#headers[@]} -eq 0 ]]; then
  echo "compile_check: no .cuh headers in $here" >&2
  exit 1
fi

echo "compile_check: $("$nvcc" --version | tail -n 1), targets sm_${archs// /, sm_}"
status=0
for header in "${headers[@]}"; do
  name="$(basename "$header" .cuh)"
  if ! grep -q '^#ifdef B2V_CUDA_COMPILE_CHECK' "$header"; then
    echo "FAIL $name.cuh: no '#ifdef B2V_CUDA_COMPILE_CHECK' block instantiating its kernels" >&2
    status=1
    continue
  fi
  printf '#define B2V_CUDA_COMPILE_CHECK\n#include "%s"\n' "$header" >"$work/$name.cu"
  if "$nvcc" -c -std=c++17 -O3 "${gencode[@]}" -Werror all-warnings \
      -I"$here" "$work/$name.cu" -o "$work/$name.o"; then
    echo "ok   $name.cuh"
  else
    echo "FAIL $name.cuh" >&2
    status=1
  fi
done
exit "$status"
