"""Recurrent generator G(y, near, far) (docs/design.md §2.4; our weight-shared variant of paper Sec. 5.3)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..ops import PreActDilatedConv2d, ResampleConv2d
from .blocks import (PlaneRefinement, PreActResBlock, check_head, check_linear_skip, crop_to, fold_planes,
                     pad_to_multiple)

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


@dataclass(frozen=True, kw_only=True)
class GeneratorConfig:
    """G's architecture (the fields are described in :class:`RecurrentGenerator`). The defaults
    are the "paper" preset's: the paper's widths, ``motion="flow"`` with a 3×3 linear skip, and
    the paper's "shuffle" head."""

    blurry_channels: int = 64
    near_channels: int = 32
    far_channels: int = 32
    num_blocks: int = 8
    num_dilated: int = 4
    fusion_taps: int = 4
    factor: int = 5
    rgb_channels: int = 32
    motion: str = "flow"
    flow_channels: int = 32
    linear_skip: int = 3
    head: str = "shuffle"
    head_channels: int = 16

    def __post_init__(self) -> None:
        if self.motion not in MOTIONS:
            raise ValueError(f"unknown motion parameterisation {self.motion!r}; expected one of {MOTIONS}")
        check_linear_skip(self.linear_skip)
        check_head(self.head)


class RecurrentGenerator(nn.Module):
    """G: (y, near, far), each (B, 3, H, W) in [0,1] → the next frame outward (B, 3, H, W).

    Built from a :class:`GeneratorConfig`, or from keyword arguments that replace its fields
    (``RecurrentGenerator(motion="residual")``; both: the arguments replace the given config's).
    ``architecture`` is that config and ``config`` its plain dict, which checkpoints store.

    ``near`` is the frame next to the one being generated on the side of the middle frame and
    ``far`` the one after it (for the core pair, see :meth:`BlurToVideo.unroll`). Residual on the
    near frame (or on near warped, below): ``output = near + f(y, near, far)``.

    Like φm, it works on colour planes folded into the batch (the paper's design and its public
    code): the three inputs each have their own resampling conv (pixel unshuffle by ``factor``,
    5×5 conv to ``blurry_channels`` / ``near_channels`` / ``far_channels``), the features are
    concatenated and refined by ``num_blocks`` residual blocks (``num_dilated`` dilated); the
    fusion adds the unshuffled near frame. Per-plane extraction costs 3× the batch but keeps the
    first convs tiny and shares them across colours. The widths default to the paper's: factor 5
    and 64 + 32 + 32 = 128 channels. Any H×W (padded to multiples of ``factor`` and cropped back).

    ``motion`` chooses the prior the residual corrects (a copy of ``near`` cannot
    continue a motion, and ``2·near − far`` gives double edges beyond ~1 px per frame):

    - ``"residual"``: ``output = near + f(y, near, far)`` (the paper's);
    - ``"flow"`` (the default and every preset's): a flow branch (the extracted features regrouped
      per sample, a pre-activated 3×3 conv to ``flow_channels``, one residual block with
      dilations (1, 2), a 3×3 conv to 2 channels) predicts a flow at 1/``factor`` resolution,
      upsampled bilinearly, in pixels; ``output = warp(near, flow) + f``, where f is the
      refinement's correction of the warped frame. The flow's last conv starts at zero, so an
      untrained G still returns ``near``.

    ``linear_skip`` = s > 0 adds a plain s×s convolution of (y, near, far) (9 → 3 channels, no
    normalisation, zero at initialisation) to the output. Every path of the trunk ends in an
    InstanceNorm, whose output has the same contrast whatever the input's, so the trunk learns a
    correction proportional to the input (the direction-free mix ``1.5·y − 0.5·near`` at T = 3,
    linear extrapolation ``2·near − far``, a sharpening filter) slowly; this path holds it at once.

    ``head``: the refinement's output path, "shuffle" (the paper's) or "smooth"
    (:class:`~.blocks.SmoothHead`). The presets keep "shuffle" for G: its period-5 pattern
    measures at the photograph's own level (``tests/test_models_grid.py``).
    """

    def __init__(self, config: GeneratorConfig | None = None, **options: Any) -> None:
        super().__init__()
        if config is not None and not isinstance(config, GeneratorConfig):
            raise TypeError(f"RecurrentGenerator takes a GeneratorConfig and keyword arguments, got {config!r}")
        config = dataclasses.replace(GeneratorConfig() if config is None else config, **options)
        self.architecture = config
        self.motion = config.motion
        self.linear_skip = config.linear_skip
        self.factor = config.factor
        # Created in the order they always were (skip, extractions, refinement, flow), so a seed
        # still gives the initial weights it gave before.
        if config.linear_skip:
            skip = config.linear_skip
            self.skip = nn.Conv2d(9, 3, skip, padding=skip // 2, padding_mode="reflect")
            nn.init.zeros_(self.skip.weight)
            nn.init.zeros_(self.skip.bias)
        self.blurry_extraction = ResampleConv2d(1, config.blurry_channels, 5, config.factor, bias=False)
        self.near_extraction = ResampleConv2d(1, config.near_channels, 5, config.factor, bias=False)
        self.far_extraction = ResampleConv2d(1, config.far_channels, 5, config.factor, bias=False)
        channels = config.blurry_channels + config.near_channels + config.far_channels
        self.refinement = PlaneRefinement(
            channels, config.num_blocks, config.num_dilated, config.fusion_taps, config.factor,
            config.rgb_channels, config.head, config.head_channels,
        )
        if config.motion == "flow":
            self.flow = self._flow_branch(channels, config.flow_channels)

    @staticmethod
    def _flow_branch(channels: int, flow_channels: int) -> nn.Sequential:
        flow_out = PreActDilatedConv2d(flow_channels, 2, 3)
        nn.init.zeros_(flow_out.weight)
        nn.init.zeros_(flow_out.bias)
        return nn.Sequential(
            PreActDilatedConv2d(3 * channels, flow_channels, 3),
            PreActResBlock(flow_channels, (1, 2)),
            flow_out,
        )

    @property
    def config(self) -> dict[str, Any]:
        """``architecture`` as a plain dict (every field), as checkpoints store it."""
        return dataclasses.asdict(self.architecture)

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
