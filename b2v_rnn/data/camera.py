"""What a camera adds to the image it records: sensor noise, then JPEG.

A rendered blurry image is the exact mean of its frames; a photograph is not. Its sensor
counts photons (shot noise, whose variance grows with the light) and adds read noise, both in
linear light, before the camera response g encodes it and JPEG compresses it. `observe` does
the same to a rendered image, so a family can be judged (and trained) on inputs that look like
a camera's rather than like a renderer's. The sharp frames, the targets, stay clean.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

PHOTONS = (2_000.0, 20_000.0)
"""Photons a pixel collects at full scale (the shot noise's level): at mid grey they give an
RMS noise of about 2.8 to 0.9 grey levels after g."""

READ_NOISE = (0.0, 0.002)
"""Std of the read noise in linear light (0 to about 1 grey level in the shadows)."""

JPEG_QUALITY = (75, 95)
"""The JPEG quality range, low to high (PIL's scale; phones save at 85-95)."""


def observe(image: np.ndarray, rng: np.random.Generator, gamma: float) -> np.ndarray:
    """uint8 (H, W, 3) -> uint8 (H, W, 3): ``image`` as a camera would record it, :func:`sensor`
    then :func:`jpeg` at a quality drawn from `JPEG_QUALITY`. Each level is drawn from ``rng``
    per image, so a scene is a pure function of its generator."""
    recorded = sensor(image, rng, gamma)
    return jpeg(recorded, int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1)))


def sensor(image: np.ndarray, rng: np.random.Generator, gamma: float) -> np.ndarray:
    """Shot noise (`PHOTONS`) and read noise (`READ_NOISE`) added in linear light, then the
    camera response g = x ** (1/gamma) and 8 bits; uint8 (H, W, 3) -> uint8 (H, W, 3)."""
    _check(image)
    photons = rng.uniform(*PHOTONS)
    linear = (image.astype(np.float64) / 255.0) ** gamma
    linear = rng.poisson(linear * photons) / photons + rng.normal(0.0, rng.uniform(*READ_NOISE), image.shape)
    return np.rint(np.clip(linear, 0.0, 1.0) ** (1.0 / gamma) * 255.0).astype(np.uint8)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """``image`` encoded as a JPEG at ``quality`` (PIL's, with its default 4:2:0 chroma
    subsampling, as phones save) and decoded again."""
    _check(image)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB"), dtype=np.uint8).copy()


def _check(image: np.ndarray) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"camera: expected uint8 (H, W, 3), got {image.dtype} {image.shape}")
