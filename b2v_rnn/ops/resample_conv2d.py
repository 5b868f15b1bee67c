"""Resampling convolution: a convolution over a pixel-(un)shuffled input, fused.

Contract
--------
``resample_conv2d(x, weight, bias=None, factor=4, padding=0, mode="unshuffle")``

``mode="unshuffle"`` computes ``conv2d(pixel_unshuffle(x, factor), weight, bias, padding=padding)``:

- ``x``: (B, C, H, W), H and W multiples of ``factor``.
- ``weight``: (K, C·factor², kh, kw). Input channel ``c·factor² + dy·factor + dx`` of the
  convolution reads pixel ``(factor·i + dy, factor·j + dx)`` of channel ``c`` of ``x``
  (PyTorch's pixel_unshuffle order).
- result: (B, K, H/factor + 2·padding − kh + 1, W/factor + 2·padding − kw + 1).

``mode="shuffle"`` computes ``conv2d(pixel_shuffle(x, factor), weight, bias, padding=padding)``:

- ``x``: (B, C·factor², H, W).
- ``weight``: (K, C, kh, kw).
- result: (B, K, H·factor + 2·padding − kh + 1, W·factor + 2·padding − kw + 1).

``bias`` is (K,) or None; stride is 1, dilation 1, zero padding on the resampled grid.

The fused kernels remap indices while loading the convolution's input, so the
(un)shuffled tensor is never materialised (docs/design.md §4.1). This module's
:func:`resample_conv2d_reference` is the specification; the compiled kernels must equal it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import _dispatch, _loader
from ._autocast import cast_for_autocast
from ._checks import check_conv_args

MODES = ("unshuffle", "shuffle")


def resample_conv2d_reference(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    factor: int = 4,
    padding: int = 0,
    mode: str = "unshuffle",
) -> Tensor:
    """The eager chain that defines :func:`resample_conv2d` (same arguments)."""
    resampled = F.pixel_unshuffle(x, factor) if mode == "unshuffle" else F.pixel_shuffle(x, factor)
    return F.conv2d(resampled, weight, bias, padding=padding)


def _check_args(x, weight, bias, factor, padding, mode) -> None:
    if mode not in MODES:
        raise ValueError(f"resample_conv2d: mode must be one of {MODES}, got {mode!r}")
    if not isinstance(factor, int) or factor < 1:
        raise ValueError(f"resample_conv2d: factor must be a positive int, got {factor!r}")
    check_conv_args("resample_conv2d", x, weight, bias, padding)
    _, channels, height, width = x.shape
    if mode == "unshuffle":
        if height % factor or width % factor:
            raise ValueError(
                f"resample_conv2d: x's spatial size {height}x{width} is not divisible by "
                f"factor={factor} (mode='unshuffle')"
            )
        expected = channels * factor * factor
    else:
        if channels % (factor * factor):
            raise ValueError(
                f"resample_conv2d: x has {channels} channels, not divisible by "
                f"factor²={factor * factor} (mode='shuffle')"
            )
        expected = channels // (factor * factor)
    if weight.shape[1] != expected:
        raise ValueError(
            f"resample_conv2d: weight has {weight.shape[1]} input channels but x with "
            f"{channels} channels, mode={mode!r} and factor={factor} needs {expected}"
        )


def resample_conv2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    factor: int = 4,
    padding: int = 0,
    mode: str = "unshuffle",
) -> Tensor:
    """Fused ``conv2d(pixel_(un)shuffle(x, factor), weight, bias, padding)``; see the module doc.

    Under ``torch.autocast`` every input is cast to autocast's dtype first (``_autocast``).
    Whether the fused kernel or the eager chain runs is decided per call (``_dispatch``).
    """
    x, weight, bias = cast_for_autocast(x, weight, bias)
    _check_args(x, weight, bias, factor, padding, mode)
    path = _dispatch.choose("resample_conv2d", x.device.type, x.dtype, _loader.backend(), _dispatch.fused_policy(),
                            tuple(weight.shape), _dispatch.is_channels_last(x))
    if path == "eager":
        return resample_conv2d_reference(x, weight, bias, factor, padding, mode)
    return torch.ops.b2v_rnn.resample_conv2d(x, weight, bias, factor, padding, mode == "shuffle")


class ResampleConv2d(nn.Module):
    """Pixel-(un)shuffle by ``factor`` followed by a ``kernel_size`` convolution, fused.

    ``in_channels`` counts the channels of the module's input, before resampling:
    ``mode="unshuffle"`` maps (B, in_channels, H, W) to (B, out_channels, H/f, W/f) and
    ``mode="shuffle"`` maps (B, in_channels, H, W) to (B, out_channels, H·f, W·f)
    (``in_channels`` must then be a multiple of f²). Padding defaults to "same" on the
    resampled grid (``kernel_size // 2``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        factor: int,
        mode: str = "unshuffle",
        padding: int | None = None,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"ResampleConv2d: mode must be one of {MODES}, got {mode!r}")
        if mode == "shuffle" and in_channels % (factor * factor):
            raise ValueError(
                f"ResampleConv2d: in_channels={in_channels} is not a multiple of "
                f"factor²={factor * factor} (mode='shuffle')"
            )
        conv_in = in_channels * factor * factor if mode == "unshuffle" else in_channels // (factor * factor)
        self.factor = factor
        self.mode = mode
        self.padding = kernel_size // 2 if padding is None else padding
        # nn.Conv2d's initialisation and state-dict layout, so checkpoints read like any conv.
        template = nn.Conv2d(conv_in, out_channels, kernel_size, bias=bias)
        self.weight = template.weight
        self.bias = template.bias

    def forward(self, x: Tensor) -> Tensor:
        return resample_conv2d(x, self.weight, self.bias, self.factor, self.padding, self.mode)

    def extra_repr(self) -> str:
        k, c = self.weight.shape[0], self.weight.shape[1]
        return f"conv_in={c}, out={k}, kernel={tuple(self.weight.shape[2:])}, factor={self.factor}, mode={self.mode}, padding={self.padding}"
