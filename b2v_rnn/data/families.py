"""Named scene families for training and for judging a model beyond its own generator.

`synthetic.BROAD` draws every scene from one distribution: always blurred, the camera
always moving, eight photographs. A model trained on it learns "sharpen everything, move
everything" and harms sharp photos and still backgrounds. The families here each stand for
one situation a real photograph is in:

- ``sharp``: nothing moves; every frame equals the input (the identity must be learned);
- ``still``: a still camera, 1-3 objects moving 0.5-3 px per frame (the most common photo);
- ``shake``: a hand-held camera, a random-walk path with rotation (in the spirit of
  Boracchi & Foi, "Modeling the performance of image restoration from motion blur", 2012);
- ``pan``: the camera sweeps in a line; ``zoom``: the camera zooms; ``mixed``: camera and
  objects move at once;
- ``tremor`` (held out from training): the camera follows a sum of sinusoids, a trajectory
  model no training family uses;
- ``noisy`` (held out from training): the ``still`` family recorded by a camera, with shot and
  read noise and JPEG on the blurry image (`b2v_rnn.data.camera`), the frames clean.

Blur extents are pixels over the exposure *at the rendered size*, drawn heavy-tailed (most
scenes blur a little, few a lot) up to `MAX_BLUR`. Backgrounds are mostly photographs, with
smooth gradients and out-of-focus (bokeh) content, which the old generator never drew and
whose soft edges a model must not sharpen into stripes. Instants are averaged in linear
light and the camera response g (a 2.2 gamma) applied after (paper eq. 1), so the blurry
image is written with ``gamma=2.2``. `render_scene` also returns the exact still mask: the
pixels whose value is the same at every instant.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError, check_T
from .blur import average_frames
from .camera import observe
from .h5format import H5Writer
from .photos import PhotoFolder
from .synthetic import SHAPES, _rotate, _sample, _shape_distance, _trajectory
from .textures import HELD_OUT_PHOTOS, TRAIN_PHOTOS, noise, photo, stripes

MAX_BLUR = 40.0
"""Longest blur path, pixels over the exposure at the rendered size."""

GAMMA = 2.2
"""The camera response g: frames are averaged in linear light, then g^-1 is applied."""

CAMERAS = ("none", "pan", "shake", "zoom", "affine", "tremor")


@dataclass(frozen=True)
class Family:
    """One kind of scene. Extents are (low, high) pixels over the exposure at the rendered
    size, drawn as low + (high - low) * u**2 (heavy-tailed towards small blur).

    camera: one of CAMERAS. camera_blur: path length of the camera. zoom: largest relative
    zoom change over the exposure (the ``zoom`` camera). objects: how many foreground
    objects. object_blur: path length of each object (0: the object stands still).
    photo_share: share of backgrounds that are photographs; the rest are smooth, bokeh or
    procedural textures. sensor_and_jpeg: the blurry image is recorded as a camera would
    (`b2v_rnn.data.camera.observe`: shot and read noise, then JPEG); the frames stay clean.
    """

    name: str
    camera: str = "none"
    camera_blur: tuple[float, float] = (0.0, 0.0)
    zoom: tuple[float, float] = (0.0, 0.0)
    objects: tuple[int, int] = (0, 0)
    object_blur: tuple[float, float] = (0.0, 0.0)
    photo_share: float = 0.7
    sensor_and_jpeg: bool = False

    def __post_init__(self):
        if self.camera not in CAMERAS:
            raise UserError(f"family {self.name!r}: camera must be one of {CAMERAS}, got {self.camera!r}")
        for field in ("camera_blur", "object_blur", "zoom"):
            lo, hi = getattr(self, field)
            if not 0 <= lo <= hi:
                raise UserError(f"family {self.name!r}: {field} must satisfy 0 <= low <= high, got {(lo, hi)}")
        if not 0 <= self.objects[0] <= self.objects[1]:
            raise UserError(f"family {self.name!r}: objects must satisfy 0 <= low <= high, got {self.objects}")

    @property
    def moves_camera(self) -> bool:
        return self.camera != "none" and (self.camera_blur[1] > 0 or self.zoom[1] > 0)


FAMILIES = {f.name: f for f in (
    Family("sharp", objects=(0, 3)),
    Family("still", objects=(1, 3), object_blur=(3.0, 21.0)),
    Family("shake", camera="shake", camera_blur=(3.0, MAX_BLUR), objects=(0, 1), object_blur=(0.0, 12.0)),
    Family("pan", camera="pan", camera_blur=(2.0, MAX_BLUR), objects=(0, 1), object_blur=(0.0, 12.0)),
    Family("zoom", camera="zoom", camera_blur=(0.0, 4.0), zoom=(0.02, 0.25), objects=(0, 1)),
    Family("mixed", camera="affine", camera_blur=(0.0, 30.0), objects=(1, 3), object_blur=(2.0, MAX_BLUR)),
    Family("tremor", camera="tremor", camera_blur=(3.0, MAX_BLUR), objects=(0, 1), object_blur=(0.0, 12.0)),
    Family("noisy", objects=(1, 3), object_blur=(3.0, 21.0), sensor_and_jpeg=True),
)}
"""Every family by name. ``tremor`` and ``noisy`` (the ``still`` family seen through a camera's
sensor noise and JPEG) are never trained on (see `TRAINING_MIX`)."""

TRAINING_MIX = {"sharp": 0.15, "still": 0.25, "shake": 0.2, "pan": 0.15, "zoom": 0.1, "mixed": 0.15}
"""Shares of the families in training data."""

SUITE_FAMILIES = ("sharp", "still", "tremor", "pan", "zoom", "mixed", "noisy")
"""The families of the evaluation suite: the camera-shake situation is judged on ``tremor``,
a trajectory model training never sees, and a camera's noise and JPEG on ``noisy``."""


