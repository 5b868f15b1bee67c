#!/usr/bin/env bash
# Builds the whole extension, CUDA launchers included, against a CUDA PyTorch on a machine
# with no GPU, then loads it and checks that every op has its CUDA kernel registered.
#
# compile_check.sh compiles the kernel headers with plain nvcc; this catches the rest: a
# launcher (*.cu) that does not compile against ATen's CUDA headers, a library that links
# with undefined symbols, a JIT build that cannot start without a visible GPU. Both build
# paths are checked: setup.py (`pip install -e .`'s extension) and the JIT loader
# (B2V_OPS=jit). Nothing runs on a GPU: whether the kernels compute the right thing is for
# tests/test_ops_cuda.py on a machine with one.
#
# The CUDA PyTorch goes into a throwaway virtual environment (several GB), never the
# project's. Skipped with a message, exit 0, when nvcc is not installed.
#
# Usage: csrc/cuda/build_check.sh
#   B2V_CUDA_TORCH   pip requirement of the CUDA PyTorch (default torch==2.14.1: its CUDA 13
#                    build matches the nvcc 13 of these machines; the major versions must agree)
#   CUDA_HOME        the toolkit (default: /usr/local/cuda when it has headers, else two levels
#                    above the real path of nvcc)
#   MAX_JOBS         parallel compile jobs (default: torch's choice)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=find_nvcc.sh
. "$(dirname "${BASH_SOURCE[0]}")"/find_nvcc.sh
if [[ -z "${CUDA_HOME:-}" ]]; then
  # A wrapper script on PATH (as /usr/local/bin/nvcc here) would make torch guess a CUDA_HOME
  # without headers; the toolkit folder holds include/ and lib64/.
  if [[ -d /usr/local/cuda/include ]]; then
    CUDA_HOME=/usr/local/cuda
  else
    CUDA_HOME="$(dirname "$(dirname "$(readlink -f "$nvcc")")")"
  fi
fi
export CUDA_HOME

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "build_check: $("$nvcc" --version | tail -n 1), CUDA_HOME=$CUDA_HOME"
python3 -m venv "$work/venv"
# shellcheck disable=SC1091
. "$work/venv/bin/activate"
pip install --disable-pip-version-check "${B2V_CUDA_TORCH:-torch==2.14.1}" setuptools wheel ninja pybind11 numpy \
  >"$work/pip.log" 2>&1 || { cat "$work/pip.log"; exit 1; }
python -c "import torch; print('build_check: torch', torch.__version__, 'CUDA', torch.version.cuda)"

# A copy of the sources: the project's own b2v_rnn/ holds the CPU build of b2v_rnn._C.
mkdir "$work/src"
cp -r "$repo/setup.py" "$repo/csrc" "$repo/b2v_rnn" "$work/src/"
find "$work/src" \( -name '*.so' -o -name '__pycache__' \) -prune -exec rm -rf {} +
cd "$work/src"

check_registered='
import sys, torch
import b2v_rnn.ops as ops
expected = sys.argv[1]
assert ops.backend() == expected, f"backend {ops.backend()}, expected {expected}"
missing = [op for op in ("resample_conv2d", "resample_conv2d_backward", "preact_dilated_conv2d",
                         "preact_dilated_conv2d_backward")
           for key in ("CPU", "CUDA")
           if not torch._C._dispatch_has_kernel_for_dispatch_key(f"b2v_rnn::{op}", key)]
assert not missing, f"kernels not registered: {missing}"
print(f"ok   {expected}: every op has CPU and CUDA kernels")
'

echo "== setup.py build (TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-setup.py default})"
python setup.py -q build_ext --inplace >"$work/setup.log" 2>&1 || { cat "$work/setup.log"; exit 1; }
B2V_OPS=compiled python -c "$check_registered" compiled

echo "== JIT build (B2V_OPS=jit)"
rm -f b2v_rnn/_C*.so
B2V_OPS=jit B2V_BUILD_DIR="$work/jit" python -c "$check_registered" jit 2>"$work/jit.log" || { cat "$work/jit.log"; exit 1; }
