"""Image formation shared by every data source (paper eq. 1-2, docs/design.md §1).

A blurry image is the average of T consecutive sharp frames. The converters and the
synthetic generator all go through `average_frames` and `windows`, so the rule "blurry =
rounded mean in float" lives in exactly one place.
"""
from __future__ import annotations

import numpy as np

from ..errors import UserError, check_T

NO_GAMMA = 1.0
"""Gamma value meaning "average the stored values directly" (the paper's choice)."""


def check_gamma(gamma: float) -> float:
    """Return gamma as float if positive, else UserError."""
    if not np.isfinite(gamma) or gamma <= 0:
        raise UserError(f"gamma must be a positive number (1.0 = no linearisation), got {gamma!r}")
    return float(gamma)


def average_frames(frames: np.ndarray, gamma: float = NO_GAMMA) -> np.ndarray:
    """Blurry image from sharp frames: rounded mean along axis 0, computed in float.

    frames: uint8 (T, H, W, 3). gamma: 1.0 averages stored values (paper); e.g. 2.2 undoes
    the display gamma, averages in linear light and re-applies it.
    Returns uint8 (H, W, 3).
    """
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise UserError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    gamma = check_gamma(gamma)
    x = frames.astype(np.float64) / 255.0
    if gamma == NO_GAMMA:
        mean = x.mean(axis=0)
    else:
        mean = (x ** gamma).mean(axis=0) ** (1.0 / gamma)
    return np.rint(mean * 255.0).astype(np.uint8)


def windows(n_frames: int, T: int, stride: int) -> list[range]:
    """Start..stop index ranges of every window of T consecutive frames, `stride` apart.

    Raises ValueError when fewer than T frames exist or stride < 1.
    """
    T = check_T(T)
    if stride < 1:
        raise UserError(f"stride must be >= 1, got {stride}")
    if n_frames < T:
        raise UserError(f"{n_frames} frames are fewer than T={T}")
    return [range(s, s + T) for s in range(0, n_frames - T + 1, stride)]
