"""The authors' four networks as their public code runs them, restated in plain PyTorch layers.

The baseline of ``bench_jin2018.py`` and the independent check of ``b2v_rnn.models.jin2018`` in
``tests/test_jin2018.py``: the same parameter names (so one state dict loads into both), but
eager ``nn.InstanceNorm2d`` → ``nn.ReLU`` → ``nn.Conv2d`` chains, the pixel reshuffle as a
tensor reshape, each colour plane through the trunk one after the other, the two frames of a
shared network one after the other, float32 NCHW, no padding (H and W multiples of 20, as the
authors' ``demo.py`` crops them).

    frames = extract(networks(), y)   # y (B, 3, H, W) -> (B, 7, 3, H, W), unclamped
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def reshuffle(plane: Tensor, factor: int) -> Tensor:
    """(B, 1, H, W) → (B, factor², H/factor, W/factor), channel dy·factor + dx."""
    b, c, h, w = plane.shape
    cells = plane.reshape(b, c, h // factor, factor, w // factor, factor)
    return cells.permute(0, 1, 3, 5, 2, 4).reshape(b, c * factor * factor, h // factor, w // factor)


def planes(image: Tensor) -> list[Tensor]:
    return [image[:, c : c + 1] for c in range(3)]


class Block(nn.Module):
    """1×1 branch plus two 3×3 convs, each after InstanceNorm+ReLU; ``residual`` adds x."""

    def __init__(self, cin: int, cout: int, dilations: tuple[int, int] | None = (1, 1)) -> None:
        super().__init__()
        self.residual = dilations is not None
        self.norm1, self.conv1 = nn.InstanceNorm2d(cin, affine=True), nn.Conv2d(cin, cout, 1, bias=False)
        d2 = dilations[0] if dilations else 1
        self.norm2, self.conv2 = nn.InstanceNorm2d(cin, affine=True), nn.Conv2d(cin, cout, 3, 1, d2, d2, bias=False)
        if self.residual:
            d4 = dilations[1]
            self.norm4, self.conv4 = nn.InstanceNorm2d(cout, affine=True), nn.Conv2d(cout, cout, 3, 1, d4, d4, bias=False)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        one = self.conv1(self.relu(self.norm1(x)))
        two = self.conv2(self.relu(self.norm2(x)))
        if not self.residual:
            return one + two
        return x + one + self.conv4(self.relu(self.norm4(two)))


def pair(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(Block(cin, cout, None))


class Trunk(nn.Module):
    """Shared by both kinds of network: groups of blocks, fusion, RGB network."""

    factor: int

    def _refine(self, features: Tensor, base: Tensor, groups, fuses) -> Tensor:
        taps = []
        for group in groups:
            features = group(features)
            taps.append(features)
        total = taps[0].new_zeros(())
        for fuse, tap in zip(fuses, taps):
            total = total + fuse(tap)
        return nn.functional.pixel_shuffle(total + base, self.factor)

    def _rgb(self, shuffled: list[Tensor]) -> Tensor:
        out = self.GlobalGrad(self.conv2(torch.cat(shuffled, 1)))
        return self.conv3(self.relu(self.norm3(out)))


class Center(Trunk):
    factor = 4

    def __init__(self) -> None:
        super().__init__()
        self.conv1_B = nn.Conv2d(16, 144, 5, 1, 2, bias=False)
        self.LocalGrad1 = nn.Sequential(*(Block(144, 144) for _ in range(3)))
        self.LocalGrad2 = nn.Sequential(*(Block(144, 144, d) for d in ((1, 2), (2, 4), (4, 8))))
        self.LocalGrad3 = nn.Sequential(*(Block(144, 144, d) for d in ((8, 4), (4, 2), (2, 1))))
        self.LocalGrad4 = nn.Sequential(*(Block(144, 144) for _ in range(3)))
        for i in range(1, 5):
            setattr(self, f"fuse{i}", pair(144, 16))
        self.conv2 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.GlobalGrad = nn.Sequential(Block(64, 64))
        self.norm3, self.relu, self.conv3 = nn.InstanceNorm2d(64, affine=True), nn.ReLU(True), nn.Conv2d(64, 3, 3, 1, 1, bias=False)

    def forward(self, y: Tensor) -> Tensor:
        groups = (self.LocalGrad1, self.LocalGrad2, self.LocalGrad3, self.LocalGrad4)
        fuses = (self.fuse1, self.fuse2, self.fuse3, self.fuse4)
        shuffled = []
        for plane in planes(y):
            base = reshuffle(plane, 4)
            shuffled.append(self._refine(self.conv1_B(base), base, groups, fuses))
        return self._rgb(shuffled) + y


class Frame(Trunk):
    factor = 5

    def __init__(self, outer: int) -> None:
        super().__init__()
        self.conv1_B = nn.Conv2d(25, 64, 5, 1, 2, bias=False)
        self.conv1_S1 = nn.Conv2d(25, 32, 5, 1, 2, bias=False)
        self.conv1_S2 = nn.Conv2d(25, 32, 5, 1, 2, bias=False)
        self.LocalGrad1 = nn.Sequential(*(Block(128, 128) for _ in range(outer)))
        self.LocalGrad2 = nn.Sequential(*(Block(128, 128, d) for d in ((1, 2), (4, 8), (8, 4), (2, 1))))
        self.LocalGrad3 = nn.Sequential(*(Block(128, 128) for _ in range(outer)))
        for i in range(1, 4):
            setattr(self, f"fuse{i}", pair(128, 25))
        self.conv2 = nn.Conv2d(3, 32, 3, 1, 1, bias=False)
        self.GlobalGrad = pair(32, 32)
        self.norm3, self.relu, self.conv3 = nn.InstanceNorm2d(32, affine=True), nn.ReLU(True), nn.Conv2d(32, 3, 3, 1, 1, bias=False)

    def forward(self, y: Tensor, second: Tensor, third: Tensor) -> Tensor:
        """The authors' argument order: y, then the frame read by conv1_S1, then the one by
        conv1_S2, whose reshuffle is the fusion's residual; returns the correction only."""
        groups = (self.LocalGrad1, self.LocalGrad2, self.LocalGrad3)
        fuses = (self.fuse1, self.fuse2, self.fuse3)
        shuffled = []
        for yc, sc, tc in zip(planes(y), planes(second), planes(third)):
            yc, sc, tc = reshuffle(yc, 5), reshuffle(sc, 5), reshuffle(tc, 5)
            features = torch.cat((self.conv1_B(yc), self.conv1_S1(sc), self.conv1_S2(tc)), 1)
            shuffled.append(self._refine(features, tc, groups, fuses))
        return self._rgb(shuffled)


