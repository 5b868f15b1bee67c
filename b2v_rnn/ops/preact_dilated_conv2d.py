"""Pre-activation dilated convolution: per-channel affine, ReLU and a dilated conv, fused.

Contract
--------
``preact_dilated_conv2d(x, scale, shift, weight, bias=None, dilation=1, padding=None)``
computes::

    conv2d(relu(x * scale[:, :, None, None] + shift[:, :, None, None]),
           weight, bias, padding=padding, dilation=dilation)

- ``x``: (B, C, H, W).
- ``scale``, ``shift``: (B, C), one affine pair per sample and channel. An InstanceNorm
  with affine parameters (γ, β) folds into ``scale = γ / sqrt(var + eps)`` and
  ``shift = β − mean · scale`` (see :class:`PreActDilatedConv2d`).
- ``weight``: (K, C, kh, kw); ``bias``: (K,) or None.
- ``dilation`` ≥ 1; ``padding`` ≥ 0, by default ``dilation · (kh − 1) / 2`` ("same"
  size for odd kernels; ``= dilation`` for the 3×3 kernels of the model).
- result: (B, K, H + 2·padding − dilation·(kh − 1), W + 2·padding − dilation·(kw − 1)).
  Stride is 1; padding is zero *after* the activation, exactly as in the eager chain.

The fused kernels apply the affine and the ReLU while gathering the convolution's
input, so the normalised/activated tensor is never written to memory in the forward
pass (docs/design.md §4.2). :func:`preact_dilated_conv2d_reference` is the specification.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import _dispatch, _loader
from ._autocast import cast_for_autocast
from ._checks import check_conv_args, check_same
from .channel_moments import channel_moments


def preact_dilated_conv2d_reference(
    x: Tensor,
    scale: Tensor,
    shift: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    dilation: int = 1,
    padding: int | None = None,
) -> Tensor:
    """The eager chain that defines :func:`preact_dilated_conv2d` (same arguments)."""
    if padding is None:
        padding = same_padding(weight, dilation)
    # x·scale + shift in one pass (addcmul), then ReLU in place: neither's backward reads the
    # tensor the ReLU overwrites. Two elementwise passes instead of three; this is also what
    # the "eager" dispatch path runs.
    activated = F.relu(torch.addcmul(shift[:, :, None, None], x, scale[:, :, None, None]), inplace=True)
    return F.conv2d(activated, weight, bias, padding=padding, dilation=dilation)


def same_padding(weight: Tensor, dilation: int) -> int:
    return dilation * (weight.shape[-1] - 1) // 2


def _check_args(x, scale, shift, weight, bias, dilation, padding) -> None:
    op = "preact_dilated_conv2d"
    if not isinstance(dilation, int) or dilation < 1:
        raise ValueError(f"{op}: dilation must be an int >= 1, got {dilation!r}")
    check_conv_args(op, x, weight, bias, padding)
    batch, channels = x.shape[:2]
    for name, affine in (("scale", scale), ("shift", shift)):
        check_same(op, name, affine, x)
        if affine.shape != (batch, channels):
            raise ValueError(
                f"{op}: {name} must have shape (B, C) = ({batch}, {channels}), got {tuple(affine.shape)}"
            )
    if weight.shape[1] != channels:
        raise ValueError(f"{op}: weight has {weight.shape[1]} input channels but x has {channels}")


def preact_dilated_conv2d(
    x: Tensor,
    scale: Tensor,
    shift: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    dilation: int = 1,
    padding: int | None = None,
) -> Tensor:
    """Fused ``conv2d(relu(x·scale + shift), weight, bias, dilation)``; see the module doc.

    Under ``torch.autocast`` every input is cast to autocast's dtype first (``_autocast``).
    Whether the fused kernel or the eager chain runs is decided per call (``_dispatch``).
    """
    if padding is None and weight.dim() == 4:
        padding = same_padding(weight, dilation)
    x, scale, shift, weight, bias = cast_for_autocast(x, scale, shift, weight, bias)
    _check_args(x, scale, shift, weight, bias, dilation, padding)
    path = _dispatch.choose("preact_dilated_conv2d", x.device.type, x.dtype, _loader.backend(), _dispatch.fused_policy(),
                            tuple(weight.shape), _dispatch.is_channels_last(x))
    if path == "eager":
        return preact_dilated_conv2d_reference(x, scale, shift, weight, bias, dilation, padding)
    return torch.ops.b2v_rnn.preact_dilated_conv2d(x, scale, shift, weight, bias, dilation, padding)


def instance_norm_affine(x: Tensor, gamma: Tensor, beta: Tensor, eps: float,
                         statistics: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
    """InstanceNorm(affine) of x (B, C, H, W) folded into per-(sample, channel) scale, shift (B, C).

    Statistics are always those of the current input (no running statistics: with tracked
    statistics the network would normalise by stale values, docs/design.md §2.1). They come
    from :func:`channel_statistics`; scale and shift are computed in float32 and returned in
    x's dtype. ``statistics``: x's (mean, var) when the caller already has them (a residual
    block normalises its input twice, with different affine parameters).
    """
    mean, var = channel_statistics(x) if statistics is None else statistics
    scale = gamma.float() * torch.rsqrt(var.float() + eps)
    shift = beta.float() - mean.float() * scale
    return scale.to(x.dtype), shift.to(x.dtype)


def channel_statistics(x: Tensor, method: str | None = None) -> tuple[Tensor, Tensor]:
    """Per-(sample, channel) mean and biased variance of x (B, C, H, W), each (B, C).

    ``method`` (default: the one measured fastest for the dtype and device; the figures are in
    bench/RESULTS.md):

    - ``"two_pass"`` (float32/float64): the mean, then the mean squared deviation from it. As
      stable as torch.var_mean and, on CPU, faster than its Welford kernel.
    - ``"welford"`` (16-bit on CUDA): one pass of torch.var_mean, float32 accumulation, no fp32
      copy of the activation. Its results are rounded to x's dtype, the precision the
      convolution reads x at anyway.
    - ``"sums"`` (bfloat16 on CPU without the library): Σx and Σx² accumulated in float32 in one
      sweep each, var = E[x²] − E[x]². Faster than var_mean on CPU in bf16, though it copies x to
      float32 first. Its cancellation error, ~2⁻⁹·E[x²]/var/√(HW), is of the order of bf16's own
      rounding of x; not used for float16, whose x² overflows at 256.
    - ``"moments"`` (CPU, float32/bfloat16/float64, when the library is loaded): the one-pass
      kernel of :mod:`~b2v_rnn.ops.channel_moments`, which reads x once in either layout
      (docs/design.md §4.3).
    """
    if method is None:
        if _dispatch.choose("channel_moments", x.device.type, x.dtype, _loader.backend(),
                            _dispatch.fused_policy()) == "fused":
            method = "moments"
        elif x.dtype == torch.bfloat16 and x.device.type == "cpu":
            method = "sums"
        elif x.dtype in (torch.float16, torch.bfloat16):
            method = "welford"
        else:
            method = "two_pass"
    if method == "two_pass":
        mean = x.mean(dim=(2, 3), keepdim=True)
        var = (x - mean).square().mean(dim=(2, 3))
        return mean[:, :, 0, 0], var
    if method == "welford":
        var, mean = torch.var_mean(x, dim=(2, 3), correction=0)
        return mean, var
    if method == "sums":
        count = x.shape[2] * x.shape[3]
        mean = x.sum(dim=(2, 3), dtype=torch.float32) / count
        mean_square = x.square().sum(dim=(2, 3), dtype=torch.float32) / count
        return mean, (mean_square - mean.square()).clamp_min(0.0)
    if method == "moments":
        return channel_moments(x)
    raise ValueError(f"channel_statistics: method must be two_pass, welford, sums or moments, got {method!r}")


class PreActDilatedConv2d(nn.Module):
    """InstanceNorm2d(affine) → ReLU → dilated Conv2d, as one fused op.

    Maps (B, in_channels, H, W) to (B, out_channels, H', W') with "same" padding by default.
    The normalisation statistics are computed here (cheap reductions); the normalise,
    activate and convolve steps run fused.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        dilation: int = 1,
        padding: int | None = None,
        bias: bool = True,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        if dilation < 1:
            raise ValueError(f"PreActDilatedConv2d: dilation must be >= 1, got {dilation}")
        self.norm_weight = nn.Parameter(torch.ones(in_channels))
        self.norm_bias = nn.Parameter(torch.zeros(in_channels))
        template = nn.Conv2d(in_channels, out_channels, kernel_size, bias=bias)
        self.weight = template.weight
        self.bias = template.bias
        self.dilation = dilation
        self.padding = dilation * (kernel_size - 1) // 2 if padding is None else padding
        self.eps = eps

    def forward(self, x: Tensor, statistics: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """``statistics``: x's (mean, var) from :func:`channel_statistics`, if already computed."""
        scale, shift = instance_norm_affine(x, self.norm_weight, self.norm_bias, self.eps, statistics)
        return preact_dilated_conv2d(x, scale, shift, self.weight, self.bias, self.dilation, self.padding)

    def extra_repr(self) -> str:
        k, c = self.weight.shape[:2]
        return f"{c}, {k}, kernel={tuple(self.weight.shape[2:])}, dilation={self.dilation}, padding={self.padding}"
