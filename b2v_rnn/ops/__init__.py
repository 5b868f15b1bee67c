"""Fused ops of b2v_rnn, each with its pure-PyTorch reference (DESIGN §4).

- :func:`resample_conv2d` / :class:`ResampleConv2d`: conv2d over a pixel-(un)shuffled input.
- :func:`preact_dilated_conv2d` / :class:`PreActDilatedConv2d`: InstanceNorm-affine, ReLU
  and a dilated conv2d.

:func:`backend` tells which implementation runs; ``B2V_OPS`` forces one.
"""

from ._loader import BACKENDS, BackendError, backend
from .preact_dilated_conv2d import (
    PreActDilatedConv2d,
    instance_norm_affine,
    preact_dilated_conv2d,
    preact_dilated_conv2d_reference,
)
from .resample_conv2d import ResampleConv2d, resample_conv2d, resample_conv2d_reference

__all__ = [
    "BACKENDS",
    "BackendError",
    "backend",
    "PreActDilatedConv2d",
    "ResampleConv2d",
    "instance_norm_affine",
    "preact_dilated_conv2d",
    "preact_dilated_conv2d_reference",
    "resample_conv2d",
    "resample_conv2d_reference",
]
