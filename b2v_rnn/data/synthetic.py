"""Procedural high-frame-rate scenes rendered as b2v samples (docs/design.md §5.3, paper eq. 2).

A scene is a textured background seen by a moving camera (translation with acceleration,
small rotation and zoom) and 1-4 textured foreground shapes with soft edges, each with
its own translation, acceleration and rotation, composited back to front so they occlude
one another. The exposure is split into T sharp frames, each the average of `subframes`
instants, so every sharp frame carries its own small blur and the blurry image (their
mean) the whole motion. All instants of a sample are rendered at once: one
`grid_sample` per layer over a (T*subframes*S, S) grid of affine-mapped coordinates.

Motion magnitudes are given in pixels over the whole exposure at a 320-pixel image (the
paper's crop size) and scale linearly with the image size.

`BROAD` (the default training data) moves little: at 96 px the camera moves ~0.4 px per
frame, objects ~0.7. `REAL_MOTION` spans real blur instead, 1 to 6+ px per
frame at 96 px, with most backgrounds real photographs under camera motion; `scale_motion`
builds the intermediate stages of a curriculum between the two.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError, check_T
from .h5format import H5Writer
from .photos import PhotoFolder
from .textures import HELD_OUT_FAMILIES, TRAIN_FAMILIES
from .textures import texture as _embedded_texture

REFERENCE_SIZE = 320
"""Image size at which the motion magnitudes of `SceneSettings` are expressed."""

SHAPES = ("ellipse", "box", "star")


@dataclass(frozen=True)
class SceneSettings:
    """Distribution of scenes. Ranges are (low, high), sampled uniformly per sample.

    textures: texture families for background and objects (see `textures.texture`).
    objects: number of foreground objects. object_size: radius as a fraction of the size.
    camera_speed, object_speed: displacement over the exposure, pixels at 320 px.
    acceleration: up to this fraction of the speed is added or removed along a random
        direction over the exposure (curved, speeding-up or slowing paths).
    camera_rotation, object_rotation: largest rotation over the exposure, radians.
    camera_zoom: largest relative zoom change over the exposure.
    edge_softness: width of the objects' anti-aliased edges, pixels.
    subframes: instants averaged into one sharp frame (paper eq. 2).
    photo_background: share of scenes whose background is a photograph (the "photo"
        family, or "photo_heldout" when `textures` holds no "photo"), whatever `textures`
        says: camera motion over real images. 0 leaves the draw to `textures` alone.
    photos: a folder of photographs (`photos.PhotoFolder`) that the "photo" family draws
        from instead of the embedded scikit-image ones; "" keeps the embedded ones.
    """

    textures: tuple[str, ...] = TRAIN_FAMILIES
    objects: tuple[int, int] = (1, 4)
    object_size: tuple[float, float] = (0.12, 0.3)
    camera_speed: tuple[float, float] = (0.0, 20.0)
    object_speed: tuple[float, float] = (4.0, 30.0)
    acceleration: float = 0.5
    camera_rotation: float = 0.03
    object_rotation: float = 0.5
    camera_zoom: float = 0.03
    edge_softness: float = 1.0
    subframes: int = 6
    photo_background: float = 0.0
    photos: str = ""

    def __post_init__(self):
        if not self.textures:
            raise UserError("textures must name at least one texture family")
        for fam in self.textures:
            if fam not in TRAIN_FAMILIES + HELD_OUT_FAMILIES:
                raise UserError(f"unknown texture family {fam!r}, expected one of "
                                 f"{TRAIN_FAMILIES + HELD_OUT_FAMILIES}")
        lo, hi = self.objects
        if not 0 <= lo <= hi:
            raise UserError(f"objects range must satisfy 0 <= low <= high, got {self.objects}")
        for name in ("object_size", "camera_speed", "object_speed"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise UserError(f"{name} range must satisfy 0 <= low <= high, got {(lo, hi)}")
        for name in ("object_rotation", "acceleration", "camera_rotation", "camera_zoom"):
            if not 0 <= getattr(self, name) < math.inf:  # NaN fails too
                raise UserError(f"{name} must be a finite number >= 0, got {getattr(self, name)}")
        if self.subframes < 1:
            raise UserError(f"subframes must be >= 1, got {self.subframes}")
        if not 0.0 <= self.photo_background <= 1.0:
            raise UserError(f"photo_background must be a share in [0, 1], got {self.photo_background}")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))


BROAD = SceneSettings()
"""Training/validation distribution: all training texture families, 1-4 objects, blur of
a few to ~30 px at 320 px."""

HELD_OUT = SceneSettings(textures=HELD_OUT_FAMILIES, objects=(2, 4), camera_speed=(5.0, 25.0),
                         object_speed=(10.0, 36.0), object_rotation=0.7)
"""Test distribution: textures never used in training and somewhat faster motion."""

REAL_MOTION = SceneSettings(objects=(1, 3), camera_speed=(25.0, 140.0), object_speed=(25.0, 140.0),
                            acceleration=0.3, photo_background=0.7)
"""Training distribution at the motion of real blur: 7.5-42 px over the exposure at 96 px
(1 to 6 px per frame at T=7), 70 % of backgrounds photographs under camera motion, 1-3
objects."""

REAL_MOTION_HELD_OUT = dataclasses.replace(REAL_MOTION, textures=HELD_OUT_FAMILIES, objects=(1, 3))
"""`REAL_MOTION` with the held-out texture families (photographs never used in training)."""


def scale_motion(settings: SceneSettings, factor: float) -> SceneSettings:
    """`settings` with camera and object speeds multiplied by `factor` (a curriculum stage:
    e.g. 0.25, 0.5, 1 of `REAL_MOTION`)."""
    if not factor >= 0:
        raise UserError(f"motion factor must be >= 0, got {factor}")
    return dataclasses.replace(
        settings,
        camera_speed=tuple(factor * v for v in settings.camera_speed),
        object_speed=tuple(factor * v for v in settings.object_speed),
    )


@functools.lru_cache(maxsize=8)
def _photo_folder(folder: str) -> PhotoFolder:
    return PhotoFolder(folder)


def _texture(rng: np.random.Generator, family: str, size: int, settings: SceneSettings) -> torch.Tensor:
    """`textures.texture`, with the "photo" family drawn from `settings.photos` when set."""
    if family == "photo" and settings.photos:
        return _photo_folder(settings.photos).crop(rng, size)
    return _embedded_texture(rng, family, size)


def _trajectory(rng: np.random.Generator, t: torch.Tensor, speed: float, acceleration: float) -> torch.Tensor:
    """Displacement (n, 2) at times t (n,) in [-1/2, 1/2] of the exposure: v t + a t²/2,
    |v| = speed, |a| <= acceleration * speed along a random direction."""
    angle, acc_angle = rng.uniform(0, 2 * np.pi, 2)
    v = speed * np.array([np.cos(angle), np.sin(angle)])
    a = speed * rng.uniform(0, acceleration) * np.array([np.cos(acc_angle), np.sin(acc_angle)])
    v, a = torch.tensor(v, dtype=torch.float32), torch.tensor(a, dtype=torch.float32)
    return t[:, None] * v + 0.5 * (t ** 2)[:, None] * a


def _rotate(x: torch.Tensor, y: torch.Tensor, angle: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate points (x, y) by `angle` (broadcastable)."""
    c, s = torch.cos(angle), torch.sin(angle)
    return c * x - s * y, s * x + c * y


