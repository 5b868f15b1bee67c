"""Fused ops of b2v_rnn, each with its pure-PyTorch reference (docs/design.md §4).

- :func:`resample_conv2d` / :class:`ResampleConv2d`: conv2d over a pixel-(un)shuffled input.
- :func:`preact_dilated_conv2d` / :class:`PreActDilatedConv2d`: InstanceNorm-affine, ReLU
  and a dilated conv2d.
- :func:`channel_moments`: InstanceNorm statistics in one read of x (CPU kernel).

:func:`backend` tells which kernel library loaded (``B2V_OPS`` forces one); per call, the
fused kernel or the eager cuDNN/oneDNN chain runs by the policy of ``_dispatch``
(``B2V_FUSED``, :func:`fused`), and :func:`describe` says which, for the logs. Both ops
follow ``torch.autocast``.
"""

from . import _dispatch
from ._dispatch import fused, fused_policy
from ._loader import BACKENDS, BackendError, backend
from .channel_moments import channel_moments, channel_moments_reference
from .preact_dilated_conv2d import (
    PreActDilatedConv2d,
    instance_norm_affine,
    preact_dilated_conv2d,
    preact_dilated_conv2d_reference,
)
from .resample_conv2d import ResampleConv2d, resample_conv2d, resample_conv2d_reference



def describe() -> str:
    """One line for logs: the kernel library and which path each op takes on CPU and CUDA."""
    return _dispatch.describe(backend())


__all__ = [
    "BACKENDS",
    "BackendError",
    "backend",
    "channel_moments",
    "channel_moments_reference",
    "describe",
    "fused",
    "fused_policy",
    "PreActDilatedConv2d",
    "ResampleConv2d",
    "instance_norm_affine",
    "preact_dilated_conv2d",
    "preact_dilated_conv2d_reference",
    "resample_conv2d",
    "resample_conv2d_reference",
]
