"""Training augmentation (paper Sec. 7), applied identically to y and every frame.

Every random draw comes from the `torch.Generator` passed in, which the dataset seeds
from (seed, epoch, index): a sample is the same whichever worker or process loads it.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import UserError


@dataclass(frozen=True)
class Augment:
    """Which augmentations run. Each can be switched off on its own.

    crop: random crop position (off: centre crop). channel_shuffle: one random RGB
    permutation for y and all frames. rotate: multiples of 90° (only 0°/180° when the
    crop is not square, so batch shapes stay fixed). flip: horizontal flip (with rotate,
    all 8 symmetries of the square). noise_std: Gaussian noise std added to y only
    (0.01 = the paper's 1%; 0 = off). noise_share: the share of samples that get it (1 = every
    one, as the paper; below 1 the rest keep a clean y, so the networks also see inputs on which
    "change nothing" is right where nothing is blurred).
    """

    crop: bool = True
    channel_shuffle: bool = True
    rotate: bool = True
    flip: bool = True
    noise_std: float = 0.01
    noise_share: float = 1.0

    def __post_init__(self):
        if not self.noise_std >= 0:
            raise UserError(f"noise_std must be >= 0, got {self.noise_std!r}")
        if not 0 <= self.noise_share <= 1:
            raise UserError(f"noise_share must be between 0 and 1, got {self.noise_share!r}")

    @property
    def noisy(self) -> bool:
        """Whether any sample gets noise."""
        return self.noise_std > 0 and self.noise_share > 0


NO_AUGMENT = Augment(crop=False, channel_shuffle=False, rotate=False, flip=False, noise_std=0.0)


def crop_origin(H: int, W: int, h: int, w: int, random: bool, gen: torch.Generator) -> tuple[int, int]:
    """Top-left corner of an h x w crop inside H x W: random, or centred."""
    if not random:
        return (H - h) // 2, (W - w) // 2
    top = int(torch.randint(H - h + 1, (1,), generator=gen))
    left = int(torch.randint(W - w + 1, (1,), generator=gen))
    return top, left


def apply(blurry: torch.Tensor, sharp: torch.Tensor, aug: Augment,
          gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment one sample (the crop is done earlier, on the file read).

    blurry: float (3, h, w) in [0,1]; sharp: float (T, 3, h, w) in [0,1].
    Returns tensors of the same shapes (h, w swapped by a 90° turn only if h == w).
    """
    if aug.channel_shuffle:
        perm = torch.randperm(3, generator=gen)
        blurry, sharp = blurry[perm], sharp[:, perm]
    if aug.rotate:
        square = blurry.shape[-1] == blurry.shape[-2]
        k = int(torch.randint(4, (1,), generator=gen)) if square else 2 * int(torch.randint(2, (1,), generator=gen))
        if k:
            blurry, sharp = torch.rot90(blurry, k, (-2, -1)), torch.rot90(sharp, k, (-2, -1))
    if aug.flip and bool(torch.randint(2, (1,), generator=gen)):
        blurry, sharp = blurry.flip(-1), sharp.flip(-1)
    return add_noise(blurry, aug, gen).contiguous(), sharp.contiguous()


def add_noise(blurry: torch.Tensor, aug: Augment, gen: torch.Generator) -> torch.Tensor:
    """y (3, h, w) or a batch of them (B, 3, h, w) with `aug`'s Gaussian noise on a share
    `aug.noise_share` of its samples, clamped to [0, 1]; y itself when `aug` adds none. The
    single-sample and the resident-batch paths both add it here."""
    if not aug.noisy:
        return blurry
    samples = blurry if blurry.dim() == 4 else blurry[None]
    noise = torch.randn(samples.shape, generator=gen, device=samples.device) * aug.noise_std
    if aug.noise_share < 1:  # a share of 1 draws nothing more: such runs keep their random stream
        chosen = torch.rand(samples.shape[0], generator=gen, device=samples.device) < aug.noise_share
        noise *= chosen.view(-1, 1, 1, 1)
    return (samples + noise).clamp_(0.0, 1.0).view_as(blurry)
