"""What a checkpoint does to a photograph: a figure and the numbers of the weights README.

    python -m data_tools.photo_report --out photo_frames.png                       # default weights
    python -m data_tools.photo_report --checkpoint runs/x/best.pt --image my.jpg --out x.png
    python -m data_tools.photo_report --still-scene 21 --photos photos/heldout --out still.png

The figure is one row: the blurry input, frames 1, m and T, and |frame 1 − frame T| × 4 (where
the frames move). The numbers (printed, and with ``--json`` written) are, per frame, the
spectral grid ratio of ``frame − input`` at the resampling periods 2, 4 and 5
(:func:`b2v_rnn.metrics.grid_peak_ratio`; the photograph's own ratio beside it: a pixel-shuffle
grid gives hundreds to thousands), and the mean absolute differences that show motion.

``--still-scene SEED`` renders the photograph instead: a still camera over one of ``--photos``
(default: the embedded held-out photographs, never trained on) with objects moving across it
(the ``still`` family of `b2v_rnn.data.families`, at that seed), so the truth is known. It then
also reports how much frame 1 and frame T differ on the still background and where the objects
move (`b2v_rnn.suite.motion_changes`: a model that does no harm keeps the first near 0 while the
second is well above it), the worst frame's PSNR inside the still mask and the middle gain.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from b2v_rnn import suite, visualize
from b2v_rnn.atomic import atomic_path
from b2v_rnn.cli import run_main
from b2v_rnn.data.families import EMBEDDED_HELD_OUT, FAMILIES, PhotoSource, blurry_image, render_scene
from b2v_rnn.data.photos import PhotoFolder
from b2v_rnn.errors import UserError, check_T
from b2v_rnn.images import read_image
from b2v_rnn.inference import load
from b2v_rnn.metrics import grid_peak_ratio, psnr
from b2v_rnn.outputs import check_writable, refuse_inputs_among_outputs

SAMPLE = Path(__file__).resolve().parents[1] / "b2v_rnn" / "samples" / "blurry.png"
PERIODS = (2, 4, 5)


def load_image(path: Path) -> torch.Tensor:
    """An RGB image file as (3, H, W) float in [0, 1]."""
    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)


def report(model: torch.nn.Module, y: torch.Tensor, T: int = 7) -> tuple[torch.Tensor, dict]:
    """(frames (T, 3, H, W), numbers) for the photograph y (3, H, W), in float32."""
    with torch.inference_mode():
        frames = model.extract(y[None], T)[0]
    m = T // 2
    numbers = {
        "input_grid": {p: round(grid_peak_ratio(y, p), 1) for p in PERIODS},
        "frame_grid": [{p: round(grid_peak_ratio(frame - y, p), 1) for p in PERIODS} for frame in frames],
        "mean_abs_first_last_grey": round(255 * (frames[0] - frames[-1]).abs().mean().item(), 2),
        "mean_abs_frame_input_grey": [round(255 * (frame - y).abs().mean().item(), 2) for frame in frames],
        "middle": m,
    }
    return frames, numbers


def still_scene(seed: int, size: int, T: int, photos: PhotoSource = EMBEDDED_HELD_OUT):
    """(blurry y (3, H, W), sharp frames (T, 3, H, W), still mask (H, W)) of the ``still`` family
    at ``seed``: a pure function of the arguments."""
    rng = np.random.default_rng([seed, 0])
    sharp, still = render_scene(rng, T, size, FAMILIES["still"], photos)
    blurry = blurry_image(sharp, FAMILIES["still"], rng)
    return (torch.from_numpy(blurry).permute(2, 0, 1).float() / 255,
            torch.from_numpy(sharp).permute(0, 3, 1, 2).float() / 255, torch.from_numpy(still))


def scene_numbers(frames: torch.Tensor, y: torch.Tensor, sharp: torch.Tensor, still: torch.Tensor) -> dict:
    """What a model did to a scene whose truth is known: `suite.motion_changes` (grey levels),
    the worst frame's PSNR inside the still mask and the middle gain over y (dB)."""
    m = len(frames) // 2
    frames = frames.clamp(0, 1)
    return {
        "first_last_grey": {k: round(v, 2) for k, v in suite.motion_changes(frames, sharp, still).items()},
        "still_share": round(float(still.float().mean()), 3),
        "still_kept_db": round(min(psnr(frame[:, still], truth[:, still]) for frame, truth in zip(frames, sharp)), 2),
        "middle_gain_db": round(psnr(frames[m], sharp[m]) - psnr(y, sharp[m]), 2),
    }


