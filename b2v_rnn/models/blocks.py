"""Building blocks shared by φm and G (paper Sec. 6): pre-activation residual blocks and the
per-colour-plane refinement trunk with multi-level fusion.

Every normalised convolution is a :class:`~b2v_rnn.ops.PreActDilatedConv2d` (InstanceNorm with
affine parameters, ReLU, conv, fused), whose statistics are always those of the current input:
there are no running statistics to go stale (docs/design.md §2.1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..ops import PreActDilatedConv2d, ResampleConv2d
from ..ops.preact_dilated_conv2d import channel_statistics


def dilation_schedule(num_blocks: int, num_dilated: int) -> list[tuple[int, int]]:
    """Dilation pairs of the two 3×3 convs of each block, the dilated blocks centred.

    The dilated blocks ramp up by powers of two and back down, the paper's pyramid: 12 blocks
    with 6 dilated give blocks 4–9 the pairs (1,2),(2,4),(4,8),(8,4),(4,2),(2,1).
    """
    if not 0 <= num_dilated <= num_blocks:
        raise ValueError(f"num_dilated must lie in [0, num_blocks={num_blocks}], got {num_dilated}")
    rising = [(2**i, 2 ** (i + 1)) for i in range((num_dilated + 1) // 2)]
    falling = [(b, a) for a, b in reversed(rising[: num_dilated // 2])]
    before = (num_blocks - num_dilated) // 2
    after = num_blocks - num_dilated - before
    return [(1, 1)] * before + rising + falling + [(1, 1)] * after


def fusion_points(num_blocks: int, num_taps: int) -> tuple[int, ...]:
    """1-based indices of the blocks whose outputs feed the fusion, evenly spaced, last included
    (12 blocks, 4 taps: after blocks 3, 6, 9, 12)."""
    if not 1 <= num_taps <= num_blocks:
        raise ValueError(f"fusion_taps must lie in [1, num_blocks={num_blocks}], got {num_taps}")
    return tuple(round(i * num_blocks / num_taps) for i in range(1, num_taps + 1))


class PreActResBlock(nn.Module):
    """Pre-activation residual block [He et al. 2016]: ``x + conv1×1(x) + conv3×3(conv3×3(x))``.

    (B, C, H, W) → (B, C, H, W). Each conv is preceded by InstanceNorm(affine)+ReLU. The convs
    carry no bias: the block's output is only ever read through another InstanceNorm, which
    removes any per-channel constant.
    """

    def __init__(self, channels: int, dilations: tuple[int, int] = (1, 1)) -> None:
        super().__init__()
        self.pointwise = PreActDilatedConv2d(channels, channels, 1, padding=0, bias=False)
        self.conv1 = PreActDilatedConv2d(channels, channels, 3, dilation=dilations[0], bias=False)
        self.conv2 = PreActDilatedConv2d(channels, channels, 3, dilation=dilations[1], bias=False)

    def forward(self, x: Tensor) -> Tensor:
        statistics = channel_statistics(x)  # both branches normalise x: one set of statistics
        return x + self.pointwise(x, statistics) + self.conv2(self.conv1(x, statistics))


def fold_planes(x: Tensor) -> Tensor:
    """(B, 3, H, W) → (B·3, 1, H, W): each colour plane becomes a grey image of the batch."""
    return x.reshape(-1, 1, *x.shape[-2:])


HEADS = ("shuffle", "smooth")
"""Output paths of :class:`PlaneRefinement`: the paper's per-phase channels through a pixel
shuffle, or features upsampled by interpolation (no per-phase parameters, no grid)."""


def check_head(head: str) -> None:
    """ValueError unless ``head`` is one of :data:`HEADS`."""
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; expected one of {HEADS}")


def check_linear_skip(linear_skip: int) -> None:
    """ValueError unless ``linear_skip`` is 0 (off) or an odd kernel size."""
    if isinstance(linear_skip, bool) or not isinstance(linear_skip, int) or linear_skip < 0 \
            or (linear_skip and linear_skip % 2 == 0):
        raise ValueError(f"linear_skip must be 0 (off) or an odd kernel size, got {linear_skip!r}")


class SmoothHead(nn.Module):
    """The grid-free output path of :class:`PlaneRefinement` (docs/design.md §2.2).

    ``forward(taps, planes)``: ``taps`` the trunk outputs at the fusion points, each
    (B·3, C, h, w); ``planes`` the colour planes at full resolution (B·3, 1, h·r, w·r). Each tap is
    reduced to ``head_channels`` by a pre-activated 1×1 conv, the sum is upsampled by r
    *bilinearly*, and concatenated with its plane; the three planes' stacks then enter the RGB
    network (a 3×3 conv to ``rgb_channels``, a residual block, InstanceNorm+ReLU+3×3 conv to 3).

    Why not the paper's pixel shuffle: there, each of the r² channels before the shuffle is one
    phase of every r×r cell, with its own weights and bias, so any difference between phases is
    a pattern of period r over the whole image. The earlier default weights learnt exactly that
    (a ±2–5 grey-level period-4 grid on photographs), and balancing the phases' means made it worse.
    Bilinear upsampling has no per-phase parameters: a locally linear feature map upsamples to a
    locally linear one, whatever the weights. Fine detail comes from the full-resolution RGB
    network, which sees the image itself and the upsampled trunk features.
    """

    def __init__(self, channels: int, num_taps: int, factor: int, rgb_channels: int, head_channels: int) -> None:
        super().__init__()
        self.factor = factor
        self.taps = nn.ModuleList(
            PreActDilatedConv2d(channels, head_channels, 1, padding=0) for _ in range(num_taps)
        )
        # No bias: an InstanceNorm reads it first.
        self.rgb_in = nn.Conv2d(3 * (1 + head_channels), rgb_channels, 3, padding=1, bias=False)
        self.rgb_block = PreActResBlock(rgb_channels)
        self.rgb_out = PreActDilatedConv2d(rgb_channels, 3, 3)
        nn.init.zeros_(self.rgb_out.weight)  # zero correction at initialisation, as the shuffle head
        nn.init.zeros_(self.rgb_out.bias)

    def forward(self, taps: list[Tensor], planes: Tensor) -> Tensor:
        fused = sum(reduce(tap) for reduce, tap in zip(self.taps, taps))
        upsampled = F.interpolate(fused, scale_factor=self.factor, mode="bilinear", align_corners=False)
        stacked = torch.cat((planes, upsampled), dim=1)
        per_sample = stacked.reshape(-1, 3 * stacked.shape[1], *stacked.shape[-2:])
        return self.rgb_out(self.rgb_block(self.rgb_in(per_sample)))


class PlaneRefinement(nn.Module):
    """Feature refinement and fusion of paper Sec. 6, applied to colour planes folded into the batch.

    ``forward(features, planes)``: ``features`` (B·3, C, h, w) from the feature extraction,
    ``planes`` (B·3, 1, h·r, w·r) the colour planes that the output corrects, r = ``factor``.
    Returns the correction (B, 3, h·r, w·r):

    1. ``num_blocks`` :class:`PreActResBlock` s, the middle ``num_dilated`` ones dilated;
    2. ``head="shuffle"`` (the paper's): the outputs after ``fusion_taps`` evenly spaced blocks
       each reduced to r² channels by a pre-activated 1×1 conv and summed with the
       pixel-unshuffled planes; planes regrouped as (B, 3·r², h, w), whose pixel shuffle is the
       three planes concatenated at full resolution, and a small RGB network: pixel shuffle +
       3×3 conv to ``rgb_channels`` (one fused resampling conv), one residual block,
       InstanceNorm+ReLU+3×3 conv to 3. The RGB network sees all colours at once and so corrects
       misalignment between the planes.
       ``head="smooth"``: the same taps reduced to ``head_channels`` and upsampled bilinearly
       instead (:class:`SmoothHead`; no period-r grid).
    """

    def __init__(
        self, channels: int, num_blocks: int, num_dilated: int, fusion_taps: int, factor: int, rgb_channels: int,
        head: str, head_channels: int,
    ) -> None:
        super().__init__()
        check_head(head)
        self.factor, self.head_kind = factor, head
        self.blocks = nn.ModuleList(PreActResBlock(channels, d) for d in dilation_schedule(num_blocks, num_dilated))
        self.fusion_points = fusion_points(num_blocks, fusion_taps)
        if head == "smooth":
            self.head = SmoothHead(channels, len(self.fusion_points), factor, rgb_channels, head_channels)
            return
        # The shuffle head's modules sit directly on this module: the state-dict keys of every
        # weight file trained with it stay valid.
        self.fusion = nn.ModuleList(
            PreActDilatedConv2d(channels, factor * factor, 1, padding=0) for _ in self.fusion_points
        )
        self.to_rgb = ResampleConv2d(3 * factor * factor, rgb_channels, 3, factor, mode="shuffle", bias=False)
        self.rgb_block = PreActResBlock(rgb_channels)
        self.rgb_out = PreActDilatedConv2d(rgb_channels, 3, 3)
        # Zero correction at initialisation: φm starts as "return y" and G as "return near", the
        # identities their residual design is built around, instead of 15 dB below the blurry
        # input. Only this last layer starts at zero, so it gets gradients from the first step.
        nn.init.zeros_(self.rgb_out.weight)
        nn.init.zeros_(self.rgb_out.bias)

    @property
    def output_layer(self) -> nn.Module:
        """The last conv, zero at initialisation, whichever the head."""
        return self.head.rgb_out if self.head_kind == "smooth" else self.rgb_out

    def forward(self, features: Tensor, planes: Tensor) -> Tensor:
        taps = []
        for index, block in enumerate(self.blocks, start=1):
            features = block(features)
            if index in self.fusion_points:
                taps.append(features)
        if self.head_kind == "smooth":
            return self.head(taps, planes)
        fused = F.pixel_unshuffle(planes, self.factor)
        for reduce, tap in zip(self.fusion, taps):
            fused = fused + reduce(tap)
        regrouped = fused.reshape(-1, 3 * fused.shape[1], *fused.shape[-2:])
        return self.rgb_out(self.rgb_block(self.to_rgb(regrouped)))


def pad_to_multiple(x: Tensor, multiple: int) -> tuple[Tensor, tuple[int, int]]:
    """Pads (…, H, W) at the bottom and right up to multiples of ``multiple``; returns it and (H, W).

    Reflection keeps image statistics at the border (zeros would look like a dark edge to the
    InstanceNorms). Reflection needs pad < size, so small images are reflected repeatedly, and a
    1-pixel dimension, which has nothing to reflect, is replicated.
    """
    height, width = x.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    while pad_h or pad_w:
        h, w = x.shape[-2:]
        if (pad_h and h < 2) or (pad_w and w < 2):
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
            break
        step_h, step_w = min(pad_h, h - 1), min(pad_w, w - 1)
        x = F.pad(x, (0, step_w, 0, step_h), mode="reflect")
        pad_h, pad_w = pad_h - step_h, pad_w - step_w
    return x, (height, width)


def crop_to(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Undoes :func:`pad_to_multiple`: keeps the top-left (H, W)."""
    return x[..., : size[0], : size[1]]
