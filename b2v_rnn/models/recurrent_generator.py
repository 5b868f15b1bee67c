"""Recurrent generator G(y, near, far) (docs/design.md §2.4; our weight-shared variant of paper Sec. 5.3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..ops import PreActDilatedConv2d, ResampleConv2d
from .blocks import PlaneRefinement, PreActResBlock, crop_to, fold_planes, pad_to_multiple

MOTIONS = ("residual", "flow")
"""G's parameterisations: ``output = near + f`` or ``output = warp(near, flow) + f``."""


def warp(image: Tensor, flow: Tensor) -> Tensor:
    """Backward warp: ``out[p] = image[p + flow[p]]``, bilinear, border-clamped.

    image (B, C, H, W); flow (B, 2, H, W) in pixels, channel 0 along x (width), 1 along y.
    A zero flow returns ``image`` exactly: the interpolation error of sampling at the pixel
    centres is subtracted, so an untrained flow G starts as the copy of ``near`` that the
    residual G starts as.
    """
    B, _, H, W = image.shape
    ys = (torch.arange(H, device=image.device, dtype=image.dtype) + 0.5) * (2.0 / H) - 1.0
    xs = (torch.arange(W, device=image.device, dtype=image.dtype) + 0.5) * (2.0 / W) - 1.0
    base = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).expand(B, H, W, 2)
    scale = torch.tensor([2.0 / W, 2.0 / H], device=image.device, dtype=image.dtype)
    moved = base + flow.permute(0, 2, 3, 1).to(image.dtype) * scale

    def sample(grid: Tensor) -> Tensor:
        return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)

    return image + (sample(moved) - sample(base))


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

    ``motion`` chooses the prior the residual corrects (a copy of ``near`` cannot
    continue a motion, and ``2·near − far`` gives double edges beyond ~1 px per frame):

    - ``"residual"``: ``output = near + f(y, near, far)`` (the paper's; the shipped weights);
    - ``"flow"``: a flow branch (the extracted features regrouped per sample, a pre-activated
      3×3 conv to ``flow_channels``, one residual block with dilations (1, 2), a 3×3 conv to 2
      channels) predicts a flow at 1/``factor`` resolution, upsampled bilinearly, in pixels;
      ``output = warp(near, flow) + f``, where f is the refinement's correction of the warped
      frame. The flow's last conv starts at zero, so an untrained G still returns ``near``.

    ``linear_skip`` = s > 0 adds a plain s×s convolution of (y, near, far) (9 → 3 channels, no
    normalisation, zero at initialisation) to the output. Every path of the trunk ends in an
    InstanceNorm, whose output has the same contrast whatever the input's, so the trunk learns a
    correction proportional to the input (the direction-free mix ``1.5·y − 0.5·near`` at T = 3,
    linear extrapolation ``2·near − far``, a sharpening filter) slowly; this path holds it at once.

    ``head``: the refinement's output path, "shuffle" (the paper's) or "smooth"
    (:class:`~.blocks.SmoothHead`). The presets keep "shuffle" for G: its period-5 pattern
    measures at the photograph's own level (``tests/test_grid.py``).
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
        motion: str = "residual",
        flow_channels: int = 32,
        linear_skip: int = 0,
        head: str = "shuffle",
        head_channels: int = 16,
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
        if motion not in MOTIONS:
            raise ValueError(f"unknown motion parameterisation {motion!r}; expected one of {MOTIONS}")
        if motion != "residual":
            # Only non-default options enter the config, so the configs (and state dicts) of
            # residual weights trained before the option existed stay exactly as they were.
            self.config.update(motion=motion, flow_channels=flow_channels)
        if linear_skip:
            if linear_skip < 0 or linear_skip % 2 == 0:
                raise ValueError(f"linear_skip must be 0 (off) or an odd kernel size, got {linear_skip}")
            self.config.update(linear_skip=linear_skip)
            self.skip = nn.Conv2d(9, 3, linear_skip, padding=linear_skip // 2, padding_mode="reflect")
            nn.init.zeros_(self.skip.weight)
            nn.init.zeros_(self.skip.bias)
        if head != "shuffle":
            self.config.update(head=head, head_channels=head_channels)
        self.motion = motion
        self.linear_skip = linear_skip
        self.factor = factor
        self.blurry_extraction = ResampleConv2d(1, blurry_channels, 5, factor, bias=False)
        self.near_extraction = ResampleConv2d(1, near_channels, 5, factor, bias=False)
        self.far_extraction = ResampleConv2d(1, far_channels, 5, factor, bias=False)
        channels = blurry_channels + near_channels + far_channels
        self.refinement = PlaneRefinement(
            channels, num_blocks, num_dilated, fusion_taps, factor, rgb_channels, head, head_channels
        )
        if motion == "flow":
            flow_out = PreActDilatedConv2d(flow_channels, 2, 3)
            nn.init.zeros_(flow_out.weight)
            nn.init.zeros_(flow_out.bias)
            self.flow = nn.Sequential(
                PreActDilatedConv2d(3 * channels, flow_channels, 3),
                PreActResBlock(flow_channels, (1, 2)),
                flow_out,
            )

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
        base = padded[1]
        if self.motion == "flow":
            base = warp(base, self.predict_flow(features))
            near_planes = fold_planes(base)
        correction = self.refinement(features, near_planes)
        if self.linear_skip:
            correction = correction + self.skip(torch.cat(padded, dim=1))
        return crop_to(base + correction, y.shape[-2:])

    def predict_flow(self, features: Tensor) -> Tensor:
        """Extracted features (B·3, C, h, w) → flow (B, 2, h·factor, w·factor) in pixels."""
        per_sample = features.reshape(-1, 3 * features.shape[1], *features.shape[-2:])
        return F.interpolate(self.flow(per_sample), scale_factor=self.factor, mode="bilinear", align_corners=False)
