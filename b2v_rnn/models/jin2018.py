"""The authors' four networks (Jin, Meishvili & Favaro, CVPR 2018), run on this project's ops.

The authors released four separately trained networks and no training code: ``centerEsti``
(frame 4 of 7), ``F35_N8`` (frames 3 and 5, two networks), ``F26_N9`` (frames 2 and 6, one
network used twice) and ``F17_N9`` (frames 1 and 7, likewise). The modules here carry the
parameter names and shapes of the authors' ``model.py``, so the state dict of each of their
files loads strictly into the matching module once PyTorch 0.3's InstanceNorm running
statistics are dropped (:mod:`b2v_rnn.official` reads the files). What differs is how they run:

- every "InstanceNorm → ReLU → conv" is one :func:`~b2v_rnn.ops.preact_dilated_conv2d` call,
  the norm folded into a per-(sample, channel) scale and shift from the statistics of the
  current input (the authors' networks never use running statistics: PyTorch 0.3 normalised
  by the input's statistics in eval mode too); the two branches of a block that normalise the
  same tensor share one set of statistics;
- every "pixel reshuffle → conv" and "pixel shuffle → conv" is one
  :func:`~b2v_rnn.ops.resample_conv2d` (the authors' ``pixel_reshuffle`` orders channels as
  ``F.pixel_unshuffle`` does);
- the three colour planes are folded into the batch (the authors loop over them), and the two
  frames of ``F26_N9`` and of ``F17_N9``, one network each, run as one batch;
- any H×W: the input is padded once by reflection to a multiple of 20 (the lcm of the
  factors 4 and 5) and the frames cropped back, where the authors crop the image to a
  multiple of 20;
- like :class:`~b2v_rnn.models.BlurToVideo`: ``extract(y, T)``, autocast and channels_last
  through the ops, frames clamped to [0, 1] in eval mode only (the recurrence is fed the raw
  frames, as the authors' code does).

The modules named ``norm*`` and ``conv*`` hold parameters only (an ``nn.InstanceNorm2d`` without
running statistics and a bias-free ``nn.Conv2d`` with the authors' dilation and padding); the
blocks' ``forward`` reads them into the fused ops.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import UserError
from ..ops import ResampleConv2d, instance_norm_affine, preact_dilated_conv2d
from ..ops.preact_dilated_conv2d import channel_statistics
from .blocks import crop_to, fold_planes, pad_to_multiple

FRAMES = 7
"""The authors' networks extract exactly this many frames (x1 … x7)."""

SIZE_MULTIPLE = 20
"""Image sides are padded to this multiple: the centre network resamples by 4, the others by 5."""

CENTER_DILATIONS = ((1, 2), (2, 4), (4, 8)), ((8, 4), (4, 2), (2, 1))
"""Dilations of the two 3×3 convs of ``centerEsti``'s ``LocalGrad2`` and ``LocalGrad3`` blocks."""

FRAME_DILATIONS = ((1, 2), (4, 8), (8, 4), (2, 1))
"""Dilations of the ``LocalGrad2`` blocks of the networks of frames 1–3 and 5–7."""


def check_seven(T: int) -> None:
    """UserError unless T is the 7 frames the authors' networks were trained for."""
    if T != FRAMES:
        raise UserError(f"T={T!r}: the authors' pretrained networks extract exactly {FRAMES} frames; use T={FRAMES}")


def _norm(channels: int) -> nn.InstanceNorm2d:
    # Holds γ and β under the authors' names; no running statistics (see the module doc).
    return nn.InstanceNorm2d(channels, affine=True, track_running_stats=False)


