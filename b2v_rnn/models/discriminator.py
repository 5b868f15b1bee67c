"""Conditional PatchGAN discriminator for the non-middle frames (paper Sec. 5.3, L_adv; docs/design.md §2.5)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm


class PatchDiscriminator(nn.Module):
    """D(y, frame): is ``frame`` a real sharp frame of blurry image ``y``? One logit per patch.

    Input: y and frame, (B, 3, H, W) each, concatenated to 6 channels (conditioning on y lets D
    judge whether the frame is consistent with the blur, not only whether it looks sharp).
    ``num_downsamplings`` 4×4 stride-2 convs (width ``channels``, doubled each time up to
    ``max_channels``), then a 3×3 conv and a 3×3 conv to one channel: logits (B, 1, H/2ⁿ, W/2ⁿ),
    n = ``num_downsamplings``. Spectral norm on every conv and no normalisation layers, so
    D is Lipschitz-constrained and independent of the batch. Needs H, W ≥ 2ⁿ.
    """

    def __init__(self, channels: int = 64, num_downsamplings: int = 3, max_channels: int = 256) -> None:
        super().__init__()
        self.config = {
            "kind": "PatchDiscriminator",
            "channels": channels,
            "num_downsamplings": num_downsamplings,
            "max_channels": max_channels,
        }
        layers: list[nn.Module] = []
        width_in, width = 6, channels
        for _ in range(num_downsamplings):
            layers += [spectral_norm(nn.Conv2d(width_in, width, 4, 2, 1)), nn.LeakyReLU(0.2)]
            width_in, width = width, min(2 * width, max_channels)
        layers += [
            spectral_norm(nn.Conv2d(width_in, width_in, 3, 1, 1)),
            nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv2d(width_in, 1, 3, 1, 1)),
        ]
        self.net = nn.Sequential(*layers)

    def forward(self, y: Tensor, frame: Tensor) -> Tensor:
        if y.shape != frame.shape:
            raise ValueError(f"PatchDiscriminator: y and frame shapes differ: {tuple(y.shape)} vs {tuple(frame.shape)}")
        return self.net(torch.cat((y, frame), dim=1))
