"""Extract T sharp frames from motion-blurred photos.

    python -m b2v_rnn.predict blurry.png --T 7 --out results --checkpoint runs/x/checkpoint.pt
    python -m b2v_rnn.predict photos/*.jpg --out results --tile 512    # large images, in tiles

For each input IMG writes OUT/<stem>/frame_01.png ... frame_TT.png and OUT/<stem>.gif.
Any image size: the model pads to its size multiple and crops back. With --tile N the
image is processed in overlapping N x N tiles blended with feathered (linear ramp)
weights, so memory stays bounded; each tile's temporal direction is aligned with the
tiles already placed (the direction is ambiguous per tile, paper Sec. 4), so neighbouring
tiles never blend a forward with a backward sequence. The sequence as a whole comes out
in one of its two directions; which one is arbitrary.

Without --checkpoint the default weights shipped with the package are used when this
installation has them (b2v_rnn/weights/default.pt, SHA-256 verified).
Existing outputs are never replaced unless --overwrite is given.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm import tqdm

from . import visualize
from .checkpoint import CheckpointError, default_checkpoint, load_model
from .cli import (CliError, HelpFormatter, add_device_arguments, autocast_for, check_T, resolve_device, run_main,
                  set_threads)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m b2v_rnn.predict", allow_abbrev=False,
                                description="Extract T sharp frames and a GIF from each motion-blurred image.",
                                formatter_class=HelpFormatter)
    p.add_argument("images", nargs="+", type=Path, metavar="IMG", help="blurry input images (PNG, JPEG, ...)")
    p.add_argument("--T", type=int, default=7, help="frames to extract (odd, >= 3)")
    p.add_argument("--out", type=Path, default=Path("results"), help="output folder")
    p.add_argument("--checkpoint", type=Path, help="model checkpoint (default: the weights shipped with the package)")
    p.add_argument("--tile", type=int, default=0, help="process in N x N tiles (0 = whole image at once)")
    p.add_argument("--tile-overlap", type=int, default=32, help="overlap of neighbouring tiles, in pixels")
    add_device_arguments(p)
    p.add_argument("--fps", type=float, default=7.0, help="GIF frame rate")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    return p


def read_image(path: Path) -> torch.Tensor:
    """An image file -> float (3, H, W) in [0, 1]. EXIF orientation is applied; grey and
    palette images become RGB, alpha is dropped; 16-bit grey is scaled by 65535."""
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                grey = np.asarray(im, dtype=np.float32) / 65535.0
                array = np.repeat(grey[..., None], 3, axis=-1)
            else:
                array = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    except FileNotFoundError:
        raise CliError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CliError(f"{path}: is a folder, not an image") from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise CliError(f"{path}: not a readable image ({e})") from None
    return torch.from_numpy(np.ascontiguousarray(array.clip(0, 1))).permute(2, 0, 1)


def _ramp(n: int, overlap: int, device) -> torch.Tensor:
    """1-D blending weights of a tile side: rising over `overlap` pixels at both ends."""
    i = torch.arange(n, device=device, dtype=torch.float32)
    edge = torch.minimum(i + 1, n - i)
    return (edge / max(overlap, 1)).clamp(max=1.0)


def _starts(size: int, tile: int, overlap: int) -> list[int]:
    if size <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride))
    return starts + [size - tile]


@torch.inference_mode()
def extract_tiled(model, y: torch.Tensor, T: int, tile: int = 0, overlap: int = 32, progress: bool = False) -> torch.Tensor:
    """model.extract on y (1, 3, H, W), whole or in overlapping tiles -> (1, T, 3, H, W).

    Tiles are placed in raster order; a tile whose reversed sequence agrees better with
    the blended result in its overlap is flipped before blending, so the whole image keeps
    one temporal direction. Blending weights ramp linearly over the overlap.
    """
    _, _, H, W = y.shape
    if tile <= 0 or (H <= tile and W <= tile):
        return model.extract(y, T).float()
    if tile <= 2 * overlap:
        raise CliError(f"--tile {tile} must be larger than twice --tile-overlap {overlap}")
    acc = torch.zeros(1, T, 3, H, W, device=y.device)
    weight = torch.zeros(1, 1, 1, H, W, device=y.device)
    boxes = [(top, left) for top in _starts(H, tile, overlap) for left in _starts(W, tile, overlap)]
    for top, left in tqdm(boxes, desc="tiles", unit="tile", leave=False, disable=not progress):
        h, w = min(tile, H), min(tile, W)
        frames = model.extract(y[:, :, top:top + h, left:left + w], T).float()
        region = (slice(None), slice(None), slice(None), slice(top, top + h), slice(left, left + w))
        seen = weight[region] > 0
        if seen.any():
            blended = acc[region] / weight[region].clamp(min=1e-8)
            forward = ((frames - blended) ** 2 * seen).sum()
            backward = ((frames.flip(1) - blended) ** 2 * seen).sum()
            if backward < forward:
                frames = frames.flip(1)
        ramp = (_ramp(h, overlap, y.device)[:, None] * _ramp(w, overlap, y.device)[None, :])[None, None, None]
        acc[region] += frames * ramp
        weight[region] += ramp
    return acc / weight


def plan_outputs(images: Sequence[Path], out: Path, overwrite: bool) -> list[tuple[Path, Path, Path]]:
    """(input, frame folder, GIF) per image; refuses duplicate stems and, without
    overwrite, any output that already exists, before anything is computed or written."""
    plans, stems = [], {}
    for image in images:
        if image.stem in stems:
            raise CliError(f"{image} and {stems[image.stem]} would both write {out / image.stem}; "
                           "rename one or run them separately")
        stems[image.stem] = image
        plans.append((image, out / image.stem, out / f"{image.stem}.gif"))
    if not overwrite:
        existing = [str(p) for _, folder, gif in plans for p in (folder, gif) if p.exists()]
        if existing:
            raise CliError(f"outputs exist already: {', '.join(existing[:5])}"
                           f"{' ...' if len(existing) > 5 else ''} (pass --overwrite to replace them)")
    return plans


def load_for_inference(checkpoint: Path | None, T: int, device):
    """(model, checkpoint path) for --checkpoint or the shipped default weights; warns when
    T differs from the T the model was trained on (G then unrolls fewer or more steps)."""
    try:
        path = checkpoint if checkpoint is not None else default_checkpoint()
        model, state = load_model(path, device)
    except CheckpointError as e:
        raise CliError(str(e)) from None
    if state["T"] != T:
        warnings.warn(f"{path} was trained with T={state['T']}; extracting T={T} frames "
                      f"{'extrapolates beyond' if T > state['T'] else 'uses fewer steps than'} training",
                      stacklevel=2)
    return model, path


def main(argv: Sequence[str] | None = None) -> list[Path]:
    """Run prediction; returns the GIF paths written."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    set_threads(args.threads)
    check_T(args.T)
    if args.tile < 0 or args.tile_overlap < 0:
        raise CliError(f"--tile {args.tile} and --tile-overlap {args.tile_overlap} must be >= 0")
    if args.tile and args.tile <= 2 * args.tile_overlap:
        raise CliError(f"--tile {args.tile} must be larger than twice --tile-overlap {args.tile_overlap}")
    if args.fps <= 0:
        raise CliError(f"--fps {args.fps}: must be > 0")
    device = resolve_device(args.device)
    if args.out.exists() and not args.out.is_dir():
        raise CliError(f"--out {args.out}: exists and is not a folder")
    plans = plan_outputs(args.images, args.out, args.overwrite)
    for image, _, _ in plans:  # fail on a bad input before spending time on the good ones
        if not image.is_file():
            raise CliError(f"{image}: no such file")
    model, path = load_for_inference(args.checkpoint, args.T, device)
    amp = autocast_for(device, args.amp)
    args.out.mkdir(parents=True, exist_ok=True)
    written = []
    for image, folder, gif in tqdm(plans, desc="predict", unit="image", disable=len(plans) < 2):
        y = read_image(image).to(device)[None]
        with amp:
            frames = extract_tiled(model, y, args.T, args.tile, args.tile_overlap, progress=True)[0].cpu()
        if folder.is_dir():  # only reached with --overwrite: drop frames of an earlier, longer T
            for old in folder.glob("frame_*.png"):
                old.unlink()
        visualize.save_frames(frames, folder)
        visualize.save_gif(frames, gif, fps=args.fps)
        written.append(gif)
        tqdm.write(f"{image} ({y.shape[-1]}x{y.shape[-2]}) -> {folder}/ ({args.T} frames), {gif}")
    return written


if __name__ == "__main__":
    run_main(main)
