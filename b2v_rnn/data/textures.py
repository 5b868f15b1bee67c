"""Textures for synthetic scenes: scikit-image's bundled photos and procedural patterns.

Every texture is a float32 tensor (3, size, size) in [0,1], drawn from a numpy Generator
so a scene is a pure function of its seed. Families are split so a held-out test set can
use textures never seen in training (`TRAIN_FAMILIES` vs `HELD_OUT_FAMILIES`).
"""
from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError

# Photos bundled inside the scikit-image wheel (no download). Grey ones get a random tint.
TRAIN_PHOTOS = ("astronaut", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field",
                "brick", "grass", "camera")
HELD_OUT_PHOTOS = ("chelsea", "retina", "gravel", "moon", "coins", "colorwheel")

TRAIN_FAMILIES = ("photo", "noise", "stripes", "checker")
HELD_OUT_FAMILIES = ("photo_heldout", "dots")


@functools.lru_cache(maxsize=None)
def _photo(name: str) -> torch.Tensor:
    """skimage.data image `name` as float32 (3, H, W) or (1, H, W) in [0,1]."""
    import skimage.data

    img = np.asarray(getattr(skimage.data, name)())
    img = img[..., :3] if img.ndim == 3 else img[..., None]
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float() / 255.0


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """(C, h, w) -> (C, size, size), antialiased when shrinking."""
    return F.interpolate(x[None], size=(size, size), mode="bilinear", align_corners=False,
                         antialias=True)[0]


def _palette(rng: np.random.Generator, fields: torch.Tensor) -> torch.Tensor:
    """Map k scalar fields (k, s, s) in [0,1] to RGB by a random colour mix, stretched to [0,1]."""
    mix = torch.from_numpy(rng.uniform(-1, 1, (3, fields.shape[0])).astype(np.float32))
    rgb = torch.einsum("ck,khw->chw", mix, fields) + torch.from_numpy(rng.uniform(0, 1, (3, 1, 1)).astype(np.float32))
    lo, hi = rgb.amin(dim=(1, 2), keepdim=True), rgb.amax(dim=(1, 2), keepdim=True)
    # Each channel gets its own random output range so colours vary from scene to scene.
    a = torch.from_numpy(rng.uniform(0.0, 0.4, (3, 1, 1)).astype(np.float32))
    b = torch.from_numpy(rng.uniform(0.6, 1.0, (3, 1, 1)).astype(np.float32))
    return a + (b - a) * (rgb - lo) / (hi - lo).clamp_min(1e-6)


def photo(rng: np.random.Generator, size: int, names=TRAIN_PHOTOS) -> torch.Tensor:
    """A random square crop (30-100% of the short side) of one of `names`, resized to `size`."""
    img = _photo(names[rng.integers(len(names))])
    H, W = img.shape[1:]
    side = int(min(H, W) * rng.uniform(0.3, 1.0))
    top, left = rng.integers(H - side + 1), rng.integers(W - side + 1)
    crop = _resize(img[:, top:top + side, left:left + side], size)
    if crop.shape[0] == 1:
        tint = torch.from_numpy(rng.uniform(0.4, 1.0, (3, 1, 1)).astype(np.float32))
        crop = crop * tint + (1 - tint) * rng.uniform(0, 1)
    return crop.expand(3, size, size).clamp(0, 1).contiguous()


def noise(rng: np.random.Generator, size: int) -> torch.Tensor:
    """Fractal value noise: octaves of upsampled random grids, coloured by `_palette`."""
    fields = torch.zeros(3, size, size)
    cells, amp = int(rng.integers(2, 5)), 1.0
    while cells <= size // 2:
        grid = torch.from_numpy(rng.random((3, cells, cells), dtype=np.float32))
        fields += amp * F.interpolate(grid[None], size=(size, size), mode="bicubic", align_corners=False)[0]
        cells, amp = cells * 2, amp * rng.uniform(0.45, 0.75)
    return _palette(rng, fields)


def _plane(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel coordinates (x, y) of a size x size grid, each (size, size)."""
    c = torch.arange(size, dtype=torch.float32)
    return torch.meshgrid(c, c, indexing="xy")


def stripes(rng: np.random.Generator, size: int) -> torch.Tensor:
    """Sum of 1-3 sinusoidal gratings of random orientation, period and sharpness."""
    x, y = _plane(size)
    fields = []
    for _ in range(int(rng.integers(1, 4))):
        angle, period = rng.uniform(0, np.pi), rng.uniform(4, max(5, size / 3))
        phase = (np.cos(angle) * x + np.sin(angle) * y) * (2 * np.pi / period) + rng.uniform(0, 2 * np.pi)
        # tanh of a scaled sine moves between smooth waves and hard-edged bars
        fields.append(torch.tanh(rng.uniform(0.5, 6) * torch.sin(phase)))
    return _palette(rng, torch.stack(fields))


def checker(rng: np.random.Generator, size: int) -> torch.Tensor:
    """A rotated checkerboard of random period, two random colours, light noise."""
    x, y = _plane(size)
    angle, period = rng.uniform(0, np.pi / 2), rng.uniform(3, max(4, size / 4))
    u = (np.cos(angle) * x + np.sin(angle) * y) / period
    v = (-np.sin(angle) * x + np.cos(angle) * y) / period
    board = ((torch.floor(u) + torch.floor(v)) % 2)[None]
    c0, c1 = (torch.from_numpy(rng.uniform(0, 1, (3, 1, 1)).astype(np.float32)) for _ in range(2))
    out = c0 + (c1 - c0) * board + 0.03 * torch.from_numpy(rng.standard_normal((3, size, size), dtype=np.float32))
    return out.clamp(0, 1)


def dots(rng: np.random.Generator, size: int) -> torch.Tensor:
    """Soft-edged disks of random colour and radius over a flat colour (held-out family)."""
    x, y = _plane(size)
    out = torch.from_numpy(rng.uniform(0, 1, (3, 1, 1)).astype(np.float32)).expand(3, size, size).clone()
    for _ in range(int(rng.integers(20, 60))):
        cx, cy, r = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(2, max(3, size / 6))
        alpha = (r - torch.sqrt((x - cx) ** 2 + (y - cy) ** 2)).clamp(0, 1)
        colour = torch.from_numpy(rng.uniform(0, 1, (3, 1, 1)).astype(np.float32))
        out = out * (1 - alpha) + colour * alpha
    return out


def texture(rng: np.random.Generator, family: str, size: int) -> torch.Tensor:
    """One texture (3, size, size) of `family` (see TRAIN_FAMILIES, HELD_OUT_FAMILIES)."""
    if family == "photo":
        return photo(rng, size, TRAIN_PHOTOS)
    if family == "photo_heldout":
        return photo(rng, size, HELD_OUT_PHOTOS)
    makers = {"noise": noise, "stripes": stripes, "checker": checker, "dots": dots}
    if family not in makers:
        raise UserError(f"unknown texture family {family!r}, expected one of "
                         f"{TRAIN_FAMILIES + HELD_OUT_FAMILIES}")
    return makers[family](rng, size)