def figure(y: torch.Tensor, frames: torch.Tensor, gap: int = 4) -> np.ndarray:
    """One row: input, frames 1, m and T, and |frame 1 − frame T| × 4, as uint8 (H, W, 3)."""
    difference = ((frames[0] - frames[-1]).abs() * 4).clamp(0, 1)
    panels = [y, frames[0], frames[len(frames) // 2], frames[-1], difference]
    height = y.shape[1]
    spacer = np.full((height, gap, 3), 255, dtype=np.uint8)
    row = []
    for panel in panels:
        row += [visualize.to_uint8(panel), spacer]
    return np.concatenate(row[:-1], axis=1)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m data_tools.photo_report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, help="weights (default: the shipped default weights)")
    p.add_argument("--image", type=Path, help="a blurry photograph (default: the shipped sample)")
    p.add_argument("--still-scene", type=int, metavar="SEED",
                   help="render a still-camera scene with moving objects at this seed instead (see above)")
    p.add_argument("--photos", type=Path, help="with --still-scene: a folder of photographs "
                                               "(default: the embedded held-out ones)")
    p.add_argument("--size", type=int, default=256, help="with --still-scene: its side in pixels")
    p.add_argument("--T", type=int, default=7)
    p.add_argument("--out", type=Path, required=True, help="the figure (.png)")
    p.add_argument("--json", type=Path, help="also write the numbers here")
    args = p.parse_args(argv)
    check_T(args.T, "--T")
    if args.still_scene is None:
        for option, given in (("--photos", args.photos), ("--size", args.size != 256)):
            if given:
                raise UserError(f"{option} is an option of --still-scene, which was not given")
        if args.image is None:
            args.image = SAMPLE
    elif args.image is not None:
        raise UserError(f"--image {args.image} and --still-scene: give one photograph, not both")
    elif args.still_scene < 0:
        raise UserError(f"--still-scene {args.still_scene}: a seed is >= 0")
    elif args.size < 32:
        raise UserError(f"--size {args.size}: a scene is at least 32 pixels on a side")
    for option, path in (("--out", args.out), ("--json", args.json)):  # before any work, in one line each
        if path is None:
            continue
        if path.is_dir():
            raise UserError(f"{option} {path}: is a folder; give the file to write")
        refuse_inputs_among_outputs([path], [args.image, args.checkpoint], option)
        check_writable(path.parent, option)
    if args.still_scene is None:
        y = read_image(args.image)
    else:
        photos = EMBEDDED_HELD_OUT if args.photos is None else PhotoSource(PhotoFolder(args.photos))
        y, sharp, still = still_scene(args.still_scene, args.size, args.T, photos)
    loaded = load(args.checkpoint, "cpu")
    loaded.check_frames(args.T)
    model = loaded.module
    for path in (args.out, args.json):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
    frames, numbers = report(model, y, args.T)
    if args.still_scene is not None:
        numbers["scene"] = scene_numbers(frames, y, sharp, still)
    visualize.save_image(figure(y, frames), args.out)
    print(json.dumps(numbers, indent=1))
    if args.json:
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps(numbers, indent=1) + "\n")
    return numbers


if __name__ == "__main__":
    run_main(main)
