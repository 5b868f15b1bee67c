"""What a checkpoint does to a photograph: a figure and the numbers of the weights README.

    python -m data_tools.photo_report --out photo_frames.png                       # default weights
    python -m data_tools.photo_report --checkpoint runs/x/best.pt --image my.jpg --out x.png

The figure is one row: the blurry input, frames 1, m and T, and |frame 1 − frame T| × 4 (where
the frames move). The numbers (printed, and with ``--json`` written) are, per frame, the
spectral grid ratio of ``frame − input`` at the resampling periods 2, 4 and 5
(:func:`b2v_rnn.metrics.grid_peak_ratio`; the photograph's own ratio beside it: a pixel-shuffle
grid gives hundreds to thousands), and the mean absolute differences that show motion.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from b2v_rnn import visualize
from b2v_rnn.atomic import atomic_path
from b2v_rnn.cli import run_main
from b2v_rnn.errors import UserError, check_T
from b2v_rnn.images import read_image
from b2v_rnn.inference import load
from b2v_rnn.metrics import grid_peak_ratio
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
    p.add_argument("--image", type=Path, default=SAMPLE, help="a blurry photograph (default: the shipped sample)")
    p.add_argument("--T", type=int, default=7)
    p.add_argument("--out", type=Path, required=True, help="the figure (.png)")
    p.add_argument("--json", type=Path, help="also write the numbers here")
    args = p.parse_args(argv)
    check_T(args.T, "--T")
    for option, path in (("--out", args.out), ("--json", args.json)):  # before any work, in one line each
        if path is None:
            continue
        if path.is_dir():
            raise UserError(f"{option} {path}: is a folder; give the file to write")
        refuse_inputs_among_outputs([path], [args.image, args.checkpoint], option)
        check_writable(path.parent, option)
    y = read_image(args.image)
    loaded = load(args.checkpoint, "cpu")
    loaded.check_frames(args.T)
    model = loaded.module
    for path in (args.out, args.json):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
    frames, numbers = report(model, y, args.T)
    visualize.save_image(figure(y, frames), args.out)
    print(json.dumps(numbers, indent=1))
    if args.json:
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps(numbers, indent=1) + "\n")
    return numbers


if __name__ == "__main__":
    run_main(main)