def parse_mix(text: str) -> dict[str, float]:
    """"sharp=0.2,still=0.3,..." -> {name: share}, shares normalised to sum 1."""
    mix = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, share = part.partition("=")
        if name not in FAMILIES:
            raise UserError(f"--mix: unknown family {name!r}, expected one of {sorted(FAMILIES)}")
        try:
            value = float(share)
        except ValueError:
            raise UserError(f"--mix: share of {name!r} must be a number, got {share!r}") from None
        if not (np.isfinite(value) and value >= 0):
            raise UserError(f"--mix: share of {name!r} must be >= 0, got {share!r}")
        mix[name] = value
    total = sum(mix.values())
    if not total > 0:
        raise UserError(f"--mix {text!r}: give at least one family a positive share")
    return {name: share / total for name, share in mix.items()}


class PhotoSource:
    """Where photographs come from: a `PhotoFolder`, or the embedded scikit-image photos."""

    def __init__(self, folder: PhotoFolder | None = None, embedded: tuple[str, ...] = TRAIN_PHOTOS):
        self.folder, self.embedded = folder, embedded

    def crop(self, rng: np.random.Generator, size: int) -> torch.Tensor:
        if self.folder is not None:
            return self.folder.crop(rng, size)
        return photo(rng, size, self.embedded)

    def describe(self) -> str:
        return str(self.folder.folder) if self.folder is not None else f"embedded:{','.join(self.embedded)}"


EMBEDDED_TRAIN = PhotoSource(None, TRAIN_PHOTOS)
EMBEDDED_HELD_OUT = PhotoSource(None, HELD_OUT_PHOTOS)


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (3, s, s), borders replicated (reflection needs s > radius)."""
    radius = max(1, int(3 * sigma))
    k = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float32) / sigma) ** 2)
    k = (k / k.sum()).to(x.dtype)
    x = F.pad(x[None], (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(3, 1, 1, -1), groups=3)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(3, 1, -1, 1), groups=3)[0]


def smooth(rng: np.random.Generator, size: int) -> torch.Tensor:
    """Soft content: a colour gradient plus one or two broad sinusoids (no edges at all)."""
    c = torch.linspace(-1, 1, size)
    y, x = torch.meshgrid(c, c, indexing="ij")
    out = torch.from_numpy(rng.uniform(0.1, 0.9, (3, 1, 1)).astype(np.float32)).expand(3, size, size).clone()
    for _ in range(int(rng.integers(1, 3))):
        angle, cycles = rng.uniform(0, np.pi), rng.uniform(0.3, 3.0)
        wave = torch.sin((np.cos(angle) * x + np.sin(angle) * y) * np.pi * cycles + rng.uniform(0, 2 * np.pi))
        out = out + torch.from_numpy(rng.uniform(-0.25, 0.25, (3, 1, 1)).astype(np.float32)) * wave
    return out.clamp(0, 1)


def bokeh(rng: np.random.Generator, size: int, photos: PhotoSource) -> torch.Tensor:
    """Out-of-focus content: a photograph defocused by 2-8 px, with soft bright disks."""
    out = _blur(photos.crop(rng, size), rng.uniform(2.0, 8.0))
    c = torch.arange(size, dtype=torch.float32)
    y, x = torch.meshgrid(c, c, indexing="ij")
    for _ in range(int(rng.integers(0, 8))):
        cx, cy, r = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(2, max(3, size / 10))
        alpha = 0.6 * ((r - torch.sqrt((x - cx) ** 2 + (y - cy) ** 2)) / 3).clamp(0, 1)
        out = out + alpha * (torch.from_numpy(rng.uniform(0.6, 1.0, (3, 1, 1)).astype(np.float32)) - out)
    return out.clamp(0, 1)


def background(rng: np.random.Generator, size: int, family: Family, photos: PhotoSource) -> torch.Tensor:
    """A background texture (3, size, size): a photograph at `family.photo_share`, else smooth,
    bokeh or procedural content."""
    if rng.random() < family.photo_share:
        return photos.crop(rng, size)
    kind = rng.integers(4)
    if kind == 0:
        return smooth(rng, size)
    if kind == 1:
        return bokeh(rng, size, photos)
    return noise(rng, size) if kind == 2 else stripes(rng, size)


def _heavy(rng: np.random.Generator, span: tuple[float, float]) -> float:
    lo, hi = span
    return lo + (hi - lo) * rng.random() ** 2


def _path_of_length(points: torch.Tensor, length: float) -> torch.Tensor:
    """points (n, 2) rescaled so the path's arc length is `length`, centred on its mean."""
    arc = (points[1:] - points[:-1]).norm(dim=1).sum()
    points = points - points.mean(dim=0)
    return points * (length / arc) if arc > 0 else points * 0


