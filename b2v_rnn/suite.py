"""The do-no-harm suite: a model judged on scenes its training generator does not define.

    python -m b2v_rnn.suite --out suite                      # the default weights
    python -m b2v_rnn.suite --checkpoint run/best.pt --photos ~/my_photos --out suite

A held-out split drawn by the training generator measures memorised textures and motions.
The suite renders the families of `b2v_rnn.data.families` (`SUITE_FAMILIES`) from
photographs training never used (the embedded held-out scikit-image photographs, or any
folder given with --photos), and judges camera shake on the ``tremor`` trajectory model,
which no training family uses, and a camera's sensor noise and JPEG on ``noisy`` (frames
judged against the clean truth). Per family it reports:

- middle gain: PSNR of x̂[m] against x[m], minus that of the blurry input (dB);
- pair gains, k = 1..(T-1)/2: per-patch order-invariant PSNR of (x̂[m-k], x̂[m+k])
  (`metrics.patch_pair_psnr`) minus that of repeating the blurry input;
- sharp kept (the ``sharp`` family): the worst frame's PSNR against the (sharp) input;
- still kept: the worst frame's PSNR inside the scene's still mask, where every true frame
  equals the input;
- worst 5 %: the middle gain of the scene at the 5th percentile;
- blur visible: the middle gain over the scenes whose blurry input is below
  `VISIBLE_BLUR_DB` against the middle frame, and how many they are. A family's mean middle
  gain is dominated by its near-sharp scenes: an input at 65 dB that the model changes by one
  grey level scores about -20 dB, while a visibly blurred scene moves by a few tenths. This
  column says how the model does where there is blur to remove; `score` does not use it.

`score` condenses them into the margin of the worst family against the suite's bars (sharp
and still kept >= `KEPT_BAR` dB, gains >= 0), the figure checkpoints are chosen by.

With --out, each family gets two figures: ``FAMILY.png``, its first three scenes (input, frames
1, m and T, and |frame 1 − frame T|), and ``FAMILY_worst.png``, the three it harmed most (`harm`)
with the middle frame's change from the input beside the true one: a correction where the truth
has none is a hallucination, and the figure shows where.

Frames are judged as `predict` writes them: clamped and rounded to 8 bits (`as_written`), as
the inputs are. A float frame that differs from an 8-bit input by a tenth of a grey level is
the input once saved, yet against a scene with no motion (whose blurry input equals its frames,
100 dB) it would score tens of dB below it; rounded, it scores what the user receives.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from . import metrics as M
from . import visualize
from .cli import HelpFormatter, add_device_arguments, check_amp_precision, resolve_device, run_main, set_threads
from .data.families import EMBEDDED_HELD_OUT, FAMILIES, SUITE_FAMILIES, PhotoSource, blurry_image, render_scene
from .data.photos import PhotoFolder
from .errors import UserError, check_gate, check_T
from .inference import Extractor, load, settings_for
from .models import GATES
from .outputs import check_writable, locked_output

KEPT_BAR = 35.0
"""dB a sharp input and a still background must keep, at the least."""

VISIBLE_BLUR_DB = 45.0
"""A blurry input within this PSNR of its middle frame (an RMS difference above 1.4 grey levels)
counts as visibly blurred; above it the blur is under what a viewer would notice."""

SCENE_STREAMS = ("mixed", "pan", "shake", "sharp", "still", "tremor", "zoom", "noisy")
"""Each family's random stream (its position here seeds its scenes). A new family is appended,
so the scenes of the others, and the figures measured on them, stay what they were."""

Extract = Callable[[torch.Tensor], torch.Tensor]
"""y (1, 3, H, W) -> frames (1, T, 3, H, W)."""


@dataclass(frozen=True)
class Scene:
    family: str
    blurry: torch.Tensor  # (3, H, W) in [0, 1]
    sharp: torch.Tensor  # (T, 3, H, W)
    still: torch.Tensor  # bool (H, W)


def _float(image: np.ndarray) -> torch.Tensor:
    """uint8 (..., H, W, 3) -> float (..., 3, H, W) in [0, 1]."""
    return torch.from_numpy(image).movedim(-1, -3).float() / 255.0


def scenes(family: str, n: int, T: int = 7, size: int = 128, seed: int = 0,
           photos: PhotoSource = EMBEDDED_HELD_OUT) -> list[Scene]:
    """The suite's `n` scenes of `family`, a pure function of the arguments."""
    index = SCENE_STREAMS.index(family)
    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, 1000 + index, i])
        sharp, still = render_scene(rng, T, size, FAMILIES[family], photos)
        blurry = blurry_image(sharp, FAMILIES[family], rng)
        out.append(Scene(family, _float(blurry), _float(sharp), torch.from_numpy(still)))
    return out


