"""Middle-frame network φm (paper Sec. 5 eq. 3 and Sec. 6; docs/design.md §2.3)."""

from __future__ import annotations

from torch import Tensor, nn

from ..ops import ResampleConv2d
from .blocks import PlaneRefinement, crop_to, fold_planes, pad_to_multiple


class MiddleNet(nn.Module):
    """φm: blurry image y (B, 3, H, W) in [0,1] → middle sharp frame x̂[m] (B, 3, H, W).

    Residual learning: ``x̂[m] = y + f(y)``. Each colour plane goes through the same feature
    extraction (pixel unshuffle by ``factor`` then a 5×5 conv to ``channels``, one fused
    :class:`~b2v_rnn.ops.ResampleConv2d`) and refinement (``num_blocks`` pre-activation residual
    blocks, ``num_dilated`` of them dilated); ``fusion_taps`` block outputs are fused and a small
    RGB network of width ``rgb_channels`` produces f (see :class:`~.blocks.PlaneRefinement`).
    Defaults are the paper's widths (≈5 M parameters). Any H×W: inputs are padded by reflection
    to multiples of ``factor`` and the output cropped back.

    ``linear_skip`` = s > 0 adds a plain s×s convolution of y (3 → 3 channels, no normalisation,
    zero at initialisation) to the output: a learned linear deblurring filter whose correction
    scales with the input's contrast, which the InstanceNorm-ended trunk learns only slowly.

    ``head``: "shuffle" is the paper's output path (per-phase channels through a pixel shuffle),
    "smooth" the grid-free one of :class:`~.blocks.SmoothHead` (``head_channels`` features
    upsampled bilinearly); the presets use "smooth" (docs/design.md §2.2).
    """

    def __init__(
        self,
        channels: int = 144,
        num_blocks: int = 12,
        num_dilated: int = 6,
        fusion_taps: int = 4,
        factor: int = 4,
        rgb_channels: int = 64,
        linear_skip: int = 0,
        head: str = "shuffle",
        head_channels: int = 16,
    ) -> None:
        super().__init__()
        self.config = {
            "channels": channels,
            "num_blocks": num_blocks,
            "num_dilated": num_dilated,
            "fusion_taps": fusion_taps,
            "factor": factor,
            "rgb_channels": rgb_channels,
        }
        self.factor = factor
        self.linear_skip = linear_skip
        if head != "shuffle":
            # Only when not the paper's, so configs of weights trained before the option still match.
            self.config.update(head=head, head_channels=head_channels)
        if linear_skip:
            if linear_skip < 0 or linear_skip % 2 == 0:
                raise ValueError(f"linear_skip must be 0 (off) or an odd kernel size, got {linear_skip}")
            # Only when set, so configs and state dicts of earlier weights stay as they were.
            self.config["linear_skip"] = linear_skip
            self.skip = nn.Conv2d(3, 3, linear_skip, padding=linear_skip // 2, padding_mode="reflect")
            nn.init.zeros_(self.skip.weight)
            nn.init.zeros_(self.skip.bias)
        # No bias: the features are only read through InstanceNorms.
        self.feature_extraction = ResampleConv2d(1, channels, 5, factor, bias=False)
        self.refinement = PlaneRefinement(
            channels, num_blocks, num_dilated, fusion_taps, factor, rgb_channels, head, head_channels
        )

    def forward(self, y: Tensor) -> Tensor:
        padded, size = pad_to_multiple(y, self.factor)
        planes = fold_planes(padded)
        correction = self.refinement(self.feature_extraction(planes), planes)
        if self.linear_skip:
            correction = correction + self.skip(padded)
        return crop_to(padded + correction, size)
