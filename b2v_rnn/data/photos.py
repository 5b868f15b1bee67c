"""Photographs from a folder as textures for synthetic scenes (JPEG, PNG, WebP).

The embedded scikit-image photographs (`textures.TRAIN_PHOTOS`) are few: a model trained
on them alone memorises them. `PhotoFolder` draws textures from any folder of
photographs instead (DIV2K, Flickr2K, a user's own), found recursively and taken in sorted
order, so a scene stays a pure function of its seed and of the folder's contents.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from ..errors import UserError

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")

MAX_SIDE = 768
"""Photographs are decoded once and shrunk so their longer side is at most this many
pixels: a texture is a 30-100 % crop resized to about 1.5 times the scene size, so more
resolution only costs memory and decoding time."""


@functools.lru_cache(maxsize=512)
def _decoded(path: Path) -> torch.Tensor:
    """The photograph at `path` as float32 (3, H, W) in [0,1], longer side <= MAX_SIDE."""
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            scale = MAX_SIDE / max(img.size)
            if scale < 1:
                img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                                 Image.BICUBIC)
            pixels = np.asarray(img, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as e:
        raise UserError(f"{path}: cannot be read as a photograph ({e})") from None
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1).float().div_(255.0)


class PhotoFolder:
    """The photographs under `folder` (recursively), in sorted order.

    Raises UserError when the folder is missing, not a folder, or holds no photograph.
    Files are decoded on first use; a damaged one is named when it is drawn.
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        if not self.folder.exists():
            raise UserError(f"photo folder {self.folder} does not exist")
        if not self.folder.is_dir():
            raise UserError(f"photo folder {self.folder} is not a folder")
        self.files = tuple(sorted(p for p in self.folder.rglob("*")
                                  if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file()))
        if not self.files:
            raise UserError(f"photo folder {self.folder} holds no photograph "
                            f"({', '.join(PHOTO_SUFFIXES)}, searched recursively)")

    def __len__(self) -> int:
        return len(self.files)

    def __repr__(self) -> str:
        return f"PhotoFolder({str(self.folder)!r}, {len(self)} photographs)"

    def crop(self, rng: np.random.Generator, size: int) -> torch.Tensor:
        """A random square crop (30-100 % of the short side) of one photograph, resized to
        (3, size, size)."""
        img = _decoded(self.files[rng.integers(len(self.files))])
        H, W = img.shape[1:]
        side = max(1, int(min(H, W) * rng.uniform(0.3, 1.0)))
        top, left = rng.integers(H - side + 1), rng.integers(W - side + 1)
        patch = img[None, :, top:top + side, left:left + side]
        return F.interpolate(patch, size=(size, size), mode="bilinear", align_corners=False,
                             antialias=side > size)[0].clamp(0, 1)