def _random_walk(rng: np.random.Generator, n: int) -> torch.Tensor:
    """A hand-shake path (n, 2): velocity with inertia, Gaussian jitter and rare jerks."""
    v = np.array([np.cos(a := rng.uniform(0, 2 * np.pi)), np.sin(a)])
    points = [np.zeros(2)]
    jitter, jerk = rng.uniform(0.2, 1.0), rng.uniform(0.0, 0.1)
    for _ in range(n - 1):
        kick = rng.standard_normal(2) * jitter
        if rng.random() < jerk:
            kick += rng.standard_normal(2) * 4
        v = 0.8 * v + 0.2 * kick
        points.append(points[-1] + v)
    return torch.tensor(np.array(points), dtype=torch.float32)


def _tremor(rng: np.random.Generator, t: torch.Tensor) -> torch.Tensor:
    """A tremor path (n, 2): a sum of two sinusoids per axis (never used in training)."""
    axes = []
    for _ in range(2):
        f = rng.uniform(0.3, 2.5, 2)
        phase = rng.uniform(0, 2 * np.pi, 2)
        amp = rng.uniform(0.3, 1.0, 2)
        axes.append(sum(amp[i] * torch.sin(2 * np.pi * f[i] * t + phase[i]) for i in range(2)))
    return torch.stack(axes, dim=1)


def camera_motion(rng: np.random.Generator, family: Family, t: torch.Tensor, size: int):
    """(shift (n, 2) px, turn (n,) rad, zoom (n,)) of the camera at instants t in [-1/2, 1/2]."""
    n = t.shape[0]
    still = (torch.zeros(n, 2), torch.zeros(n), torch.ones(n))
    if not family.moves_camera:
        return still
    length = _heavy(rng, family.camera_blur)
    if family.camera == "pan":
        shift = _trajectory(rng, t, length, 0.2)
        return shift, torch.zeros(n), torch.ones(n)
    if family.camera in ("shake", "tremor"):
        shift = _path_of_length(_random_walk(rng, n) if family.camera == "shake" else _tremor(rng, t), length)
        # a hand turns the camera a little as it moves: up to ~1/3 of the shift at the border
        turn = shift[:, 0] / max(size, 1) * rng.uniform(-0.7, 0.7)
        return shift, turn, torch.ones(n)
    if family.camera == "zoom":
        factor = _heavy(rng, family.zoom) * rng.choice([-1.0, 1.0])
        return _trajectory(rng, t, length, 0.2), torch.zeros(n), 1.0 + factor * t
    turn = rng.uniform(-1, 1) * 0.03 * t  # "affine": translation with acceleration, a little turn and zoom
    return _trajectory(rng, t, length, 0.5), turn, 1.0 + rng.uniform(-1, 1) * 0.03 * t


