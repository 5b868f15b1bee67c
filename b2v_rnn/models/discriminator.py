"""Conditional PatchGAN discriminator for the non-middle frames (paper Sec. 5.3, L_adv; docs/design.md §2.5)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm


@dataclass(frozen=True, kw_only=True)
class DiscriminatorConfig:
    """:class:`PatchDiscriminator`'s architecture; the defaults are the "paper" preset's. ``kind``
    is fixed; it names the network in a checkpoint."""

    kind: str = field(default="PatchDiscriminator", init=False)
    channels: int = 64
    num_downsamplings: int = 3
    max_channels: int = 256


class PatchDiscriminator(nn.Module):
    """D(y, frame): is ``frame`` a real sharp frame of blurry image ``y``? One logit per patch.

    Built from a :class:`DiscriminatorConfig`, or from keyword arguments that replace its fields;
    ``architecture`` is that config and ``config`` its plain dict, which checkpoints store.

    Input: y and frame, (B, 3, H, W) each, concatenated to 6 channels (conditioning on y lets D
    judge whether the frame is consistent with the blur, not only whether it looks sharp).
    ``num_downsamplings`` 4×4 stride-2 convs (width ``channels``, doubled each time up to
    ``max_channels``), then a 3×3 conv and a 3×3 conv to one channel: logits (B, 1, H/2ⁿ, W/2ⁿ),
    n = ``num_downsamplings``. Spectral norm on every conv and no normalisation layers, so
    D is Lipschitz-constrained and independent of the batch. Needs H, W ≥ 2ⁿ.
    """

    def __init__(self, config: DiscriminatorConfig | None = None, **options: Any) -> None:
        super().__init__()
        if config is not None and not isinstance(config, DiscriminatorConfig):
            raise TypeError(f"PatchDiscriminator takes a DiscriminatorConfig and keyword arguments, got {config!r}")
        config = dataclasses.replace(DiscriminatorConfig() if config is None else config, **options)
        self.architecture = config
        layers: list[nn.Module] = []
        width_in, width = 6, config.channels
        for _ in range(config.num_downsamplings):
            layers += [spectral_norm(nn.Conv2d(width_in, width, 4, 2, 1)), nn.LeakyReLU(0.2)]
            width_in, width = width, min(2 * width, config.max_channels)
        layers += [
            spectral_norm(nn.Conv2d(width_in, width_in, 3, 1, 1)),
            nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv2d(width_in, 1, 3, 1, 1)),
        ]
        self.net = nn.Sequential(*layers)

    @property
    def config(self) -> dict[str, Any]:
        """``architecture`` as a plain dict (every field), as checkpoints store it."""
        return dataclasses.asdict(self.architecture)

    def forward(self, y: Tensor, frame: Tensor) -> Tensor:
        if y.shape != frame.shape:
            raise ValueError(f"PatchDiscriminator: y and frame shapes differ: {tuple(y.shape)} vs {tuple(frame.shape)}")
        return self.net(torch.cat((y, frame), dim=1))
