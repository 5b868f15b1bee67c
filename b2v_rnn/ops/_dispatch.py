"""Which implementation runs an op call: the fused kernel or the eager chain.

The library backend (``_loader.backend()``: compiled, jit or reference) says which kernels
exist; this module says, per call, whether to use them. The eager chain is the op's
reference (``F.conv2d`` after ``relu(x·s+t)`` or a pixel (un)shuffle), which runs on cuDNN
or oneDNN, so "eager" is the vendor path, not a slow fallback.

``B2V_FUSED`` sets the policy, read once per process (:func:`fused_policy` changes it):

- ``auto`` (default): the fused kernel only where ``bench/`` measured it faster than the eager
  chain (:data:`MEASURED_FASTER`). Today that is the CPU float32 pre-activation conv (1.11×);
  on CUDA the fused kernels are 1.5–12× slower than cuDNN in channels_last (bench/RESULTS.md),
  so CUDA runs the eager chain, TF32 for float32;
- ``always``: the fused kernel wherever one exists for the dtype (tests, benchmarks);
- ``never``: the eager chain everywhere, with the library still loaded.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

import torch

POLICIES = ("auto", "always", "never")
OPS = ("preact_dilated_conv2d", "resample_conv2d")

KERNEL_DTYPES = {
    "cpu": (torch.float32, torch.float64),
    "cuda": (torch.float32, torch.float64, torch.float16, torch.bfloat16),
}
"""The dtypes each device's kernels implement (csrc/cpu, csrc/cuda)."""

MEASURED_FASTER = {
    ("preact_dilated_conv2d", "cpu", torch.float32),
}
"""(op, device type, dtype) where the fused kernel beat the eager chain in ``bench/``
(bench/RESULTS.md). The CPU resample conv measured 0.97× and is left out; add an entry only
with a benchmark that shows the win."""

_policy: str | None = None


def _check(policy: str, source: str) -> str:
    if policy not in POLICIES:
        raise ValueError(f"{source} must be one of {POLICIES}, got {policy!r}")
    return policy


def fused_policy() -> str:
    """The active policy: ``auto``, ``always`` or ``never`` (from ``B2V_FUSED`` on first use)."""
    global _policy
    if _policy is None:
        _policy = _check(os.environ.get("B2V_FUSED", "auto").strip().lower() or "auto", "B2V_FUSED")
    return _policy


@contextlib.contextmanager
def fused(policy: str) -> Iterator[None]:
    """Runs the block under another policy, e.g. ``with ops.fused("always"):`` in a test."""
    global _policy
    previous = fused_policy()
    _policy = _check(policy, "fused(policy)")
    try:
        yield
    finally:
        _policy = previous


def choose(op: str, device_type: str, dtype: torch.dtype, backend: str, policy: str) -> str:
    """``"fused"`` or ``"eager"`` for one call; a pure function of its arguments."""
    if backend == "reference" or policy == "never":
        return "eager"
    if dtype not in KERNEL_DTYPES.get(device_type, ()):
        return "eager"
    if policy == "always" or (op, device_type, dtype) in MEASURED_FASTER:
        return "fused"
    return "eager"


def describe(backend: str, policy: str | None = None) -> str:
    """One line for the logs: which path each op takes on CPU and CUDA, for fp32 and bf16."""
    policy = fused_policy() if policy is None else policy
    parts = []
    for device_type in ("cpu", "cuda"):
        for dtype in (torch.float32, torch.bfloat16):
            paths = {op: choose(op, device_type, dtype, backend, policy) for op in OPS}
            name = str(dtype).replace("torch.", "")
            if len(set(paths.values())) == 1:
                parts.append(f"{device_type} {name}: {paths[OPS[0]]}")
            else:
                parts.append(f"{device_type} {name}: " + ", ".join(f"{op.split('_')[0]} {p}" for op, p in paths.items()))
    return f"library {backend}, B2V_FUSED={policy} | " + "; ".join(parts)