class Pair35(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.generateFrame3, self.generateFrame5 = Frame(4), Frame(4)


class Pair26(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.generateFrame2_6 = Frame(2)


class Pair17(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.generateFrame1_7 = Frame(2)


def networks() -> dict[str, nn.Module]:
    """The four networks in eval mode, keyed as ``b2v_rnn.models.jin2018.NETWORKS``."""
    return {name: net.eval() for name, net in
            zip(("center", "frames35", "frames26", "frames17"), (Center(), Pair35(), Pair26(), Pair17()))}


def load(nets: dict[str, nn.Module], state: dict[str, Tensor]) -> None:
    """A :class:`b2v_rnn.models.jin2018.Jin2018` state dict into ``nets``, strictly."""
    for name, net in nets.items():
        net.load_state_dict({k[len(name) + 1:]: v for k, v in state.items() if k.startswith(name + ".")})


def extract(nets: dict[str, nn.Module], y: Tensor) -> Tensor:
    """The authors' demo order: frame 4, then (3, 5), (2, 6), (1, 7); (B, 7, 3, H, W), unclamped."""
    with torch.no_grad():
        x4 = nets["center"](y)
        p35 = nets["frames35"]
        x3 = p35.generateFrame3(y, x4, x4) + x4
        x5 = p35.generateFrame5(y, x3, x4) + x4
        g = nets["frames26"].generateFrame2_6
        x2, x6 = g(y, x4, x3) + x3, g(y, x4, x5) + x5
        g = nets["frames17"].generateFrame1_7
        x1, x7 = g(y, x3, x2) + x2, g(y, x5, x6) + x6
    return torch.stack((x1, x2, x3, x4, x5, x6, x7), 1)