def render_scene(rng: np.random.Generator, T: int, size: int, family: Family,
                 photos: PhotoSource = EMBEDDED_TRAIN, subframes: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """One sample of `family`: uint8 sharp frames (T, size, size, 3) and the still mask, bool
    (size, size), True where the scene is the same at every instant of the exposure."""
    T = check_T(T)
    S, n = size, T * subframes
    t = (torch.arange(n, dtype=torch.float32) + 0.5) / n - 0.5
    coord = torch.arange(S, dtype=torch.float32) - (S - 1) / 2
    py, px = coord[None, :, None], coord[None, None, :]

    tex_size = int(round(1.5 * S)) + int(2 * MAX_BLUR)
    bg = background(rng, tex_size, family, photos) ** GAMMA
    shift, turn, zoom = camera_motion(rng, family, t, S)
    u, v = _rotate(px * zoom[:, None, None], py * zoom[:, None, None], turn[:, None, None])
    instants = _sample(bg, u + shift[:, None, None, 0] + tex_size / 2, v + shift[:, None, None, 1] + tex_size / 2)

    for _ in range(int(rng.integers(family.objects[0], family.objects[1] + 1))):
        radius = S * rng.uniform(0.1, 0.3)
        centre = torch.tensor(rng.uniform(-0.4, 0.4, 2) * S, dtype=torch.float32)
        blur = _heavy(rng, family.object_blur)
        path = centre + (_trajectory(rng, t, blur, 0.3) if blur > 0 else torch.zeros(n, 2))
        spin = rng.uniform(-1, 1) * min(0.5, blur / max(radius, 1)) * t[:, None, None]
        angle = rng.uniform(0, 2 * np.pi) + spin
        lx, ly = _rotate(px - path[:, None, None, 0], py - path[:, None, None, 1], -angle)
        kind = SHAPES[rng.integers(len(SHAPES))]
        a, b = rng.uniform(0.6, 1.0, 2)
        dist = _shape_distance(kind, lx / radius, ly / radius, a, b, int(rng.integers(3, 7))) * radius
        alpha = (0.5 - dist).clamp(0, 1)[:, None]
        obj_size = int(2 * radius) + 4
        tex = photos.crop(rng, obj_size) if rng.random() < 0.6 else background(rng, obj_size, family, photos)
        instants = instants + alpha * (_sample(tex ** GAMMA, lx + obj_size / 2, ly + obj_size / 2) - instants)

    still = (instants == instants[:1]).all(dim=0).all(dim=0)
    linear = instants.reshape(T, subframes, 3, S, S).mean(dim=1).clamp(0, 1)
    sharp = linear ** (1.0 / GAMMA)
    return np.rint(sharp.permute(0, 2, 3, 1).numpy() * 255.0).astype(np.uint8), still.numpy()


def blurry_image(sharp: np.ndarray, family: Family, rng: np.random.Generator) -> np.ndarray:
    """The blurry image of a scene's uint8 frames (T, H, W, 3): their mean in linear light, recorded
    by a camera (`camera.observe`) when the family says so; uint8 (H, W, 3). Families without
    a camera draw nothing from ``rng``."""
    blurry = average_frames(sharp, GAMMA)
    return observe(blurry, rng, GAMMA) if family.sensor_and_jpeg else blurry


def family_of_sample(rng: np.random.Generator, mix: Mapping[str, float]) -> Family:
    names = sorted(mix)
    return FAMILIES[names[rng.choice(len(names), p=np.array([mix[k] for k in names]) / sum(mix.values()))]]


def generate_mix(path: str | os.PathLike, n: int, T: int = 7, size: int = 96, seed: int = 0,
                 mix: Mapping[str, float] = TRAINING_MIX, photos: PhotoSource = EMBEDDED_TRAIN,
                 overwrite: bool = False, progress: bool = True) -> None:
    """Write `n` samples drawn from the families of `mix` to a b2v file (atomically).

    Sample i comes from a generator seeded by (seed, i), so the file is a pure function of
    the arguments (and of the photo folder's contents). Blurry images are averaged in linear
    light (attribute gamma=2.2); each sample's exact still mask is stored as ``still``.
    """
    if n < 1:
        raise UserError(f"n must be >= 1 sample, got {n}")
    if size < 16:
        raise UserError(f"size must be >= 16 pixels, got {size}")
    extra = {"seed": seed, "mix": json.dumps(dict(mix)), "photos": photos.describe(),
             "families": json.dumps({k: asdict(FAMILIES[k]) for k in mix})}
    with H5Writer(path, T, source="synthetic-families", gamma=GAMMA, extra_attrs=extra, total=n,
                  overwrite=overwrite, progress=progress) as writer:
        for i in range(n):
            rng = np.random.default_rng([seed, i])
            family = family_of_sample(rng, mix)
            sharp, still = render_scene(rng, T, size, family, photos)
            writer.append(sharp, still, blurry_image(sharp, family, rng) if family.sensor_and_jpeg else None)
