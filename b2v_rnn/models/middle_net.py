"""Middle-frame network φm (paper Sec. 5 eq. 3 and Sec. 6; docs/design.md §2.3)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from ..ops import ResampleConv2d
from .blocks import PlaneRefinement, check_head, check_linear_skip, crop_to, fold_planes, pad_to_multiple


@dataclass(frozen=True, kw_only=True)
class MiddleConfig:
    """φm's architecture (the fields are described in :class:`MiddleNet`). The defaults are the
    "paper" preset's: the paper's widths with the grid-free "smooth" head and no linear skip."""

    channels: int = 144
    num_blocks: int = 12
    num_dilated: int = 6
    fusion_taps: int = 4
    factor: int = 4
    rgb_channels: int = 64
    linear_skip: int = 0
    head: str = "smooth"
    head_channels: int = 16

    def __post_init__(self) -> None:
        check_linear_skip(self.linear_skip)
        check_head(self.head)


class MiddleNet(nn.Module):
    """φm: blurry image y (B, 3, H, W) in [0,1] → middle sharp frame x̂[m] (B, 3, H, W).

    Built from a :class:`MiddleConfig`, or from keyword arguments that replace its fields
    (``MiddleNet(channels=64)``; both: the arguments replace the given config's fields).
    ``architecture`` is that config and ``config`` its plain dict, which checkpoints store.

    Residual learning: ``x̂[m] = y + f(y)``. Each colour plane goes through the same feature
    extraction (pixel unshuffle by ``factor`` then a 5×5 conv to ``channels``, one fused
    :class:`~b2v_rnn.ops.ResampleConv2d`) and refinement (``num_blocks`` pre-activation residual
    blocks, ``num_dilated`` of them dilated); ``fusion_taps`` block outputs are fused and a small
    RGB network of width ``rgb_channels`` produces f (see :class:`~.blocks.PlaneRefinement`).
    The widths default to the paper's (≈5 M parameters). Any H×W: inputs are padded by
    reflection to multiples of ``factor`` and the output cropped back.

    ``linear_skip`` = s > 0 adds a plain s×s convolution of y (3 → 3 channels, no normalisation,
    zero at initialisation) to the output: a learned linear deblurring filter whose correction
    scales with the input's contrast, which the InstanceNorm-ended trunk learns only slowly.

    ``head``: "shuffle" is the paper's output path (per-phase channels through a pixel shuffle),
    "smooth" the grid-free one of :class:`~.blocks.SmoothHead` (``head_channels`` features
    upsampled bilinearly), the default and every preset's (docs/design.md §2.2).
    """

    def __init__(self, config: MiddleConfig | None = None, **options: Any) -> None:
        super().__init__()
        if config is not None and not isinstance(config, MiddleConfig):
            raise TypeError(f"MiddleNet takes a MiddleConfig and keyword arguments, got {config!r}")
        config = dataclasses.replace(MiddleConfig() if config is None else config, **options)
        self.architecture = config
        self.factor = config.factor
        self.linear_skip = config.linear_skip
        if config.linear_skip:
            skip = config.linear_skip
            self.skip = nn.Conv2d(3, 3, skip, padding=skip // 2, padding_mode="reflect")
            nn.init.zeros_(self.skip.weight)
            nn.init.zeros_(self.skip.bias)
        # No bias: the features are only read through InstanceNorms.
        self.feature_extraction = ResampleConv2d(1, config.channels, 5, config.factor, bias=False)
        self.refinement = PlaneRefinement(
            config.channels, config.num_blocks, config.num_dilated, config.fusion_taps, config.factor,
            config.rgb_channels, config.head, config.head_channels,
        )

    @property
    def config(self) -> dict[str, Any]:
        """``architecture`` as a plain dict (every field), as checkpoints store it."""
        return dataclasses.asdict(self.architecture)

    def forward(self, y: Tensor) -> Tensor:
        padded, size = pad_to_multiple(y, self.factor)
        planes = fold_planes(padded)
        correction = self.refinement(self.feature_extraction(planes), planes)
        if self.linear_skip:
            correction = correction + self.skip(padded)
        return crop_to(padded + correction, size)
