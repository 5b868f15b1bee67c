"""Reading input photographs: header first (size, alpha, bit depth) without decoding, then
pixels as float (3, H, W) in [0, 1].

Every failure is one `UserError` line naming the file: a missing path, a folder, an
unreadable file, or more pixels than the caller's limit (PIL's decompression-bomb guard).
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import UserError

PIL_MAX_PIXELS = 2 * Image.MAX_IMAGE_PIXELS
"""PIL warns above MAX_IMAGE_PIXELS and refuses above twice that (~179 MP); callers' limits
make that refusal the only one, with one line instead of a warning or a traceback."""

_READ_ERRORS = (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError,
                Image.DecompressionBombWarning)


@dataclass(frozen=True)
class ImageHeader:
    """What an input image's header says, read before any work: size and what is lost."""

    path: Path
    width: int
    height: int
    alpha: bool
    deep: bool  # more than 8 bits per channel


def check_input(path: Path) -> None:
    """A missing path, a folder and an unreadable file are three different mistakes."""
    if path.is_dir():
        raise UserError(f"{path}: is a folder, not an image (pass the images inside it, e.g. {path}/*.png)")
    if not path.exists():
        raise UserError(f"{path}: no such file")


@contextmanager
def _pil_limit(max_pixels: int):
    """PIL's decompression-bomb guard set to max_pixels, its warning made an error."""
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def _open_error(path: Path, error: Exception, max_pixels: int) -> UserError:
    if isinstance(error, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return UserError(f"{path}: more pixels than --max-pixels {max_pixels} allows (PIL's guard against "
                        "decompression bombs); pass a larger --max-pixels if you trust the file")
    if isinstance(error, FileNotFoundError):
        return UserError(f"{path}: no such file")
    if isinstance(error, IsADirectoryError):
        return UserError(f"{path}: is a folder, not an image")
    return UserError(f"{path}: not a readable image ({error})")


def read_header(path: Path, max_pixels: int = PIL_MAX_PIXELS) -> ImageHeader:
    """Size, alpha and bit depth of an image file without decoding its pixels."""
    check_input(path)
    try:
        with _pil_limit(max_pixels), Image.open(path) as im:
            rawmodes = " ".join(str(tile.args) for tile in im.tile)
            deep = im.mode in ("I;16", "I;16B", "I;16L", "I", "F") or ";16" in rawmodes
            width, height = im.size
            if (im.getexif().get(0x0112) or 1) in (5, 6, 7, 8):  # EXIF orientation swaps the sides
                width, height = height, width
            return ImageHeader(path, width, height, im.has_transparency_data, deep)
    except _READ_ERRORS as e:
        raise _open_error(path, e, max_pixels) from None


def from_pil(im: Image.Image) -> torch.Tensor:
    """A PIL image -> float (3, H, W) in [0, 1]. EXIF orientation is applied; grey and palette
    images become RGB, alpha is dropped; 16-bit grey is scaled by 65535 (PIL reads 16-bit
    colour as 8 bits per channel)."""
    im = ImageOps.exif_transpose(im)
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        grey = np.asarray(im, dtype=np.float32) / 65535.0
        array = np.repeat(grey[..., None], 3, axis=-1)
    else:
        array = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(array.clip(0, 1))).permute(2, 0, 1)


def read_image(path: Path, max_pixels: int = PIL_MAX_PIXELS) -> torch.Tensor:
    """An image file -> float (3, H, W) in [0, 1] (see `from_pil`)."""
    check_input(path)
    try:
        with _pil_limit(max_pixels), Image.open(path) as im:
            return from_pil(im)
    except _READ_ERRORS as e:
        raise _open_error(path, e, max_pixels) from None


def as_tensor(image) -> torch.Tensor:
    """Any image a Python caller has -> float (3, H, W) in [0, 1]: a path, a PIL image, an
    HWC uint8 or float array (RGB, or grey HW), or a (3, H, W) float tensor (taken as is)."""
    if isinstance(image, (str, Path)):
        return read_image(Path(image))
    if isinstance(image, Image.Image):
        return from_pil(image)
    if isinstance(image, torch.Tensor):
        if image.dim() != 3 or image.shape[0] != 3 or not image.is_floating_point():
            raise ValueError(f"a tensor image must be float (3, H, W) in [0, 1], got {image.dtype} {tuple(image.shape)}")
        return image
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    if array.ndim != 3 or array.shape[-1] not in (3, 4):
        raise ValueError(f"an array image must be (H, W), (H, W, 3) or (H, W, 4), got {array.shape}")
    array = array[..., :3]
    scale = 255.0 if array.dtype == np.uint8 else (65535.0 if array.dtype == np.uint16 else 1.0)
    floats = (array.astype(np.float32) / scale).clip(0, 1)
    return torch.from_numpy(np.ascontiguousarray(floats)).permute(2, 0, 1)