def _sample(tex: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Bilinear lookup of tex (3, h, w) at pixel coordinates u, v (n, S, S) -> (n, 3, S, S),
    mirrored outside the texture."""
    h, w = tex.shape[1:]
    n, S = u.shape[0], u.shape[-1]
    grid = torch.stack(((u + 0.5) * (2.0 / w) - 1.0, (v + 0.5) * (2.0 / h) - 1.0), dim=-1)
    out = F.grid_sample(tex[None], grid.reshape(1, n * S, S, 2), mode="bilinear",
                        padding_mode="reflection", align_corners=False)
    return out[0].reshape(3, n, S, S).transpose(0, 1)


def _shape_distance(kind: str, x: torch.Tensor, y: torch.Tensor, a: float, b: float,
                    points: int) -> torch.Tensor:
    """Approximate signed distance to a unit-size shape (negative inside), in shape units."""
    if kind == "ellipse":
        return (torch.sqrt((x / a) ** 2 + (y / b) ** 2) - 1.0) * min(a, b)
    if kind == "box":
        dx, dy = x.abs() - a, y.abs() - b
        outside = torch.sqrt(dx.clamp_min(0) ** 2 + dy.clamp_min(0) ** 2)
        return outside + torch.maximum(dx, dy).clamp_max(0)
    radius = torch.sqrt(x ** 2 + y ** 2)
    boundary = a - (a - b * a) * (0.5 + 0.5 * torch.cos(points * torch.atan2(y, x)))
    return (radius - boundary) * 0.7


def render_sequence(rng: np.random.Generator, T: int, size: int,
                    settings: SceneSettings = BROAD) -> np.ndarray:
    """Render one sample: uint8 (T, size, size, 3) sharp frames, each the mean of
    `settings.subframes` instants, all from `rng`."""
    T = check_T(T)
    S, K, scale = size, settings.subframes, size / REFERENCE_SIZE
    n = T * K
    t = (torch.arange(n, dtype=torch.float32) + 0.5) / n - 0.5
    coord = torch.arange(S, dtype=torch.float32) - (S - 1) / 2
    py, px = coord[None, :, None], coord[None, None, :]  # (1, S, 1), (1, 1, S)
    tt = t[:, None, None]
    fam = settings.textures

    # Background: the camera translates, turns and zooms over a texture 1.5x the frame.
    tex_size = int(round(1.5 * S))
    if settings.photo_background and rng.random() < settings.photo_background:
        bg = _texture(rng, "photo" if "photo" in fam else "photo_heldout", tex_size, settings)
    else:
        bg = _texture(rng, fam[rng.integers(len(fam))], tex_size, settings)
    shift = _trajectory(rng, t, scale * rng.uniform(*settings.camera_speed), settings.acceleration)
    turn = rng.uniform(-1, 1) * settings.camera_rotation * tt
    zoom = 1.0 + rng.uniform(-1, 1) * settings.camera_zoom * tt
    u, v = _rotate(px * zoom, py * zoom, turn)
    frames = _sample(bg, u + shift[:, None, None, 0] + tex_size / 2, v + shift[:, None, None, 1] + tex_size / 2)

    # Foreground objects, back to front: moving, accelerating, rotating, soft-edged.
    for _ in range(int(rng.integers(settings.objects[0], settings.objects[1] + 1))):
        radius = S * rng.uniform(*settings.object_size)
        centre = torch.tensor(rng.uniform(-0.4, 0.4, 2) * S, dtype=torch.float32)
        path = centre + _trajectory(rng, t, scale * rng.uniform(*settings.object_speed),
                                     settings.acceleration)
        angle = rng.uniform(0, 2 * np.pi) + rng.uniform(-1, 1) * settings.object_rotation * tt
        lx, ly = _rotate(px - path[:, None, None, 0], py - path[:, None, None, 1], -angle)
        kind = SHAPES[rng.integers(len(SHAPES))]
        a, b = rng.uniform(0.6, 1.0, 2)
        dist = _shape_distance(kind, lx / radius, ly / radius, a, b, int(rng.integers(3, 7))) * radius
        alpha = (0.5 - dist / settings.edge_softness).clamp(0, 1)[:, None]
        obj_tex_size = int(2 * radius) + 4
        obj = _sample(_texture(rng, fam[rng.integers(len(fam))], obj_tex_size, settings),
                      lx + obj_tex_size / 2, ly + obj_tex_size / 2)
        frames = frames + alpha * (obj - frames)

    sharp = frames.reshape(T, K, 3, S, S).mean(dim=1).clamp(0, 1)
    return np.rint(sharp.permute(0, 2, 3, 1).numpy() * 255.0).astype(np.uint8)



def generate(path: str | os.PathLike, n: int, T: int = 7, size: int = 96, seed: int = 0,
             settings: SceneSettings = BROAD, overwrite: bool = False, progress: bool = True) -> None:
    """Write `n` synthetic samples of T frames at size x size to a b2v file (atomically).

    Sample i is rendered from a generator seeded by (seed, i): the first k samples of a
    file are the same whatever `n` is, and the file is a pure function of the arguments.
    """
    if n < 1:
        raise UserError(f"n must be >= 1 sample, got {n}")
    if size < 16:
        raise UserError(f"size must be >= 16 pixels, got {size}")
    if seed < 0:
        raise UserError(f"seed must be >= 0, got {seed}")
    extra = {"seed": seed, "settings": settings.to_json()}
    with H5Writer(path, T, source="synthetic", extra_attrs=extra, total=n,
                  overwrite=overwrite, progress=progress) as writer:
        for i in range(n):
            writer.append(render_sequence(np.random.default_rng([seed, i]), T, size, settings))
