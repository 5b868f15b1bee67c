"""Loss/structure ablation of paper Sec. 7 (Fig. 4) on synthetic data, at a small scale.

Trains three variants with one budget (steps, batch, crop, data and its order, Adam and its
learning rate, network widths) and evaluates each on a held-out split:

  (a) T independent networks φ_i(y), an L2 loss per frame (the naive approach);
  (b) the pairwise ordering-invariant loss without recurrence: a pair of networks per step k;
  (c) the project's recurrent generator (BlurToVideo) with teacher forcing.

(see ``bench/ablation_variants.py``). No adversarial or perceptual term anywhere. Scores are
the project's metrics (:mod:`b2v_rnn.metrics`): middle PSNR and the order-invariant PSNR of
each symmetric pair k, for every variant and for the "repeat the blurry image" baseline, with
φm(y) as the middle frame and, for (b) and (c), also with the true x[m] given.

    python bench/ablation.py --steps 300 --batch 6 --crop 60 --T 7 --out runs/ablation --seed 0

Writes ``ablation.json``, ``ablation.md`` and ``ablation_psnr_per_step.png`` to ``--out``.
Deterministic by seed (CPU).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ablation_variants import VARIANTS, build_variant  # noqa: E402

from b2v_rnn import ops  # noqa: E402
from b2v_rnn.data import NO_AUGMENT, BlurSequenceDataset, default_dataset  # noqa: E402
from b2v_rnn.losses import PAIR_LOSSES  # noqa: E402
from b2v_rnn.metrics import MetricAverager, clip_metrics  # noqa: E402
from b2v_rnn.errors import check_T  # noqa: E402
from b2v_rnn.models import PRESETS  # noqa: E402
from b2v_rnn.visualize import plot_psnr_per_frame  # noqa: E402

BASELINE = "repeat y"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=300, help="optimiser steps per variant")
    p.add_argument("--batch", type=int, default=6, help="batch size")
    p.add_argument("--crop", type=int, default=60, help="training crop size (pixels)")
    p.add_argument("--T", type=int, default=7, help="frames per blurry image (odd)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate, constant (the tiny preset's)")
    p.add_argument("--preset", default="tiny", choices=sorted(PRESETS), help="network widths of every variant")
    p.add_argument("--train", type=Path, help="training HDF5 file (default: the embedded synthetic train split)")
    p.add_argument("--val", type=Path,
                   help="held-out HDF5 file, evaluated at full size (default: the synthetic val split, another seed)")
    p.add_argument("--pair-loss", default="eq5", choices=PAIR_LOSSES,
                   help="pair loss of variants (b) and (c): eq5 is the paper's comparison, patch_mse the project's default")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights, the batch order and the augmentation")
    p.add_argument("--threads", type=int,
                   help="torch CPU threads (default: torch's); 1 is far faster on a machine shared with other jobs")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    check_T(args.T)
    if args.steps < 1 or args.batch < 1 or args.crop < 1 or args.lr <= 0 or (args.threads or 1) < 1:
        p.error(f"--steps {args.steps}, --batch {args.batch}, --crop {args.crop}, --lr {args.lr} and "
                f"--threads {args.threads} must be positive")
    return args


def batches(dataset: BlurSequenceDataset, batch: int, seed: int):
    """Endless training batches, reshuffled every epoch; the same sequence for every variant."""
    order = torch.Generator().manual_seed(seed)
    epoch = 0
    while True:
        dataset.set_epoch(epoch)
        yield from DataLoader(dataset, batch_size=batch, shuffle=True, drop_last=True, generator=order)
        epoch += 1


def train(model: torch.nn.Module, dataset: BlurSequenceDataset, args: argparse.Namespace, label: str) -> dict:
    """``args.steps`` Adam steps on ``model.loss``; returns wall time and the loss at the start and end."""
    optimiser = torch.optim.Adam(model.parameters(), lr=args.lr)
    model.train()
    losses = []
    stream = batches(dataset, args.batch, args.seed)
    start = time.perf_counter()
    with tqdm(range(args.steps), desc=label, disable=args.no_progress, dynamic_ncols=True) as bar:
        for _ in bar:
            batch = next(stream)
            loss = model.loss(batch["blurry"], batch["sharp"])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
    wall = time.perf_counter() - start
    window = max(1, min(20, len(losses) // 5))
    return {
        "train_wall_s": wall,
        "s_per_step": wall / args.steps,
        "loss_first": sum(losses[:window]) / window,
        "loss_last": sum(losses[-window:]) / window,
    }


@torch.no_grad()
def evaluate(model: torch.nn.Module | None, dataset: BlurSequenceDataset, T: int, given_middle: bool = False) -> dict:
    """Mean :func:`clip_metrics` over ``dataset``; ``model`` None scores the blurry image repeated T times.

    ``given_middle``: the frames come from ``model.unroll(y, x[m])`` instead of ``model.extract(y)``.
    """
    if model is not None:
        model.eval()
    m = (T - 1) // 2
    averager = MetricAverager()
    for batch in DataLoader(dataset, batch_size=8):
        y, sharp = batch["blurry"], batch["sharp"]
        if model is None:
            frames = y.unsqueeze(1).expand(-1, T, -1, -1, -1)
        elif given_middle:
            frames = model.unroll(y, sharp[:, m])
        else:
            frames = model.extract(y)
        for pred, true, blurry in zip(frames, sharp, y):
            averager.add(clip_metrics(pred, true, blurry))
    return averager.summary()


def per_step(summary: dict, T: int) -> list[float]:
    """[middle PSNR, pair PSNR k=1, ..., k=K] of an evaluation summary."""
    return [summary["middle_psnr"]] + [summary[f"pair_psnr_k{k}"] for k in range(1, (T - 1) // 2 + 1)]


def mirrored(values: list[float]) -> list[float]:
    """Per-step values [k=0..K] laid out over frames 1..T: frames m−k and m+k both get step k."""
    return values[:0:-1] + values


def markdown(results: dict) -> str:
    T = results["config"]["T"]
    K = (T - 1) // 2
    steps = " | ".join(f"k={k}" for k in range(1, K + 1))
    lines = [
        "Order-invariant PSNR (dB) per step k on the held-out split, middle frame from φm(y); "
        f"{results['config']['steps']} steps × batch {results['config']['batch']} at "
        f"{results['config']['crop']}px per variant.",
        "",
        f"| variant | parameters | train wall (s) | s/step | middle | {steps} | seq PSNR |",
        "|---|---:|---:|---:|---:|" + "---:|" * K + "---:|",
    ]
    for name, r in results["variants"].items():
        values = " | ".join(f"{v:.2f}" for v in r["psnr_per_step"])
        lines.append(f"| {r['label']} | {r['parameters']:,} | {r['train_wall_s']:.0f} | {r['s_per_step']:.2f} | "
                     f"{values} | {r['eval']['seq_psnr']:.2f} |")
    base = results["baseline"]
    values = " | ".join(f"{v:.2f}" for v in base["psnr_per_step"])
    lines.append(f"| {BASELINE} (y for every frame) | – | – | – | {values} | {base['eval']['seq_psnr']:.2f} |")
    lines += [
        "",
        f"Gain over {BASELINE} (dB): the baseline itself falls away from the middle, so the gain is what to compare:",
        "",
        f"| variant | middle | {steps} |",
        "|---|---:|" + "---:|" * K,
    ]
    for name, r in results["variants"].items():
        gains = " | ".join(f"{v - b:+.2f}" for v, b in zip(r["psnr_per_step"], base["psnr_per_step"]))
        lines.append(f"| {r['label']} | {gains} |")
    patch = lambda summary: [summary[f"patch_pair_psnr_k{k}"] for k in range(1, K + 1)]  # noqa: E731
    lines += [
        "",
        "Per-patch pair PSNR (each 16 px patch takes its own order: every moving layer's direction is "
        "ambiguous on its own), gain over repeat y (dB), and the signed-direction correlation "
        "against its shuffled control:",
        "",
        f"| variant | {steps} | direction corr. {steps} |",
        "|---|" + "---:|" * (2 * K),
    ]
    for name, r in results["variants"].items():
        gains = " | ".join(f"{v - b:+.2f}" for v, b in zip(patch(r["eval"]), patch(base["eval"])))
        corr = " | ".join(f"{r['eval'][f'direction_corr_k{k}']:.2f} ({r['eval'][f'direction_corr_shuffled_k{k}']:.2f})"
                          for k in range(1, K + 1))
        lines.append(f"| {r['label']} | {gains} | {corr} |")
    lines += [
        "",
        "Given the true middle frame x[m] instead of φm(y) (isolates the non-middle networks):",
        "",
        f"| variant | {steps} |",
        "|---|" + "---:|" * K,
    ]
    for name, r in results["variants"].items():
        if "psnr_per_step_given_middle" in r:
            values = " | ".join(f"{v:.2f}" for v in r["psnr_per_step_given_middle"][1:])
            lines.append(f"| {r['label']} | {values} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return run(args)
    finally:
        torch.set_num_threads(threads)


def run(args: argparse.Namespace) -> dict:
    T = args.T
    train_path = args.train or default_dataset("train", T)
    val_path = args.val or default_dataset("val", T)
    train_set = BlurSequenceDataset(train_path, crop=args.crop, augment=True, T=T, seed=args.seed)
    val_set = BlurSequenceDataset(val_path, crop=None, augment=NO_AUGMENT, T=T)
    sizes = PRESETS[args.preset]
    args.out.mkdir(parents=True, exist_ok=True)

    results: dict = {
        "config": {**{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                   "train": str(train_path), "val": str(val_path), "val_clips": len(val_set),
                   "val_size": [val_set.info.H, val_set.info.W]},
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__, "ops_backend": ops.backend()},
        "variants": {},
    }
    base = evaluate(None, val_set, T)
    results["baseline"] = {"psnr_per_step": per_step(base, T), "eval": base}
    for name in VARIANTS:
        model = build_variant(name, T, sizes, args.seed, args.pair_loss)
        record = {"label": model.label, "short": model.short, "parameters": sum(p.numel() for p in model.parameters())}
        record.update(train(model, train_set, args, model.label))
        start = time.perf_counter()
        summary = evaluate(model, val_set, T)
        record.update(psnr_per_step=per_step(summary, T), eval=summary)
        if model.uses_middle:
            given = evaluate(model, val_set, T, given_middle=True)
            record.update(psnr_per_step_given_middle=per_step(given, T), eval_given_middle=given)
        record["eval_wall_s"] = time.perf_counter() - start
        results["variants"][name] = record

    for record in [results["baseline"], *results["variants"].values()]:
        for value in record["psnr_per_step"]:
            if not math.isfinite(value):
                raise RuntimeError(f"non-finite PSNR in the results: {record['psnr_per_step']}")
    (args.out / "ablation.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "ablation.md").write_text(markdown(results))
    series = {r["short"]: mirrored(r["psnr_per_step"]) for r in results["variants"].values()}
    series[BASELINE] = mirrored(results["baseline"]["psnr_per_step"])
    plot_psnr_per_frame(series, args.out / "ablation_psnr_per_step.png",
                        title="ORDER-INVARIANT PSNR OF PAIR K (FRAMES M-K AND M PLUS K)")
    print(markdown(results))
    return results


if __name__ == "__main__":
    main()