def _masked_psnr(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
    """PSNR over the pixels of `mask` (H, W) of images (3, H, W)."""
    err = (pred.double().clamp(0, 1) - target.double()) ** 2
    return M.mse_to_psnr(err[:, mask].mean())


def scene_metrics(pred: torch.Tensor, scene: Scene) -> dict:
    """The suite's figures of one scene; pred (T, 3, H, W)."""
    x, y = scene.sharp, scene.blurry
    T = x.shape[0]
    m = T // 2
    out = {"worst_frame_vs_input": min(M.psnr(f, y) for f in pred)}
    if scene.family != "sharp":
        out["blurry_psnr"] = M.psnr(y, x[m])
        out["middle_gain"] = M.psnr(pred[m], x[m]) - out["blurry_psnr"]
        for k in range(1, m + 1):
            ours = M.patch_pair_psnr(pred[m - k], pred[m + k], x[m - k], x[m + k])
            out[f"pair_gain_k{k}"] = ours - M.patch_pair_psnr(y, y, x[m - k], x[m + k])
    if scene.still.sum() >= 64:  # at least an 8x8 area, so one pixel cannot decide it
        out["still_kept"] = min(_masked_psnr(f, x[i], scene.still) for i, f in enumerate(pred))
    return out


MOVING_GREY = 20.0
"""Grey levels by which a pixel's true first and last frames differ for it to count as moving."""


def motion_changes(pred: torch.Tensor, sharp: torch.Tensor, still: torch.Tensor) -> dict:
    """Mean |frame 1 − frame T| in grey levels: on the still mask, where the true frames move
    (by more than `MOVING_GREY`), and the truth's own there. pred, sharp (T, 3, H, W); still (H, W).

    A still camera's background must not move (``still`` near 0) while the objects do
    (``moving`` well above it, ``moving_truth`` is what a perfect model gives)."""
    change = 255 * (pred[0] - pred[-1]).abs().mean(dim=0)
    true_change = 255 * (sharp[0] - sharp[-1]).abs().mean(dim=0)
    moving = true_change > MOVING_GREY
    if not still.any() or not moving.any():
        raise ValueError("motion_changes: the scene needs both still pixels and moving ones")
    return {"still": float(change[still].mean()), "moving": float(change[moving].mean()),
            "moving_truth": float(true_change[moving].mean())}


def summarise(family: str, per_scene: Sequence[dict]) -> dict:
    """Mean of each figure over the family's scenes, plus the worst ones."""
    summary: dict = {"scenes": len(per_scene)}
    for key in sorted({k for s in per_scene for k in s}):
        values = np.array([s[key] for s in per_scene if key in s], dtype=np.float64)
        summary[key] = float(values.mean())
        summary[f"{key}_min"] = float(values.min())
    if "middle_gain" in summary:
        summary["middle_gain_worst5"] = float(np.percentile([s["middle_gain"] for s in per_scene], 5))
        visible = [s["middle_gain"] for s in per_scene if s["blurry_psnr"] < VISIBLE_BLUR_DB]
        summary["blur_visible_scenes"] = len(visible)
        if visible:
            summary["blur_visible_middle_gain"] = float(np.mean(visible))
    if family == "sharp":
        summary["sharp_kept"] = summary["worst_frame_vs_input"]
        summary["sharp_kept_min"] = summary["worst_frame_vs_input_min"]
    return summary


def margin(summary: dict) -> float:
    """dB by which one family clears its bars (negative: the amount it misses by)."""
    checks = []
    if "sharp_kept" in summary:
        checks.append(summary["sharp_kept"] - KEPT_BAR)
    if "still_kept" in summary:
        checks.append(summary["still_kept"] - KEPT_BAR)
    checks += [v for k, v in summary.items() if (k == "middle_gain" or k.startswith("pair_gain_k"))
               and not k.endswith(("_min", "_worst5"))]
    return min(checks) if checks else math.inf


def score(report: dict) -> float:
    """The margin of the worst family: what checkpoints are selected by (higher is better)."""
    return min(margin(s) for s in report.values())


def as_written(frames: torch.Tensor) -> torch.Tensor:
    """Float frames in [0, 1] rounded to 8 bits, as `predict` saves them (`visualize.to_uint8`)."""
    return (frames.float().clamp(0, 1) * 255).round() / 255


def harm(figures: dict) -> float:
    """How badly one scene went, for picking the worst to show (higher is worse): the middle
    frame's loss against the blurry input, or on a sharp scene (which has no middle gain) the
    worst frame's distance from the input it should have returned."""
    return -figures["middle_gain"] if "middle_gain" in figures else -figures["worst_frame_vs_input"]


@dataclass
class Kept:
    """Scenes kept for a family's figures: the first few, and the worst few by `harm`; each
    (harm, blurry (3, H, W), pred (T, 3, H, W), sharp (T, 3, H, W))."""

    first: list = field(default_factory=list)
    worst: list = field(default_factory=list)

    def add(self, keep: int, harm_: float, scene: Scene, pred: torch.Tensor) -> None:
        entry = (harm_, scene.blurry, pred, scene.sharp)
        if len(self.first) < keep:
            self.first.append(entry)
        self.worst = sorted([*self.worst, entry], key=lambda e: -e[0])[:keep]


@torch.inference_mode()
def run(extract: Extract, families: Sequence[str] = SUITE_FAMILIES, n: int = 16, T: int = 7, size: int = 128,
        seed: int = 0, photos: PhotoSource = EMBEDDED_HELD_OUT, progress: bool = True,
        keep: int = 0) -> tuple[dict, dict]:
    """(report {family: summary}, kept {family: Kept}) of `extract`; `keep` scenes per family
    are kept for the figures, the first and the worst."""
    report, kept = {}, {}
    # leave=False and a with block: an error message is not glued to a half-drawn bar
    with tqdm(total=n * len(families), desc="suite", unit="scene", disable=not progress, leave=False) as bar:
        for family in families:
            per_scene, kept[family] = [], Kept()
            for scene in scenes(family, n, T, size, seed, photos):
                pred = as_written(extract(scene.blurry[None])[0].cpu())
                per_scene.append(scene_metrics(pred, scene))
                if keep:
                    kept[family].add(keep, harm(per_scene[-1]), scene, pred)
                bar.update(1)
            report[family] = summarise(family, per_scene)
    return report, kept


def format_table(report: dict) -> str:
    """One row per family: the suite's figures in dB."""
    pair_keys = sorted({k for s in report.values() for k in s if k.startswith("pair_gain_k") and k[-1].isdigit()})
    head = ["family", "middle gain", *[f"pair k={k[-1]}" for k in pair_keys], "worst 5 % mid",
            "mid, blur visible (n)", "sharp kept", "still kept", "margin"]
    rows = [head]

    def cell(summary, key):
        return f"{summary[key]:+.2f}" if key in summary and "kept" not in key else (
            f"{summary[key]:.1f}" if key in summary else "")

    def visible(summary):
        if "blur_visible_scenes" not in summary:
            return ""
        gain = summary.get("blur_visible_middle_gain")
        return f"{'' if gain is None else f'{gain:+.2f} '}({summary['blur_visible_scenes']})"

    for family, s in report.items():
        rows.append([family, cell(s, "middle_gain"), *[cell(s, k) for k in pair_keys],
                     cell(s, "middle_gain_worst5"), visible(s), cell(s, "sharp_kept"), cell(s, "still_kept"),
                     f"{margin(s):+.2f}"])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    return "\n".join(lines + [f"score (worst family's margin): {score(report):+.2f} dB"])


def _figure(kept: Sequence[tuple], panels: Callable, path: Path) -> Path:
    """One row per kept (harm, blurry, pred, sharp) entry: ``panels(blurry, pred, sharp)`` side by side."""
    rows = [torch.cat(panels(blurry, pred, sharp), dim=-1) for _, blurry, pred, sharp in kept]
    return visualize.save_image(torch.cat(rows, dim=-2), path)


def family_figure(kept: Sequence[tuple], path: Path) -> Path:
    """Rows of (input | frame 1 | middle | frame T | 4 x |frame 1 - frame T|) per kept scene."""
    def panels(blurry, pred, _):
        return [blurry, pred[0], pred[pred.shape[0] // 2], pred[-1], (4 * (pred[0] - pred[-1]).abs()).clamp(0, 1)]
    return _figure(kept, panels, path)


def worst_figure(kept: Sequence[tuple], path: Path) -> Path:
    """Rows of (input | predicted middle | true middle | 8 x |predicted - input| | 8 x |true -
    input|) per kept scene, worst first: where the model changed what it should not have, the
    fourth panel lights up where the fifth stays dark."""
    def panels(blurry, pred, sharp):
        m = pred.shape[0] // 2
        return [blurry, pred[m], sharp[m], (8 * (pred[m] - blurry).abs()).clamp(0, 1),
                (8 * (sharp[m] - blurry).abs()).clamp(0, 1)]
    return _figure(kept, panels, path)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m b2v_rnn.suite", description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter, allow_abbrev=False)
    p.add_argument("--checkpoint", type=Path, help="model checkpoint (default: the weights shipped with the package)")
    p.add_argument("--photos", type=Path, help="folder of photographs never used in training "
                                               "(default: the embedded held-out scikit-image photographs)")
    p.add_argument("--families", default=",".join(SUITE_FAMILIES), help="comma-separated families")
    p.add_argument("--n", type=int, default=16, help="scenes per family")
    p.add_argument("--T", type=int, default=7, help="frames per scene (odd, >= 3)")
    p.add_argument("--size", type=int, default=128, help="scene side in pixels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--still-gate", type=float, metavar="TAU",
                   help="override the model's still gate (BlurToVideo.still_gate; 0 = off), to probe it")
    p.add_argument("--middle-gate", type=float, metavar="TAU",
                   help="override the model's middle gate (BlurToVideo.middle_gate; 0 = off), to probe it")
    p.add_argument("--frame-gate", type=float, metavar="TAU",
                   help="override the model's frame gate (BlurToVideo.frame_gate; 0 = off), to probe it")
    p.add_argument("--sharp-gate", type=float, metavar="TAU",
                   help="override the model's sharp gate (BlurToVideo.sharp_gate; 0 = off), to probe it")
    p.add_argument("--out", type=Path,
                   help="folder for report.json, suite.txt and two figures per family: FAMILY.png (its first three "
                        "scenes) and FAMILY_worst.png (the three it harmed most, with what changed)")
    p.add_argument("--overwrite", action="store_true", help="replace the outputs of an earlier run in --out")
    add_device_arguments(p, precision=True)
    return p


SUITE_OUTPUTS = ("report.json", "suite.txt",
                 *(f"{family}{kind}.png" for family in FAMILIES for kind in ("", "_worst")))


def check_options(args, raw: Sequence[str]) -> tuple[list[str], PhotoSource]:
    """Every option checked before any work; returns the families and the photographs."""
    set_threads(args.threads)
    check_T(args.T, "--T")
    check_amp_precision(raw, args.amp, args.precision)
    if args.seed < 0:  # numpy's generators take no negative seeds
        raise UserError(f"--seed {args.seed}: must be >= 0")
    names = [f.strip() for f in args.families.split(",") if f.strip()]
    unknown = [f for f in names if f not in FAMILIES]
    if unknown or not names:
        raise UserError(f"--families {args.families!r}: unknown {unknown}, expected some of {sorted(FAMILIES)}")
    if args.n < 1 or args.size < 32:
        raise UserError(f"--n {args.n} must be >= 1 and --size {args.size} >= 32")
    check_gate(args.still_gate, "--still-gate")
    check_gate(args.middle_gate, "--middle-gate")
    check_gate(args.frame_gate, "--frame-gate")
    check_gate(args.sharp_gate, "--sharp-gate")
    try:
        photos = PhotoSource(PhotoFolder(args.photos)) if args.photos else EMBEDDED_HELD_OUT
    except UserError as e:
        raise UserError(f"--photos: {e}") from None
    return names, photos


def load_extractor(args) -> tuple[Extractor, Path]:
    """The model of --checkpoint (with --still-gate, --middle-gate, --frame-gate and --sharp-gate applied) ready to run, and its path."""
    device = resolve_device(args.device)
    loaded = load(args.checkpoint, device)
    loaded.check_frames(args.T)
    for gate in GATES:
        tau = getattr(args, gate)
        if tau is None:
            continue
        option = "--" + gate.replace("_", "-")
        if not hasattr(loaded.module, gate):  # the authors' networks
            raise UserError(f"{option} {tau}: {loaded.path} holds the authors' pretrained networks, "
                            "which have no gates")
        setattr(loaded.module, gate, tau)
    return Extractor(loaded, settings_for(device, args.precision, args.amp, loaded.module)), loaded.path


def write_outputs(out, report: dict, table: str, kept: dict, checkpoint: Path, photos: PhotoSource) -> None:
    with out.stage() as stage:
        (stage / "report.json").write_text(json.dumps({"checkpoint": str(checkpoint), "photos": photos.describe(),
                                                       "families": report}, indent=1))
        (stage / "suite.txt").write_text(table + "\n")
        for family, scenes_kept in kept.items():
            family_figure(scenes_kept.first, stage / f"{family}.png")
            worst_figure(scenes_kept.worst, stage / f"{family}_worst.png")


def main(argv: Sequence[str] | None = None) -> dict:
    """Run the suite; returns the report {family: summary}."""
    raw = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(raw)
    names, photos = check_options(args, raw)
    if args.out is not None:
        check_writable(args.out)
    with locked_output(args.out) if args.out is not None else contextlib.nullcontext() as out:
        existing = [out.path / name for name in SUITE_OUTPUTS if (out.path / name).exists()] if out else []
        if existing and not args.overwrite:
            raise UserError(f"{existing[0]} exists already (pass --overwrite to replace it)")
        extractor, path = load_extractor(args)
        try:
            report, kept = run(lambda y: extractor(y, args.T), names, args.n, args.T, args.size, args.seed, photos,
                               keep=3 if out else 0)
        except UserError as e:  # a photograph of --photos that cannot be decoded
            raise UserError(f"--photos: {e}") from None
        table = format_table(report)
        gates = ", ".join(f"{gate.replace('_', ' ')} {getattr(extractor.module, gate, 0.0)}" for gate in GATES)
        print(f"{path} ({gates}) on {photos.describe()} "
              f"({args.n} scenes per family, {args.size} px, T={args.T}, {extractor.settings.describe()})")
        print(table)
        if out is not None:
            write_outputs(out, report, table, kept, path, photos)
            print(f"wrote {args.out}/report.json, suite.txt and per family FAMILY.png and FAMILY_worst.png")
    return report


if __name__ == "__main__":
    run_main(main)
