"""Frame streams -> b2v file: shared by `data_tools.frames_to_hdf5` and `video_to_hdf5`.

A source is a list of scenes; each scene is an iterator of uint8 (H, W, 3) frames in
time order, with a name used in error messages. Frames are downsampled one by one,
windows of T consecutive frames (`stride` apart) are cropped at a random position and
written through `H5Writer`, which averages them (`blur.average_frames`). Only T frames
are held in memory at a time, so hour-long videos and the full GoPro set both fit.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError, check_T
from .blur import NO_GAMMA, check_gamma
from .h5format import MIN_METRIC_SIDE, H5Writer


@dataclass
class Scene:
    """One continuous clip: `name` (a path, for messages) and its frames in time order."""

    name: str
    frames: Iterable[np.ndarray]
    length: int | None = None
    files: tuple[Path, ...] = ()  # the files the frames are read from (an output must not be one)


_noted: set[str] = set()


def note_once(message: str) -> None:
    """One line on stderr, once per process for the same message (not once per frame)."""
    if message not in _noted:
        _noted.add(message)
        print(f"note: {message}", file=sys.stderr)


def to_rgb(image: np.ndarray, name: str, scene: str | None = None) -> np.ndarray:
    """Loaded image -> uint8 (H, W, 3): grey replicated, alpha dropped (said once per
    `scene`); other types refused."""
    if image.dtype != np.uint8:
        raise UserError(f"{name}: {image.dtype} pixels, expected 8-bit images")
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] not in (3, 4):
        raise UserError(f"{name}: image of shape {image.shape}, expected (H, W), (H, W, 3) or (H, W, 4)")
    if image.shape[-1] == 4:
        note_once(f"{scene or name}: images with an alpha channel; the alpha (transparency) is dropped")
    return np.ascontiguousarray(image[..., :3])


def downsample(frame: np.ndarray, scale: float) -> np.ndarray:
    """uint8 (H, W, 3) resized by `scale` (antialiased bilinear), rounded back to uint8."""
    if scale == 1.0:
        return frame
    H, W = frame.shape[:2]
    size = (max(1, round(H * scale)), max(1, round(W * scale)))
    x = torch.from_numpy(frame).permute(2, 0, 1)[None].float()
    y = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    return y[0].permute(1, 2, 0).round_().clamp_(0, 255).to(torch.uint8).numpy()


def frame_windows(frames: Iterable[np.ndarray], T: int, stride: int) -> Iterator[np.ndarray]:
    """uint8 (T, H, W, 3) windows of T consecutive frames, starting every `stride` frames."""
    buffer: collections.deque = collections.deque(maxlen=T)
    for i, frame in enumerate(frames):
        buffer.append(frame)
        start = i - T + 1
        if start >= 0 and start % stride == 0:
            yield np.stack(buffer)


def write_scenes(out: str | os.PathLike, scenes: list[Scene], T: int, stride: int = 1,
                 crop: int | None = None, scale: float = 1.0, gamma: float = NO_GAMMA,
                 seed: int = 0, source: str = "", overwrite: bool = False,
                 progress: bool = True) -> int:
    """Write every window of every scene to `out`; return the number of samples.

    crop: side of a random square crop per window (None = full frames, which must then
    all have the same size). scale: downsampling factor (the paper uses 0.45).
    Raises ValueError naming the scene and the value for too-short scenes, mixed frame
    sizes or a crop larger than the frames; nothing is left at `out` on error.
    """
    T = check_T(T)
    check_gamma(gamma)
    check_output_file(Path(out), overwrite, inputs=[f for scene in scenes for f in scene.files])
    if stride < 1:
        raise UserError(f"--stride {stride}: must be >= 1")
    if not 0 < scale <= 1:
        raise UserError(f"--downsample {scale}: must be in (0, 1]")
    if crop is not None and crop < 1:
        raise UserError(f"--crop {crop}: must be a positive size")
    if not scenes:
        raise UserError(f"{source}: no scenes to convert")
    for scene in scenes:
        if scene.length is not None and scene.length < T:
            raise UserError(f"{scene.name}: {scene.length} frames are fewer than T={T}")
    rng = np.random.default_rng(seed)
    total = sum((s.length - T) // stride + 1 for s in scenes) if all(s.length for s in scenes) else None
    extra = {"stride": stride, "crop": crop or 0, "seed": seed,
             "scenes": json.dumps([s.name for s in scenes])}
    with H5Writer(out, T, source, downsample=scale, gamma=gamma, extra_attrs=extra, total=total,
                  overwrite=overwrite, progress=progress) as writer:
        full_size = None
        small_noted = False
        for scene in scenes:
            count = 0
            for window in frame_windows(_checked(scene, scale), T, stride):
                H, W = window.shape[1:3]
                side = min(H, W) if crop is None else crop
                if side < MIN_METRIC_SIDE and not small_noted:
                    small_noted = True
                    note_once(f"{out}: frames of {side} px are smaller than the {MIN_METRIC_SIDE} px that the "
                              "metrics (SSIM) need; evaluate will refuse this file")
                if crop is None:
                    full_size = full_size or (H, W)
                    if (H, W) != full_size:
                        raise UserError(f"{scene.name}: frames of {H}x{W}, but earlier scenes are "
                                         f"{full_size[0]}x{full_size[1]}; pass --crop to mix sizes")
                    writer.append(window)
                else:
                    if crop > min(H, W):
                        raise UserError(f"{scene.name}: crop {crop} is larger than the frames "
                                         f"({H}x{W} after downsample {scale})")
                    top, left = rng.integers(H - crop + 1), rng.integers(W - crop + 1)
                    writer.append(np.ascontiguousarray(window[:, top:top + crop, left:left + crop]))
                count += 1
            if count == 0:
                raise UserError(f"{scene.name}: fewer frames than T={T}")
    return writer.count


def check_output_file(out: Path, overwrite: bool, inputs: Iterable[Path] = ()) -> None:
    """What every converter checks of its --out before reading anything: not a folder, not one
    of `inputs`, in an existing writable folder, and not an existing file unless `overwrite`.
    UserError (one line naming --out) otherwise. Temporaries that a killed write of the same
    file left are removed."""
    from ..outputs import check_writable, refuse_inputs_among_outputs, remove_orphaned_writes

    if out.is_dir():
        raise UserError(f"--out {out}: is a folder; give the .h5 file to write (--overwrite never replaces a folder)")
    refuse_inputs_among_outputs([out], inputs)
    try:
        check_writable(out.parent, option="--out", remedy="choose another --out")
    except UserError as e:
        raise UserError(f"{e} (for {out.name})") from None
    if not out.parent.is_dir():
        raise UserError(f"--out {out}: the folder {out.parent} does not exist; create it or choose another --out")
    if out.exists() and not overwrite:
        raise UserError(f"--out {out}: already exists; pass --overwrite to replace it")
    remove_orphaned_writes(out)


def _checked(scene: Scene, scale: float) -> Iterator[np.ndarray]:
    """The scene's frames, downsampled, refusing a frame whose size differs from the first."""
    first = None
    for i, frame in enumerate(scene.frames):
        if first is None:
            first = frame.shape
        elif frame.shape != first:
            raise UserError(f"{scene.name}: frame {i} is {frame.shape[1]}x{frame.shape[0]}, "
                             f"but the first frame is {first[1]}x{first[0]} (images of mixed sizes)")
        yield downsample(frame, scale)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every converter shares."""
    parser.add_argument("--out", required=True, help="output .h5 file")
    parser.add_argument("--T", type=int, default=7, help="frames averaged per blurry image (odd)")
    parser.add_argument("--stride", type=int, default=None,
                        help="frames between window starts (default T: non-overlapping)")
    parser.add_argument("--crop", type=int, default=None, help="random square crop size (default: none)")
    parser.add_argument("--downsample", type=float, default=1.0,
                        help="resize frames by this factor first (the paper: 0.45)")
    parser.add_argument("--gamma", type=float, default=NO_GAMMA,
                        help="average in linear light with this gamma (e.g. 2.2); 1 = average stored values")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random crops")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def convert(args: argparse.Namespace, scenes: list[Scene], source: str) -> None:
    """Run `write_scenes` with the shared options and report the result."""
    check_T(args.T, "--T")
    try:
        check_gamma(args.gamma)
    except ValueError:
        raise UserError(f"--gamma {args.gamma}: must be a positive number (1 = average the stored values)") from None
    if args.seed < 0:
        raise UserError(f"--seed {args.seed}: must be >= 0")
    stride = args.T if args.stride is None else args.stride
    n = write_scenes(args.out, scenes, args.T, stride, args.crop, args.downsample,
                     args.gamma, args.seed, source, args.overwrite, progress=not args.quiet)
    print(f"wrote {n} samples of T={args.T} to {args.out}")
