"""Recurrent generator G(y, near, far) (DESIGN §2; our weight-shared variant of paper Sec. 5.3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..ops import ResampleConv2d
from .blocks import PlaneRefinement, crop_to, fold_planes, pad_to_multiple


class RecurrentGenerator(nn.Module):
    """G: (y, near, far), each (B, 3, H, W) in [0,1] → the next frame outward (B, 3, H, W).

    ``near`` is the frame next to the one being generated on the side of the middle frame and
    ``far`` the one after it (for the core pair, see :meth:`BlurToVideo.unroll`). Residual on the
    near frame: ``output = near + f(y, near, far)``.

    Like φm, it works on colour planes folded into the batch (the paper's design and its public
    code): the three inputs each have their own resampling conv (pixel unshuffle by ``factor``,
    5×5 conv to ``blurry_channels`` / ``near_channels`` / ``far_channels``), the features are
    concatenated and refined by ``num_blocks`` residual blocks (``num_dilated`` dilated); the
    fusion adds the unshuffled near frame. Per-plane extraction costs 3× the batch but keeps the
    first convs tiny and shares them across colours. Defaults are the paper's: factor 5 and
    64 + 32 + 32 = 128 channels. Any H×W (padded to multiples of ``factor`` and cropped back).
    """

    def __init__(
        self,
        blurry_channels: int = 64,
        near_channels: int = 32,
        far_channels: int = 32,
        num_blocks: int = 8,
        num_dilated: int = 4,
        fusion_taps: int = 4,
        factor: int = 5,
        rgb_channels: int = 32,
    ) -> None:
        super().__init__()
        self.config = {
            "blurry_channels": blurry_channels,
            "near_channels": near_channels,
            "far_channels": far_channels,
            "num_blocks": num_blocks,
            "num_dilated": num_dilated,
            "fusion_taps": fusion_taps,
            "factor": factor,
            "rgb_channels": rgb_channels,
        }
        self.factor = factor
        self.blurry_extraction = ResampleConv2d(1, blurry_channels, 5, factor, bias=False)
        self.near_extraction = ResampleConv2d(1, near_channels, 5, factor, bias=False)
        self.far_extraction = ResampleConv2d(1, far_channels, 5, factor, bias=False)
        channels = blurry_channels + near_channels + far_channels
        self.refinement = PlaneRefinement(channels, num_blocks, num_dilated, fusion_taps, factor, rgb_channels)

    def forward(self, y: Tensor, near: Tensor, far: Tensor) -> Tensor:
        if not y.shape == near.shape == far.shape:
            raise ValueError(
                f"RecurrentGenerator: y, near and far must have one shape (B, 3, H, W), got "
                f"{tuple(y.shape)}, {tuple(near.shape)}, {tuple(far.shape)}"
            )
        padded = [pad_to_multiple(image, self.factor)[0] for image in (y, near, far)]
        y_planes, near_planes, far_planes = (fold_planes(image) for image in padded)
        features = torch.cat(
            (
                self.blurry_extraction(y_planes),
                self.near_extraction(near_planes),
                self.far_extraction(far_planes),
            ),
            dim=1,
        )
        correction = self.refinement(features, F.pixel_unshuffle(near_planes, self.factor))
        return crop_to(padded[1] + correction, y.shape[-2:])