def _conv(in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=dilation * (kernel_size // 2),
                     dilation=dilation, bias=False)


def _preact(norm: nn.InstanceNorm2d, conv: nn.Conv2d, x: Tensor,
            statistics: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """``conv(relu(norm(x)))`` in one fused call; ``statistics``: x's (mean, var) if known."""
    scale, shift = instance_norm_affine(x, norm.weight, norm.bias, norm.eps, statistics)
    return preact_dilated_conv2d(x, scale, shift, conv.weight, None, conv.dilation[0], conv.padding[0])


class ResBlock(nn.Module):
    """The authors' ``FourConvResBlockIN`` / ``FourDilateConvResBlockIN``, (B, C, H, W) → same:
    ``x + conv1(relu(norm1(x))) + conv4(relu(norm4(conv2(relu(norm2(x))))))``, conv1 1×1,
    conv2 and conv4 3×3 with ``dilations``."""

    def __init__(self, channels: int, dilations: tuple[int, int] = (1, 1)) -> None:
        super().__init__()
        self.norm1, self.conv1 = _norm(channels), _conv(channels, channels, 1)
        self.norm2, self.conv2 = _norm(channels), _conv(channels, channels, 3, dilations[0])
        self.norm4, self.conv4 = _norm(channels), _conv(channels, channels, 3, dilations[1])

    def forward(self, x: Tensor) -> Tensor:
        statistics = channel_statistics(x)
        inner = _preact(self.norm2, self.conv2, x, statistics)
        return x + _preact(self.norm1, self.conv1, x, statistics) + _preact(self.norm4, self.conv4, inner)


class PairBlock(nn.Module):
    """The authors' ``TwoConvBlockIN``, (B, C, H, W) → (B, K, H, W), no residual:
    ``conv1(relu(norm1(x))) + conv2(relu(norm2(x)))``, conv1 1×1, conv2 3×3."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = _norm(in_channels), _conv(in_channels, out_channels, 1)
        self.norm2, self.conv2 = _norm(in_channels), _conv(in_channels, out_channels, 3)

    def forward(self, x: Tensor) -> Tensor:
        statistics = channel_statistics(x)
        return _preact(self.norm1, self.conv1, x, statistics) + _preact(self.norm2, self.conv2, x, statistics)


def _blocks(channels: int, count: int) -> nn.Sequential:
    return nn.Sequential(*(ResBlock(channels) for _ in range(count)))


def _dilated(channels: int, dilations) -> nn.Sequential:
    return nn.Sequential(*(ResBlock(channels, pair) for pair in dilations))


def _fuse_and_shuffle(planes: Tensor, factor: int, fuses, taps: list[Tensor], to_rgb: ResampleConv2d) -> Tensor:
    """Σ fuse(tap) + the unshuffled planes, per plane (B·3, f², h, w); then the three planes'
    pixel shuffles concatenated (B, 3, H, W) and convolved, one resampling conv."""
    fused = F.pixel_unshuffle(planes, factor)
    for fuse, tap in zip(fuses, taps):
        fused = fused + fuse(tap)
    return to_rgb(fused.reshape(-1, 3 * fused.shape[1], *fused.shape[-2:]))


class CenterEsti(nn.Module):
    """The authors' ``centerEsti``: blurry y (B, 3, H, W), H and W multiples of 4 → frame 4.

    Per colour plane: pixel reshuffle by 4 and a 5×5 conv to 144 channels (``conv1_B``), four
    groups of three residual blocks (the middle two dilated), each group's output reduced to 16
    channels by a :class:`PairBlock` (``fuse1``–``fuse4``) and summed with the reshuffled plane;
    then for the three planes at once: pixel shuffle and a 3×3 conv to 64 (``conv2``), one
    residual block (``GlobalGrad``), InstanceNorm+ReLU+3×3 conv to 3 (``norm3``, ``conv3``), plus y.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1_B = ResampleConv2d(1, 144, 5, 4, bias=False)
        self.LocalGrad1 = _blocks(144, 3)
        self.LocalGrad2 = _dilated(144, CENTER_DILATIONS[0])
        self.LocalGrad3 = _dilated(144, CENTER_DILATIONS[1])
        self.LocalGrad4 = _blocks(144, 3)
        self.fuse1, self.fuse2, self.fuse3, self.fuse4 = (nn.Sequential(PairBlock(144, 16)) for _ in range(4))
        self.conv2 = ResampleConv2d(3 * 16, 64, 3, 4, mode="shuffle", bias=False)
        self.GlobalGrad = _blocks(64, 1)
        self.norm3, self.conv3 = _norm(64), _conv(64, 3, 3)

    def forward(self, y: Tensor) -> Tensor:
        planes = fold_planes(y)
        features, taps = self.conv1_B(planes), []
        for group in (self.LocalGrad1, self.LocalGrad2, self.LocalGrad3, self.LocalGrad4):
            features = group(features)
            taps.append(features)
        fuses = (self.fuse1, self.fuse2, self.fuse3, self.fuse4)
        rgb = self.GlobalGrad(_fuse_and_shuffle(planes, 4, fuses, taps, self.conv2))
        return y + _preact(self.norm3, self.conv3, rgb)


class FrameNet(nn.Module):
    """The authors' ``N8_IN`` (``outer_blocks=4``) and ``N9_IN`` (2): ``(y, near, far)``, each
    (B, 3, H, W) with H and W multiples of 5 → the frame next to ``near``, ``near + f(y, near, far)``.

    Per colour plane: pixel reshuffle by 5 and a 5×5 conv of each input (y to 64 channels,
    ``conv1_B``; far to 32, ``conv1_S1``; near to 32, ``conv1_S2``), concatenated; ``outer_blocks``
    residual blocks, four dilated ones, ``outer_blocks`` more, each group's output reduced to 25
    channels (``fuse1``–``fuse3``) and summed with the reshuffled near plane; then for the three
    planes: pixel shuffle and a 3×3 conv to 32 (``conv2``), a :class:`PairBlock` (``GlobalGrad``),
    InstanceNorm+ReLU+3×3 conv to 3. ``near`` is the authors' third input and ``far`` their second.
    """

    def __init__(self, outer_blocks: int) -> None:
        super().__init__()
        self.conv1_B = ResampleConv2d(1, 64, 5, 5, bias=False)
        self.conv1_S1 = ResampleConv2d(1, 32, 5, 5, bias=False)
        self.conv1_S2 = ResampleConv2d(1, 32, 5, 5, bias=False)
        self.LocalGrad1 = _blocks(128, outer_blocks)
        self.LocalGrad2 = _dilated(128, FRAME_DILATIONS)
        self.LocalGrad3 = _blocks(128, outer_blocks)
        self.fuse1, self.fuse2, self.fuse3 = (nn.Sequential(PairBlock(128, 25)) for _ in range(3))
        self.conv2 = ResampleConv2d(3 * 25, 32, 3, 5, mode="shuffle", bias=False)
        self.GlobalGrad = nn.Sequential(PairBlock(32, 32))
        self.norm3, self.conv3 = _norm(32), _conv(32, 3, 3)

    def forward(self, y: Tensor, near: Tensor, far: Tensor) -> Tensor:
        near_planes = fold_planes(near)
        features = torch.cat(
            (self.conv1_B(fold_planes(y)), self.conv1_S1(fold_planes(far)), self.conv1_S2(near_planes)), dim=1
        )
        taps = []
        for group in (self.LocalGrad1, self.LocalGrad2, self.LocalGrad3):
            features = group(features)
            taps.append(features)
        rgb = self.GlobalGrad(_fuse_and_shuffle(near_planes, 5, (self.fuse1, self.fuse2, self.fuse3), taps, self.conv2))
        return near + _preact(self.norm3, self.conv3, rgb)


def _pairwise(net: FrameNet, y: Tensor, near: tuple[Tensor, Tensor], far: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """One network's two frames, left and right of the middle, as one batch."""
    both = net(torch.cat((y, y)), torch.cat(near), torch.cat(far))
    return both[: y.shape[0]], both[y.shape[0]:]


class F35_N8(nn.Module):
    """The authors' ``F35_N8``: ``(y, x4)`` → ``(x3, x5)``, two networks. x3 from near = far = x4;
    x5 from near = x4 and far = x3, the frame just chosen, which fixes the direction."""

    def __init__(self) -> None:
        super().__init__()
        self.generateFrame3 = FrameNet(4)
        self.generateFrame5 = FrameNet(4)

    def forward(self, y: Tensor, x4: Tensor) -> tuple[Tensor, Tensor]:
        x3 = self.generateFrame3(y, x4, x4)
        return x3, self.generateFrame5(y, x4, x3)


class F26_N9(nn.Module):
    """The authors' ``F26_N9``: ``(y, x3, x4, x5)`` → ``(x2, x6)``, one network: x2 from near x3
    and far x4, x6 from near x5 and far x4."""

    def __init__(self) -> None:
        super().__init__()
        self.generateFrame2_6 = FrameNet(2)

    def forward(self, y: Tensor, x3: Tensor, x4: Tensor, x5: Tensor) -> tuple[Tensor, Tensor]:
        return _pairwise(self.generateFrame2_6, y, (x3, x5), (x4, x4))


class F17_N9(nn.Module):
    """The authors' ``F17_N9``: ``(y, x2, x3, x5, x6)`` → ``(x1, x7)``, one network: x1 from near
    x2 and far x3, x7 from near x6 and far x5."""

    def __init__(self) -> None:
        super().__init__()
        self.generateFrame1_7 = FrameNet(2)

    def forward(self, y: Tensor, x2: Tensor, x3: Tensor, x5: Tensor, x6: Tensor) -> tuple[Tensor, Tensor]:
        return _pairwise(self.generateFrame1_7, y, (x2, x6), (x3, x5))


NETWORKS = ("center", "frames35", "frames26", "frames17")
"""The attribute names of :class:`Jin2018`'s four networks, in the order they run."""


@dataclass(frozen=True, kw_only=True)
class Jin2018Config:
    """:class:`Jin2018`'s config: only its ``kind``, fixed, which names it in a checkpoint (the
    authors' files fix every width, so there is nothing to choose)."""

    kind: str = field(default="Jin2018", init=False)


class Jin2018(nn.Module):
    """The authors' four networks as one model: blurry y (B, 3, H, W) → frames (B, 7, 3, H, W).

    ``center`` (:class:`CenterEsti`), ``frames35`` (:class:`F35_N8`), ``frames26``
    (:class:`F26_N9`), ``frames17`` (:class:`F17_N9`); each one's state dict is that of one of
    the authors' files (``b2v_rnn.official.FILES``). Same interface as
    :class:`~b2v_rnn.models.BlurToVideo`, for T = 7 only; ``architecture`` is its
    :class:`Jin2018Config` and ``config`` that config's plain dict, which checkpoints store.
    """

    size_multiple = SIZE_MULTIPLE
    fixed_T = FRAMES
    """The one number of frames these networks make."""
    frames_per_call = {"center": 1, "frames35": 2, "frames26": 2, "frames17": 2}
    """Frames each call of a sub-network makes (a progress bar follows them)."""

    def __init__(self, config: Jin2018Config | None = None) -> None:
        super().__init__()
        if config is not None and not isinstance(config, Jin2018Config):
            raise TypeError(f"Jin2018 takes a Jin2018Config, got {config!r}")
        self.architecture = Jin2018Config() if config is None else config
        self.center = CenterEsti()
        self.frames35 = F35_N8()
        self.frames26 = F26_N9()
        self.frames17 = F17_N9()

    @property
    def config(self) -> dict[str, Any]:
        """``architecture`` as a plain dict, as checkpoints store it."""
        return dataclasses.asdict(self.architecture)

    def forward(self, y: Tensor, T: int = FRAMES) -> Tensor:
        return self.extract(y, T)

    def extract(self, y: Tensor, T: int = FRAMES, clamp: bool | None = None) -> Tensor:
        """(B, 3, H, W) in [0, 1] → (B, 7, 3, H, W): frame 4, then 3 and 5, 2 and 6, 1 and 7.

        Clamped to [0, 1] in eval mode (``clamp=`` overrides); T other than 7 is a UserError.
        """
        check_seven(T)
        padded, size = pad_to_multiple(y, SIZE_MULTIPLE)
        x4 = self.center(padded)
        x3, x5 = self.frames35(padded, x4)
        x2, x6 = self.frames26(padded, x3, x4, x5)
        x1, x7 = self.frames17(padded, x2, x3, x5, x6)
        frames = crop_to(torch.stack((x1, x2, x3, x4, x5, x6, x7), dim=1), size)
        if clamp is None:
            clamp = not self.training
        return frames.clamp(0, 1) if clamp else frames
