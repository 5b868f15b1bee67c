"""InstanceNorm statistics in one read: per (sample, channel) mean and biased variance.

Contract
--------
``channel_moments(x) -> (mean, var)``:

- ``x``: (B, C, H, W), float32, bfloat16 or float64, contiguous or channels_last (any other
  strides are read through a contiguous copy), H·W ≥ 1.
- ``mean``, ``var``: (B, C), float32 (float64 for float64 x); ``var`` is biased (divides by
  H·W), as InstanceNorm's.
- differentiable: ``∂/∂x = grad_mean / n + grad_var · 2(x − mean) / n`` (``_register.py``).

The CPU kernel (csrc/cpu/channel_moments_kernel.cpp) reads x once: sums of ``x − pilot``
(pilot = the plane's first element, so E[d²] − E[d]² does not cancel when |mean| ≫ std) in
float over short runs and in double across them. The eager statistics it replaces read and
write each activation several times (bench/bench_norm.py: 3–6× forward+backward at the
model's shapes). There is no CUDA kernel: CUDA takes one Welford pass of ``torch.var_mean``.
:func:`channel_moments_reference` is the specification.
"""

from __future__ import annotations

import torch
from torch import Tensor


def channel_moments_reference(x: Tensor) -> tuple[Tensor, Tensor]:
    """The statistics in float64 (``torch.var_mean``), returned in the kernel's dtype."""
    var, mean = torch.var_mean(x.double(), dim=(2, 3), correction=0)
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    return mean.to(dtype), var.to(dtype)


def channel_moments(x: Tensor) -> tuple[Tensor, Tensor]:
    """The kernel (CPU, library loaded); see the module doc. Callers choose it through
    :func:`~b2v_rnn.ops.preact_dilated_conv2d.channel_statistics`."""
    if x.dim() != 4:
        raise ValueError(f"channel_moments: x must be 4-D (B, C, H, W), got shape {tuple(x.shape)}")
    return torch.ops.b2v_rnn.channel_moments(x)
