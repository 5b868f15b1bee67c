"""Which implementation runs an op call: the fused kernel or the eager chain.

The library backend (``_loader.backend()``: compiled, jit or reference) says which kernels
exist; this module says, per call, whether to use them. The eager chain is the op's
reference (``F.conv2d`` after ``relu(x·s+t)`` or a pixel (un)shuffle), which runs on cuDNN
or oneDNN, so "eager" is the vendor path, not a slow fallback.

``B2V_FUSED`` sets the policy, read once per process (:func:`fused_policy` changes it):

- ``auto`` (default): the fused kernel only where ``bench/`` measured it faster than the eager
  chain (:data:`MEASURED_FASTER`), per weight shape and layout: on the CPU the one-pass norm
  statistics in every float dtype, and the float32 pre-activation conv on NCHW input for layers
  of at most :data:`SMALL_GEMM` weights, where oneDNN runs the wider layers faster. On CUDA the
  fused kernels measured slower than cuDNN in channels_last, so CUDA runs the eager chain, TF32
  for float32 (figures in bench/RESULTS.md; docs/design.md §4.5);
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
"""The dtypes each device's convolution kernels implement (csrc/cpu, csrc/cuda)."""

OP_KERNEL_DTYPES = {
    ("channel_moments", "cpu"): (torch.float32, torch.float64, torch.bfloat16),
    ("channel_moments", "cuda"): (),
}
"""Ops whose kernels differ from :data:`KERNEL_DTYPES`: the one-pass norm statistics are CPU only."""


SMALL_GEMM = 64 * 64
"""Weight elements K·C·kh·kw up to which the CPU fp32 fused preact conv beat oneDNN in
``bench/bench_layers.py``: every layer of the paper model with at most 4,096 (the 1×1 convs to
≤ 64 or to the fusion channels, the 3×3 convs to 2–3 channels) and none above (bench/RESULTS.md,
"CPU inference")."""


def _small_gemm(weight_shape: tuple[int, ...] | None, channels_last: bool) -> bool:
    # The CPU kernels read NCHW: a channels_last input would be converted first (measured slower).
    if channels_last:
        return False
    if weight_shape is None:
        return True
    k, c, kh, kw = weight_shape
    return k * c * kh * kw <= SMALL_GEMM


def _any_shape(weight_shape: tuple[int, ...] | None, channels_last: bool) -> bool:
    return True


MEASURED_FASTER = {
    ("preact_dilated_conv2d", "cpu", torch.float32): (_small_gemm, "fused for small NCHW layers, else eager"),
    # Faster than the eager statistics (two-pass in float32; a float32 copy and two sums in bfloat16).
    **{("channel_moments", "cpu", dtype): (_any_shape, "one-pass kernel")
       for dtype in (torch.float32, torch.bfloat16, torch.float64)},
}
"""(op, device type, dtype) → (whether, for a weight shape (K, C, kh, kw) and the input's layout,
the fused kernel beat the eager chain in ``bench/``, the path's words in :func:`describe`)
(bench/RESULTS.md, "CPU inference"). The CPU resample conv measured no faster and is left out;
add an entry only with a benchmark that shows the win."""

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


def choose(op: str, device_type: str, dtype: torch.dtype, backend: str, policy: str,
           weight_shape: tuple[int, ...] | None = None, channels_last: bool = False) -> str:
    """``"fused"`` or ``"eager"`` for one call; a pure function of its arguments.

    ``weight_shape`` (K, C, kh, kw) of the call's convolution; None asks about the op in general
    (:func:`describe`): "fused" if it is fused for some shape. ``channels_last``: the input's layout."""
    if backend == "reference" or policy == "never":
        return "eager"
    if dtype not in OP_KERNEL_DTYPES.get((op, device_type), KERNEL_DTYPES.get(device_type, ())):
        return "eager"
    if policy == "always":
        return "fused"
    measured = MEASURED_FASTER.get((op, device_type, dtype))
    return "fused" if measured is not None and measured[0](weight_shape, channels_last) else "eager"


def is_channels_last(x: torch.Tensor) -> bool:
    """Whether x is in channels_last and not also plain contiguous (C = 1 or H = W = 1 are both)."""
    return x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def _path_words(op: str, device_type: str, dtype: torch.dtype, backend: str, policy: str) -> str:
    """"fused" or "eager", or under ``auto`` the measured entry's own words (which shapes)."""
    path = choose(op, device_type, dtype, backend, policy)
    if path == "fused" and policy == "auto":
        return MEASURED_FASTER[(op, device_type, dtype)][1]
    return path


def describe(backend: str, policy: str | None = None) -> str:
    """One line for the logs: which path each op takes on CPU and CUDA, for fp32 and bf16."""
    policy = fused_policy() if policy is None else policy
    parts = []
    for device_type in ("cpu", "cuda"):
        for dtype in (torch.float32, torch.bfloat16):
            paths = {op: _path_words(op, device_type, dtype, backend, policy) for op in OPS}
            norm = _path_words("channel_moments", device_type, dtype, backend, policy)
            if norm != "eager":  # the norm is named only where its kernel runs
                paths["norm"] = norm
            name = str(dtype).replace("torch.", "")
            if len(set(paths.values())) == 1:
                parts.append(f"{device_type} {name}: {paths[OPS[0]]}")
            else:
                parts.append(f"{device_type} {name}: " + ", ".join(f"{op.split('_')[0]} {p}" for op, p in paths.items()))
    return f"library {backend}, B2V_FUSED={policy} | " + "; ".join(parts)
