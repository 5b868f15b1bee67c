"""Autocast for the fused ops: under ``torch.autocast`` they compute in the autocast dtype.

The ``b2v_rnn::`` ops have no autocast kernel of their own, so autocast would pass their
inputs through unchanged: a bf16 activation from the previous (autocast) convolution would
meet an fp32 weight and fail the dtype check. Both ops are convolutions, which autocast runs
in its lower-precision dtype, so the wrappers cast every floating input to that dtype, as
autocast does for ``conv2d``. The casts are ordinary differentiable ``.to`` calls outside the
op, so gradients reach the fp32 parameters in fp32, and the fake kernels, autograd formulas
and ``torch.compile`` see a plain same-dtype call.
"""

from __future__ import annotations

import torch
from torch import Tensor


def autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype autocast computes convolutions in on ``device_type``, or None when it is off."""
    if device_type not in ("cpu", "cuda"):
        return None
    try:  # torch >= 2.4 takes the device type
        enabled = torch.is_autocast_enabled(device_type)
    except TypeError:
        enabled = torch.is_autocast_cpu_enabled() if device_type == "cpu" else torch.is_autocast_enabled()
    if not enabled:
        return None
    if hasattr(torch, "get_autocast_dtype"):
        return torch.get_autocast_dtype(device_type)
    return torch.get_autocast_cpu_dtype() if device_type == "cpu" else torch.get_autocast_gpu_dtype()


def cast_for_autocast(x: Tensor, *others: Tensor | None) -> tuple[Tensor | None, ...]:
    """(x, *others) in autocast's dtype for x's device when autocast is on there, else unchanged.

    Only floating-point tensors are cast (None stays None); a float64 call is left alone, as
    autocast leaves float64 convolutions alone.
    """
    dtype = autocast_dtype(x.device.type)
    tensors = (x, *others)
    if dtype is None or x.dtype == torch.float64:
        return tensors
    return tuple(t.to(dtype) if t is not None and t.is_floating_point() else t for t in tensors)
