"""Argument checks shared by the fused ops, raised before any kernel runs.

Each message names the op, the argument and the value, so a user who passes a bad
tensor sees what was wrong without reading a C++ backtrace.
"""

from __future__ import annotations

from torch import Tensor


def check_conv_args(op: str, x: Tensor, weight: Tensor, bias: Tensor | None, padding: int) -> None:
    """Checks rank, dtype, device and padding common to both fused convolutions."""
    if x.dim() != 4:
        raise ValueError(f"{op}: x must be 4-D (B, C, H, W), got shape {tuple(x.shape)}")
    if weight.dim() != 4:
        raise ValueError(f"{op}: weight must be 4-D (K, C, kh, kw), got shape {tuple(weight.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{op}: x must be a floating-point tensor, got dtype {x.dtype}")
    check_same(op, "weight", weight, x)
    if bias is not None:
        check_same(op, "bias", bias, x)
        if bias.shape != (weight.shape[0],):
            raise ValueError(
                f"{op}: bias must have shape ({weight.shape[0]},) to match weight, got {tuple(bias.shape)}"
            )
    if not isinstance(padding, int) or padding < 0:
        raise ValueError(f"{op}: padding must be a non-negative int, got {padding!r}")


def check_same(op: str, name: str, tensor: Tensor, x: Tensor) -> None:
    """``tensor`` must share x's dtype and device: the kernels do not convert."""
    if tensor.dtype != x.dtype:
        raise ValueError(f"{op}: {name} has dtype {tensor.dtype} but x has dtype {x.dtype}")
    if tensor.device != x.device:
        raise ValueError(f"{op}: {name} is on device {tensor.device} but x is on {x.device}")
