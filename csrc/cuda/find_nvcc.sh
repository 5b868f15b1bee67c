# Sourced by compile_check.sh and build_check.sh: sets $nvcc from $NVCC, PATH or
# /usr/local/cuda/bin, or says the check is skipped and exits 0 (no CUDA toolkit, no check).
nvcc="${NVCC:-$(command -v nvcc || true)}"
if [[ -z "$nvcc" && -x /usr/local/cuda/bin/nvcc ]]; then
  nvcc=/usr/local/cuda/bin/nvcc
fi
if [[ -z "$nvcc" ]]; then
  echo "$(basename "$0" .sh): SKIPPED, nvcc not found (set NVCC or install the CUDA toolkit)"
  exit 0
fi
