"""Evaluate a checkpoint on an HDF5 test split with the metrics of `b2v_rnn.metrics`.

    python -m b2v_rnn.evaluate --data test.h5 --checkpoint runs/x/best.pt --out runs/x/eval
    python -m b2v_rnn.evaluate --checkpoint runs/x/best.pt      # embedded synthetic test split
    python -m b2v_rnn.evaluate --suite --checkpoint runs/x/best.pt --out suite   # = b2v_rnn.suite

A held-out split drawn by the training generator measures memorised textures and motions;
``--suite`` runs the do-no-harm suite instead (`b2v_rnn.suite`: scene families from photographs
training never used), every other option being the suite's.

Prints a table; with --out also writes metrics.json (the summary, the per-clip values and
the conventions), psnr_per_frame.png and samples/clip_NNNN.png. Every clip is evaluated at
full size (the model pads internally), or in tiles with --tile. Metric conventions: see
`b2v_rnn.metrics` (data range 1, RGB, no border crop, predictions clamped, PSNR capped at
100 dB).

--out follows `b2v_rnn.outputs`: checked for writability before any work, locked against a
concurrent run, and the three outputs are written aside and moved into place together at
the end, so the folder never holds the plot of one run beside the metrics (or sample
figures) of another. Every sample's checksum is verified before the model runs, and
damaged samples are named.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Sequence

from . import metrics as M
from . import ops, suite, visualize
from .cli import HelpFormatter, add_device_arguments, check_amp_precision, resolve_device, run_main, set_threads
from .data import BlurSequenceDataset, default_dataset
from .data.h5format import MIN_METRIC_SIDE, corrupt_samples
from .errors import UserError, check_T
from .inference import Extractor, evaluate_clips, load, settings_for
from .inference.tiling import check_tiling
from .outputs import OutputFolder, check_writable, locked_output, refuse_inputs_among_outputs

OUTPUTS = ("metrics.json", "psnr_per_frame.png", "samples")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m b2v_rnn.evaluate", allow_abbrev=False,
                                description="Metrics of b2v_rnn.metrics (see the README's Evaluate section) "
                                            "on a b2v HDF5 file.",
                                formatter_class=HelpFormatter)
    p.add_argument("--suite", action="store_true",
                   help="run the do-no-harm suite instead (python -m b2v_rnn.suite; every other option is then "
                        "the suite's: see its --help)")
    p.add_argument("--data", type=Path, help="b2v HDF5 file (default: the embedded synthetic test split)")
    p.add_argument("--checkpoint", type=Path, help="model checkpoint (default: the weights shipped with the package)")
    p.add_argument("--T", type=int, help="frames per clip; must equal the file's T (default: the file's)")
    p.add_argument("--out", type=Path, help="write metrics.json and psnr_per_frame.png here")
    p.add_argument("--limit", type=int, default=0, help="evaluate only the first N clips (default 0: all)")
    p.add_argument("--samples", type=int, default=3,
                   help="with --out, write a figure (blurry, predicted and true frames) of the first N clips")
    p.add_argument("--tile", type=int, default=0, help="run the model in N x N tiles (default 0: the whole clip)")
    p.add_argument("--tile-overlap", type=int, default=32, help="overlap of neighbouring tiles, in pixels")
    add_device_arguments(p, precision=True)
    p.add_argument("--overwrite", action="store_true", help="replace existing metrics.json, plot and sample figures in --out")
    return p


def format_table(s: dict) -> str:
    """The summary as an aligned text table."""
    K = sum(1 for k in s if k.startswith("pair_psnr_k"))
    rows = [
        ("clips", f"{s['n']}"),
        ("middle PSNR (dB)", f"{s['middle_psnr']:.2f}"),
        ("  blurry input (baseline)", f"{s['blurry_psnr']:.2f}   gain {s['middle_psnr_gain']:+.2f}"),
        ("middle SSIM", f"{s['middle_ssim']:.4f}"),
        ("  blurry input (baseline)", f"{s['blurry_ssim']:.4f}  gain {s['middle_ssim_gain']:+.4f}"),
    ]
    rows += [(f"pair PSNR k={k} (dB, order-invariant)", f"{s[f'pair_psnr_k{k}']:.2f}") for k in range(1, K + 1)]
    if "patch_pair_psnr_k1" in s:
        # Each moving layer's direction is ambiguous on its own: the order is chosen per 16 px patch.
        for k in range(1, K + 1):
            rows += [
                (f"per-patch pair PSNR k={k} (dB)", f"{s[f'patch_pair_psnr_k{k}']:.2f}   y repeated "
                 f"{s[f'blurry_pair_psnr_k{k}']:.2f} (gain {s[f'patch_pair_psnr_gain_k{k}']:+.2f}), "
                 f"direction-free ceiling {s[f'ceiling_pair_psnr_k{k}']:.2f}"),
                ("  direction correlation", f"{s[f'direction_corr_k{k}']:.3f}   shuffled control "
                 f"{s[f'direction_corr_shuffled_k{k}']:.3f}"),
            ]
        rows += [("per-patch sequence PSNR (dB)", f"{s['patch_seq_psnr']:.2f}   y repeated "
                  f"{s['blurry_patch_seq_psnr']:.2f} (gain {s['patch_seq_psnr_gain']:+.2f})")]
    rows += [
        ("sequence PSNR (dB, best direction)", f"{s['seq_psnr']:.2f}   reversed in {s['seq_reversed']:.0%} of clips"),
        ("  per frame", " ".join(f"{v:.2f}" for v in s["frame_psnr"])),
        ("  blurry input per frame", " ".join(f"{v:.2f}" for v in s["blurry_frame_psnr"])),
        ("PWPSNR (dB, per-pixel direction)", f"{s['pwpsnr']:.2f}"),
        ("consistency PSNR(mean of frames, y) (dB)", f"{s['consistency_psnr']:.2f}"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def open_dataset(data: Path | None, T: int | None, limit: int = 0):
    """The BlurSequenceDataset of --data (or the default test split), with the checksums of
    the samples to evaluate (the first `limit`, 0 = all) verified and frames large enough
    for the metrics; UserError otherwise."""
    try:
        path = data if data is not None else default_dataset("test", T or 7)
    except UserError as e:  # the cache folder, not --data: say which
        raise UserError(f"default test split: {e}") from None
    try:
        dataset = BlurSequenceDataset(path, crop=None, augment=False, T=T)
        bad = corrupt_samples(path, limit, progress=True)
    except (FileNotFoundError, ValueError) as e:  # UserError is a ValueError
        raise UserError(f"--data: {e}") from None
    if bad:
        listed = ", ".join(map(str, bad[:10])) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
        checked = len(dataset) if limit <= 0 else min(limit, len(dataset))
        raise UserError(f"--data {path}: {len(bad)} of {checked} samples are damaged "
                       f"({'they fail their checksums' if dataset.info.checksummed else 'unreadable'}): "
                       f"sample(s) {listed}; reconvert the file")
    if min(dataset.info.H, dataset.info.W) < MIN_METRIC_SIDE:
        raise UserError(f"--data {path}: frames of {dataset.info.W}x{dataset.info.H} px; the metrics need at "
                       f"least {MIN_METRIC_SIDE}x{MIN_METRIC_SIDE} (SSIM's window)")
    return path, dataset


def write_report(folder: Path, summary: dict, report: dict, data_name: str) -> None:
    """metrics.json, psnr_per_frame.png and samples/clip_NNNN.png into `folder`."""
    (folder / "metrics.json").write_text(json.dumps(report, indent=2))
    visualize.plot_psnr_per_frame({"prediction": summary["frame_psnr"],
                                   "blurry input": summary["blurry_frame_psnr"]},
                                  folder / "psnr_per_frame.png", title=f"psnr per frame, {data_name}")
    (folder / "samples").mkdir()
    for i, (y, pred, x) in enumerate(summary["kept"]):
        visualize.save_image(visualize.comparison_grid(y, pred, x), folder / "samples" / f"clip_{i:04d}.png")


def refuse_existing(out: OutputFolder, overwrite: bool) -> None:
    existing = [out.path / name for name in OUTPUTS if (out.path / name).exists()]
    if existing and not overwrite:
        raise UserError(f"{existing[0]} exists already (pass --overwrite to replace it)")


def check_options(args, raw: Sequence[str]) -> None:
    set_threads(args.threads)
    check_amp_precision(raw, args.amp, args.precision)
    if args.T is not None:
        check_T(args.T, "--T")
    if args.limit < 0 or args.samples < 0:
        raise UserError("--limit and --samples must be >= 0")
    check_tiling(args.tile, args.tile_overlap)


def make_report(args, device, data: Path, checkpoint: Path, T: int, summary: dict, seconds: float) -> dict:
    """metrics.json: where the figures came from, their conventions, the summary and each clip."""
    return {
        "data": str(data), "checkpoint": str(checkpoint), "T": T, "device": str(device),
        "tile": args.tile, "seconds": seconds,
        "conventions": {"data_range": 1.0, "color": "RGB", "crop_border": 0, "psnr_cap_db": M.PSNR_CAP,
                        "ssim": "skimage structural_similarity, gaussian sigma 1.5, channel_axis=-1",
                        "averaging": "mean over clips of per-clip values"},
        "metrics": {k: v for k, v in summary.items() if k not in ("clips", "kept")},
        "clips": summary["clips"],
    }


def run(args, device, out: OutputFolder | None) -> dict:
    """Open the data, load the model, evaluate; print the table and, with `out`, write the report."""
    data, dataset = open_dataset(args.data, args.T, args.limit)
    T = dataset.T
    loaded = load(args.checkpoint, device)
    loaded.check_frames(T, None if args.T is not None else f"--data {data} has T={T}")
    extractor = Extractor(loaded, settings_for(device, args.precision, args.amp, loaded.module))
    start = time.perf_counter()
    try:
        summary = evaluate_clips(lambda y: extractor(y, T, args.tile, args.tile_overlap), dataset, args.limit,
                                 device, keep=args.samples if out else 0)
    except UserError as e:  # damage the checksum pass could not see (a file without checksums)
        raise UserError(f"--data: {e}") from None
    seconds = time.perf_counter() - start
    print(f"{data} | {loaded.path} | T={T} | {extractor.settings.describe()} | {seconds:.1f} s")
    print(f"ops: {ops.describe()}")
    print(format_table(summary))
    if out is not None:
        with out.stage() as stage:
            write_report(stage, summary, make_report(args, device, data, loaded.path, T, summary, seconds), Path(data).name)
        print(f"wrote {args.out / 'metrics.json'}, {args.out / 'psnr_per_frame.png'} and "
              f"{len(summary['kept'])} sample figures in {args.out / 'samples'}")
    return summary


def main(argv: Sequence[str] | None = None) -> dict:
    """Run the evaluation; returns the summary dict (see `b2v_rnn.inference.evaluate_clips`)."""
    raw = sys.argv[1:] if argv is None else list(argv)
    if "--suite" in raw:  # before parsing: the remaining options are the suite's, not these
        return suite.main([arg for arg in raw if arg != "--suite"])
    args = build_parser().parse_args(raw)
    check_options(args, raw)
    device = resolve_device(args.device)
    if args.out is not None:
        refuse_inputs_among_outputs([args.out / name for name in OUTPUTS], [args.data, args.checkpoint])
        check_writable(args.out)
    with locked_output(args.out) if args.out is not None else contextlib.nullcontext() as out:
        if out is not None:
            refuse_existing(out, args.overwrite)
        return run(args, device, out)


if __name__ == "__main__":
    run_main(main)
