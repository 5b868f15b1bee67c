"""Train b2v_rnn: φm and the recurrent generator G with teacher forcing (paper Table 1, Sec. 7).

    python -m b2v_rnn.train --T 7 --preset tiny --out runs/tiny        # minutes on a CPU
    python -m b2v_rnn.train --T 7 --train train.h5 --val val.h5 --out runs/gopro
    python -m b2v_rnn.train --out runs/gopro --resume                  # continue a run
    torchrun --nproc_per_node=4 -m b2v_rnn.train --T 7 --train ... --out runs/ddp

Without --train/--val the embedded synthetic train and val files are used (generated and
cached on first use, see `b2v_rnn.data.default_dataset`).

One step, stage "joint" (the paper's default, teacher forcing):
  1. φm: x̂[m] = φm(y), loss L_middle = MSE + λp · perceptual (Table 1, step 1).
  2. G is unrolled around the TRUE middle frame x[m] (teacher forcing), loss = the pair
     loss of every symmetric pair + λadv · the adversarial loss of every generated
     non-middle frame (Table 1, steps 2-3). Its graph does not touch φm, so both
     networks train at the same time, each with its own Adam optimiser.
  3. The discriminator D(y, frame) sees every true and every generated non-middle frame
     (generated ones detached) and steps its own Adam optimiser.
Stage "finetune" (start it from a joint run with --init) unrolls G around φm's prediction
instead, DETACHED: G learns to live with φm's errors, while φm keeps its own objective,
L_middle only (the pair loss never pulls φm toward what suits G).

Reproducibility: the order of samples and their augmentation are a function of (seed,
step) alone, so `--resume` continues exactly where the checkpoint stopped: N steps, then
M resumed, give the weights of N+M uninterrupted steps (CPU, same thread count).

Outputs under --out (only rank 0 writes): checkpoint.pt (latest), best.pt (best
validation sequence PSNR), train.csv (losses averaged over each --log-every interval),
val.csv (DESIGN §7 metrics), samples/step_NNNNNN.gif (blurry | predicted | true frames),
plots/psnr_step_NNNNNN.png (per-frame validation PSNR), tensorboard/ if installed.

Stopping: Ctrl-C (SIGINT) or SIGTERM (a scheduler's preemption) finishes the current step,
writes checkpoint.pt there and exits with 128 + the signal number; `--resume` then continues
as if nothing had happened. A second signal stops at once.
"""
from __future__ import annotations

import argparse
import csv
import math
import os
import random
import signal
import sys
import threading
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler
from tqdm import tqdm

from . import distributed, visualize
from .checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint, save_checkpoint
from .cli import CliError, HelpFormatter, add_device_arguments, check_T, run_main, set_threads
from .losses import (ADVERSARIAL_WEIGHT, GRADIENT_WEIGHT, PERCEPTUAL_WEIGHT, adversarial_discriminator_loss,
                     adversarial_generator_loss, middle_loss, sequence_losses)
from .metrics import MetricAverager, clip_metrics, psnr
from .models import build_discriminator, build_model, build_model_from_config, load_vgg16

# ----------------------------------------------------------------------------- configuration
# Per-preset defaults for what --preset leaves open. "paper": the paper's 320 px crops and
# batch 24 (Sec. 7). "tiny": the main job, a few minutes on 2 CPU cores with the embedded
# 96 px data, enough for a visible drop in loss and a sample GIF.
PRESET_DEFAULTS = {
    "paper": dict(crop=320, batch_size=24, max_steps=200_000, lr=1e-4, val_every=5000, log_every=100),
    "small": dict(crop=160, batch_size=16, max_steps=100_000, lr=2e-4, val_every=2000, log_every=50),
    "tiny": dict(crop=40, batch_size=4, max_steps=300, lr=1e-3, val_every=100, log_every=20),
}

# On --resume every option not typed on the command line is taken from the checkpoint.
# Changing these would change what the resumed run computes: a conflicting value is an error.
FIXED_ON_RESUME = ("preset", "T", "crop", "batch_size", "seed", "stage", "train", "val", "lr", "min_lr",
                   "adv_weight", "perceptual_weight", "gradient_weight", "decay_steps")

# Taken from the command line (or its defaults) even on --resume: where and how to run.
NOT_RESTORED = ("resume", "out", "overwrite", "init", "device", "num_workers", "no_progress", "threads", "fit_crop")
PATH_ARGS = ("train", "val", "vgg_weights", "init")

OUTPUTS = ("checkpoint.pt", "best.pt", "train.csv", "val.csv", "samples", "plots", "tensorboard")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m b2v_rnn.train", allow_abbrev=False,
                                description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter)
    p.add_argument("--T", type=int, default=7, help="frames per clip (odd, >= 3)")
    p.add_argument("--preset", choices=sorted(PRESET_DEFAULTS), default="paper", help="model size")
    p.add_argument("--train", type=Path, help="training HDF5 file (default: embedded synthetic train split)")
    p.add_argument("--val", type=Path, help="validation HDF5 file (default: embedded synthetic val split)")
    p.add_argument("--out", type=Path, default=Path("runs/b2v"), help="run folder")
    p.add_argument("--resume", nargs="?", const="auto", metavar="CKPT",
                   help="continue from CKPT (default: OUT/checkpoint.pt); other arguments default to the checkpoint's")
    p.add_argument("--init", type=Path, metavar="CKPT",
                   help="start from these weights (model and discriminator) with fresh optimisers and step 0, "
                        "e.g. a joint run for --stage finetune")
    p.add_argument("--overwrite", action="store_true", help="replace the outputs of an earlier run in --out")
    p.add_argument("--stage", choices=("joint", "finetune"), default="joint",
                   help="joint: G fed the true middle frame (teacher forcing); finetune: fed φm(y), detached")
    p.add_argument("--crop", type=int, help="square training crop, a multiple of 20 (preset default)")
    p.add_argument("--batch-size", type=int, help="samples per step per process (preset default)")
    p.add_argument("--max-steps", type=int, help="total optimisation steps (preset default)")
    p.add_argument("--lr", type=float, help="Adam learning rate of φm, G and D (preset default)")
    p.add_argument("--min-lr", type=float, default=0.1,
                   help="cosine decay to this fraction of --lr over --decay-steps (1 = constant)")
    p.add_argument("--decay-steps", type=int,
                   help="length of the cosine decay (default: --max-steps of the first start; a resumed run "
                        "with a larger --max-steps keeps it, and trains on at the final rate)")
    p.add_argument("--adv-weight", type=float, default=ADVERSARIAL_WEIGHT,
                   help="λadv, weight of G's hinge adversarial loss (0 = no discriminator)")
    p.add_argument("--perceptual-weight", type=float, default=PERCEPTUAL_WEIGHT,
                   help="λp, weight of the VGG16 perceptual term of L_middle (0 = MSE only)")
    p.add_argument("--gradient-weight", type=float, default=GRADIENT_WEIGHT,
                   help="weight of the image-gradient L1 term that replaces the perceptual one when no VGG16 "
                        "weights are found")
    p.add_argument("--vgg-weights", type=Path,
                   help="torchvision vgg16 state dict for the perceptual loss (else $B2V_VGG16 or the torch hub cache)")
    p.add_argument("--val-every", type=int, help="validate, write a sample and a checkpoint every N steps")
    p.add_argument("--val-samples", type=int, default=16, help="validation clips used (0 = all)")
    p.add_argument("--log-every", type=int, help="log averaged training losses every N steps")
    p.add_argument("--num-workers", type=int,
                   help="DataLoader worker processes per training process (default: 4 on CUDA, 0 on CPU, "
                        "where the cores are busy computing)")
    add_device_arguments(p)
    p.add_argument("--seed", type=int, default=0, help="seeds initialisation, data order and augmentation")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    return p


def explicit_options(parser: argparse.ArgumentParser, argv: Sequence[str]) -> set[str]:
    """Destinations of the options actually typed on the command line."""
    typed = {a.split("=", 1)[0] for a in argv if a.startswith("--")}
    return {a.dest for a in parser._actions if typed & set(a.option_strings)}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse, merge with a resumed checkpoint's arguments, fill preset defaults, validate."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.resume_state = None
    if args.resume is not None:
        path = args.out / "checkpoint.pt" if args.resume == "auto" else Path(args.resume)
        if not path.is_file():
            raise CliError(f"--resume: no checkpoint at {path} (nothing to resume; start without --resume)")
        try:
            state = load_checkpoint(path)
        except CheckpointError as e:
            raise CliError(f"--resume: {e}") from None
        if "args" not in state or "optimizers" not in state:
            raise CliError(f"--resume: {path} holds weights only, not a training state (use --init to start from it)")
        explicit = explicit_options(parser, argv)
        for key, old in state["args"].items():
            if key in NOT_RESTORED or not hasattr(args, key):
                continue
            new = getattr(args, key)
            new = str(new) if isinstance(new, Path) else new
            if key not in explicit:
                setattr(args, key, Path(old) if key in PATH_ARGS and old is not None else old)
            elif key in FIXED_ON_RESUME and new != old:
                raise CliError(f"--{key.replace('_', '-')} {new} differs from {old} in {path}; a resumed run "
                               "keeps the settings it started with (start a new run with --init instead)")
        args.resume_state, args.resume_path = state, path
    args.fit_crop = args.crop is None  # a preset crop may shrink to fit the data; a typed one may not
    for key, value in PRESET_DEFAULTS[args.preset].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.decay_steps is None:
        args.decay_steps = args.max_steps
    check_T(args.T)
    if args.crop % 20 or args.crop <= 0:
        raise CliError(f"--crop {args.crop}: must be a positive multiple of 20 (the model's size multiple)")
    for key in ("batch_size", "max_steps", "val_every", "log_every", "decay_steps"):
        if getattr(args, key) < 1:
            raise CliError(f"--{key.replace('_', '-')} {getattr(args, key)}: must be >= 1")
    if args.num_workers is None:
        args.num_workers = 4 if torch.cuda.is_available() and args.device != "cpu" else 0
    if args.num_workers < 0 or args.val_samples < 0:
        raise CliError("--num-workers and --val-samples must be >= 0")
    if args.lr <= 0 or not 0 < args.min_lr <= 1:
        raise CliError(f"--lr {args.lr} must be > 0 and --min-lr {args.min_lr} in (0, 1]")
    if min(args.adv_weight, args.perceptual_weight, args.gradient_weight) < 0:
        raise CliError("--adv-weight, --perceptual-weight and --gradient-weight must be >= 0")
    if args.init is not None and args.resume is not None:
        raise CliError("--init and --resume exclude each other (resume continues its own weights)")
    return args


def check_out(args: argparse.Namespace) -> None:
    """Refuse to mix with an earlier run unless resuming or --overwrite (writes nothing)."""
    out = args.out
    if out.exists() and not out.is_dir():
        raise CliError(f"--out {out}: exists and is not a folder")
    if args.resume is None and not args.overwrite and out.is_dir() and any(out.iterdir()):
        raise CliError(f"--out {out}: folder is not empty (an earlier run?); pass --resume to continue it "
                       "or --overwrite to replace its outputs")


def prepare_out(args: argparse.Namespace) -> None:
    """Create the run folder; --overwrite removes only the files this script writes (never
    anything else a user keeps in the folder)."""
    out = args.out
    if args.resume is None and args.overwrite and out.is_dir():
        for name in OUTPUTS:
            path = out / name
            if path.is_dir():
                for child in sorted(path.rglob("*"), reverse=True):
                    child.rmdir() if child.is_dir() else child.unlink()
                path.rmdir()
            elif path.exists():
                path.unlink()
    (out / "samples").mkdir(parents=True, exist_ok=True)
    (out / "plots").mkdir(exist_ok=True)


# ----------------------------------------------------------------------------- data
class StepSampler(Sampler):
    """Endless stream of (epoch, index) pairs; the data order is a function of (seed, step).

    Each epoch is a DistributedSampler permutation (seed, epoch) of this process's shard,
    cut to whole batches; the stream starts at `start_step` batches in, so a resumed run
    sees exactly the samples the uninterrupted run would have seen.
    """

    def __init__(self, n: int, batch_size: int, seed: int, rank: int, world_size: int, start_step: int = 0):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world_size, self.start_step = rank, world_size, start_step
        self.steps_per_epoch = (n // world_size) // batch_size
        if self.steps_per_epoch == 0:
            raise CliError(f"--batch-size {batch_size} x {world_size} process(es) exceeds the {n} training samples")

    def __iter__(self):
        epoch, offset = divmod(self.start_step, self.steps_per_epoch)
        while True:
            shard = DistributedSampler(range(self.n), num_replicas=self.world_size, rank=self.rank,
                                       shuffle=True, seed=self.seed, drop_last=True)
            shard.set_epoch(epoch)
            indices = list(shard)[: self.steps_per_epoch * self.batch_size]
            for index in indices[offset * self.batch_size:]:
                yield epoch, index
            epoch, offset = epoch + 1, 0


class EpochIndexed(Dataset):
    """dataset[(epoch, i)] = sample i with the augmentation draws of `epoch`."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        epoch, index = key
        self.dataset.set_epoch(epoch)
        return self.dataset[index]


def open_dataset(path: Path | None, split: str, T: int, crop, augment: bool, seed: int, ctx, log=None):
    """The HDF5 file (or the embedded synthetic split) as a BlurSequenceDataset. With `log`
    given, a crop larger than the frames shrinks to the largest multiple of 20 that fits."""
    from .data import BlurSequenceDataset, default_dataset, read_info
    from .data.errors import DataError

    try:
        if path is None:
            if ctx.is_main:
                path = default_dataset(split, T)
            distributed.barrier(ctx)  # the other ranks wait while rank 0 generates the cache
            path = default_dataset(split, T)
        if log is not None:
            info = read_info(path, T)
            fits = min(info.H, info.W) // 20 * 20
            if crop > fits > 0:
                log(f"note: the preset's {crop} px crop does not fit the {info.H}x{info.W} frames of {path}; "
                    f"training on {fits} px crops")
                crop = fits
        return BlurSequenceDataset(path, crop=crop, augment=augment, T=T, seed=seed)
    except (DataError, FileNotFoundError, ValueError) as e:
        raise CliError(f"--{split}: {e}") from None


# ----------------------------------------------------------------------------- model step
class TeacherForced(nn.Module):
    """φm and G in one forward, so DistributedDataParallel sees (and syncs) both.

    (y (B,3,H,W), x (B,T,3,H,W)) -> (x̂[m] (B,3,H,W), frames (B,T,3,H,W)); in "joint" the
    frames are unrolled around the true x[m], in "finetune" around φm's x̂[m], detached.
    """

    def __init__(self, model: nn.Module, stage: str):
        super().__init__()
        self.model, self.stage = model, stage

    def forward(self, y: torch.Tensor, x: torch.Tensor):
        T = x.shape[1]
        middle = self.model.middle(y)
        guide = x[:, T // 2] if self.stage == "joint" else middle.detach()
        return middle, self.model.unroll(y, guide, T)


def non_middle(frames: torch.Tensor) -> torch.Tensor:
    """(B, T, 3, H, W) -> (B·(T−1), 3, H, W): every frame but the middle one."""
    T = frames.shape[1]
    keep = [t for t in range(T) if t != T // 2]
    return frames[:, keep].flatten(0, 1)


def train_step(batch, net, disc, disc_module, vgg, optimizers, args, device, amp) -> dict[str, float]:
    """One optimisation step of φm, G and D; returns the losses as floats."""
    y = batch["blurry"].to(device, non_blocking=True)
    x = batch["sharp"].to(device, non_blocking=True)
    T = x.shape[1]
    for opt in optimizers.values():
        opt.zero_grad(set_to_none=True)
    with amp:
        middle, frames = net(y, x)
        # With --perceptual-weight 0 no substitute term either: L_middle is then the MSE alone.
        loss_mid = middle_loss(middle.float(), x[:, T // 2], vgg=vgg, perceptual_weight=args.perceptual_weight,
                               gradient_weight=args.gradient_weight if args.perceptual_weight > 0 else 0.0)
        loss_pair, per_step = sequence_losses(frames.float(), x)
        fake = non_middle(frames)
        y_rep = y.repeat_interleave(T - 1, dim=0)
        if args.adv_weight > 0:
            # G's adversarial term goes through the unwrapped D: its gradient on D's weights
            # is discarded (zeroed below), so no DDP gradient sync is wasted on it.
            loss_adv = adversarial_generator_loss(disc_module(y_rep, fake).float())
        else:
            loss_adv = torch.zeros((), device=device)
    (loss_mid + loss_pair + args.adv_weight * loss_adv).backward()
    optimizers["middle"].step()
    optimizers["generator"].step()

    loss_d = torch.zeros((), device=device)
    if args.adv_weight > 0:
        optimizers["discriminator"].zero_grad(set_to_none=True)
        real = non_middle(x)
        with amp:
            # Real and fake in one call: one DDP forward per backward.
            logits = disc(torch.cat([y_rep, y_rep]), torch.cat([real, fake.detach()])).float()
            loss_d = adversarial_discriminator_loss(*logits.chunk(2))
        loss_d.backward()
        optimizers["discriminator"].step()
    losses = {"loss_mid": loss_mid.item(), "loss_pair": loss_pair.item(), "loss_adv": loss_adv.item(),
              "loss_disc": loss_d.item()}
    losses.update({f"loss_pair_k{k + 1}": v for k, v in enumerate(per_step.tolist())})
    return losses


def lr_at(step: int, args) -> float:
    """Cosine decay from --lr to --min-lr·lr over --decay-steps (nanoGPT-style, no warm-up)."""
    progress = min(step / args.decay_steps, 1.0)
    return args.lr * (args.min_lr + (1 - args.min_lr) * 0.5 * (1 + math.cos(math.pi * progress)))


# ----------------------------------------------------------------------------- validation
@torch.no_grad()
def validate(model, val_set, T: int, device, amp, limit: int) -> tuple[dict, tuple]:
    """DESIGN §7 metrics of model.extract over the first `limit` validation clips (all if 0),
    plus the per-frame PSNR of the blurry input ("blurry_frame_psnr"); returns (summary,
    (blurry, prediction in the truth's direction, truth) of the first clip)."""
    model.eval()
    averager, blurry_frames, sample = MetricAverager(), np.zeros(T), None
    n = len(val_set) if limit == 0 else min(limit, len(val_set))
    for i in range(n):
        item = val_set[i]
        y, x = item["blurry"].to(device), item["sharp"].to(device)
        with amp:
            pred = model.extract(y[None], T)[0].float()
        metrics = clip_metrics(pred.cpu(), x.cpu(), y.cpu())
        averager.add(metrics)
        blurry_frames += [psnr(y.cpu(), f) for f in x.cpu()]
        if sample is None:
            shown = pred.flip(0) if metrics["seq_reversed"] else pred
            sample = (y.cpu(), shown.cpu(), x.cpu())
    model.train()
    summary = averager.summary()
    summary["blurry_frame_psnr"] = (blurry_frames / n).tolist()
    return summary, sample


class CsvLog:
    """Append rows to a CSV; on resume, rows past the checkpoint's step are dropped first
    (they belong to the part of the interrupted run that is being redone)."""

    def __init__(self, path: Path, resume_step: int | None):
        self.path, self.fields = path, None
        if resume_step is not None and path.is_file():
            with open(path, newline="") as f:
                rows = list(csv.DictReader(f))
            kept = [r for r in rows if int(r["step"]) <= resume_step]
            if rows:
                self.fields = list(rows[0].keys())
                tmp = path.with_suffix(".csv.tmp")
                with open(tmp, "w", newline="") as f:
                    w = csv.DictWriter(f, self.fields)
                    w.writeheader()
                    w.writerows(kept)
                os.replace(tmp, path)

    def write(self, row: dict) -> None:
        if self.fields is None:
            self.fields = list(row.keys())
            with open(self.path, "w", newline="") as f:
                csv.DictWriter(f, self.fields).writeheader()
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.fields, extrasaction="ignore").writerow(row)


def tensorboard_writer(out: Path):
    """A TensorBoard SummaryWriter if the tensorboard package is installed, else None."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(out / "tensorboard"))


# ----------------------------------------------------------------------------- checkpoints
def rng_state() -> dict:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": list(random.getstate()[1]) + [random.getstate()[0], random.getstate()[2]],
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    python = state["python"]
    random.setstate((python[-2], tuple(python[:-2]), python[-1]))


def training_state(model, disc, optimizers, step: int, args, best: float, world_size: int) -> dict:
    saved_args = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                  if k not in ("resume_state", "resume_path")}
    return {
        "model": model.state_dict(), "model_config": model.config, "T": args.T,
        "discriminator": disc.state_dict(), "discriminator_config": disc.config,
        "optimizers": {name: opt.state_dict() for name, opt in optimizers.items()},
        "step": step, "best_seq_psnr": best, "args": saved_args, "rng": rng_state(),
        "sampler": {"seed": args.seed, "step": step, "batch_size": args.batch_size, "world_size": world_size},
    }


class StopSignal:
    """Context manager: SIGINT or SIGTERM sets ``received`` (the signal's number) instead of
    killing the process mid-step, so the loop can save a consistent checkpoint and stop; a
    second signal raises KeyboardInterrupt at once. Previous handlers are restored on exit.
    Signal handlers can only be set from the main thread; elsewhere this does nothing."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict = {}

    def _handle(self, signum, frame) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signum
        tqdm.write(f"{signal.Signals(signum).name}: stopping after this step (again to stop at once)")

    def __enter__(self) -> "StopSignal":
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def leave_stop_signals_to_main(worker_id: int) -> None:
    """DataLoader workers ignore SIGINT/SIGTERM: a Ctrl-C or a scheduler signals the whole
    process group, and a worker killed by it would take the step in flight down with it
    ("DataLoader worker exited unexpectedly") before :class:`StopSignal` could save."""
    for sig in StopSignal.SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


# ----------------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> dict:
    """Train; returns {"model", "discriminator", "step", "val", "stopped_by"} for tests and
    notebooks: "val" is the last validation summary, "stopped_by" the number of the signal that
    stopped the run early (checkpoint.pt is then saved at "step"), else None."""
    args = parse_args(argv)
    set_threads(args.threads)
    ctx = distributed.setup(args.device)
    try:
        with StopSignal() as stop:
            return _train(args, ctx, stop)
    finally:
        distributed.cleanup(ctx)


def _train(args, ctx, stop: StopSignal) -> dict:
    device, log = ctx.device, (print if ctx.is_main else (lambda *a, **k: None))
    if args.amp and device.type != "cuda":
        raise CliError(f"--amp is bfloat16 autocast on CUDA; the device is {device}")
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if args.amp else nullcontext()
    resume = args.resume_state
    check_out(args)
    distributed.barrier(ctx)  # every rank checked before rank 0 creates anything

    # Same seed on every rank: identical initial weights (DDP also broadcasts rank 0's).
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    train_set = open_dataset(args.train, "train", args.T, args.crop, True, args.seed, ctx,
                             log=log if args.fit_crop else None)
    args.crop = train_set.crop[0]
    val_set = open_dataset(args.val, "val", args.T, None, False, args.seed, ctx)

    model = build_model(args.preset).to(device)
    disc = build_discriminator(args.preset).to(device)
    try:
        vgg = load_vgg16(args.vgg_weights) if args.perceptual_weight > 0 else None
    except (FileNotFoundError, ValueError) as e:
        raise CliError(f"--vgg-weights: {e}") from None
    vgg = vgg.to(device) if vgg is not None else None
    optimizers = {
        "middle": torch.optim.Adam(model.middle.parameters(), lr=args.lr, betas=(0.9, 0.999)),
        "generator": torch.optim.Adam(model.generator.parameters(), lr=args.lr, betas=(0.9, 0.999)),
        "discriminator": torch.optim.Adam(disc.parameters(), lr=args.lr, betas=(0.5, 0.999)),
    }

    step, best = 0, -math.inf
    if args.init is not None:
        try:
            state = load_checkpoint(args.init)
            model.load_state_dict(model_from_checkpoint(state, args.init).state_dict())
            if "discriminator" in state:
                disc.load_state_dict(build_model_from_config(state["discriminator_config"],
                                                             state["discriminator"]).state_dict())
        except (CheckpointError, ValueError, RuntimeError) as e:
            raise CliError(f"--init: {e}") from None
        log(f"initialised from {args.init}")
    if resume is not None:
        try:
            model.load_state_dict(model_from_checkpoint(resume, args.resume_path).state_dict())
            disc.load_state_dict(resume["discriminator"])
            for name, opt in optimizers.items():
                opt.load_state_dict(resume["optimizers"][name])
        except (CheckpointError, ValueError, RuntimeError, KeyError) as e:
            raise CliError(f"--resume {args.resume_path}: {e}") from None
        step, best = resume["step"], resume.get("best_seq_psnr", -math.inf)
        set_rng_state(resume["rng"])
        log(f"resumed from {args.resume_path} at step {step}")
        saved_world = resume["sampler"].get("world_size", 1)
        if saved_world != ctx.world_size:
            log(f"note: the run was saved with {saved_world} process(es), it resumes with {ctx.world_size}: "
                "the data order from here on differs from an uninterrupted run")

    net = TeacherForced(model, args.stage)
    disc_ddp = disc
    if ctx.distributed:
        ids = [device.index] if device.type == "cuda" else None
        net = DistributedDataParallel(net, device_ids=ids)
        disc_ddp = DistributedDataParallel(disc, device_ids=ids)

    if ctx.is_main:  # only now that every input has been checked
        prepare_out(args)
    distributed.barrier(ctx)
    sampler = StepSampler(len(train_set), args.batch_size, args.seed, ctx.rank, ctx.world_size, start_step=step)
    loader = DataLoader(EpochIndexed(train_set), batch_size=args.batch_size, sampler=sampler,
                        num_workers=args.num_workers, pin_memory=device.type == "cuda", drop_last=True,
                        persistent_workers=args.num_workers > 0, worker_init_fn=leave_stop_signals_to_main)

    n_params = {k: sum(p.numel() for p in m.parameters()) for k, m in
                (("middle", model.middle), ("generator", model.generator), ("disc", disc))}
    from .ops import backend
    log(f"b2v_rnn.train | preset {args.preset} | T={args.T} | stage {args.stage} | device {device} x "
        f"{ctx.world_size} | ops backend {backend()} | amp {'bf16' if args.amp else 'off'}")
    log(f"params: φm {n_params['middle'] / 1e6:.3f} M, G {n_params['generator'] / 1e6:.3f} M, "
        f"D {n_params['disc'] / 1e6:.3f} M")
    log(f"train: {train_set.path} ({len(train_set)} clips, crop {args.crop}, batch {args.batch_size} x "
        f"{ctx.world_size}) | val: {val_set.path} ({len(val_set)} clips, using "
        f"{args.val_samples or len(val_set)})")
    if args.perceptual_weight == 0:
        middle_terms = "MSE only (--perceptual-weight 0)"
    elif vgg is not None:
        middle_terms = f"MSE + {args.perceptual_weight} x VGG16 perceptual (relu2_2, relu3_3)"
    else:
        middle_terms = f"MSE + {args.gradient_weight} x gradient-L1 substitute (NO VGG16 weights: no perceptual loss)"
    log(f"losses: L_middle = {middle_terms}; G: pair loss (eq. 5) + {args.adv_weight} x hinge adversarial")

    if device.type == "cpu" and hasattr(os, "getloadavg") and "OMP_WAIT_POLICY" not in os.environ:
        load, cores = os.getloadavg()[0], os.cpu_count() or 1
        if load > cores:
            # Measured: on 2 busy cores, spinning OpenMP threads made a tiny step 26x slower.
            log(f"note: load average {load:.1f} on {cores} cores; other processes compete for the CPU. If steps "
                "are slow, set OMP_WAIT_POLICY=PASSIVE in the environment or pass --threads 1")
    train_csv = CsvLog(args.out / "train.csv", step if resume else None) if ctx.is_main else None
    val_csv = CsvLog(args.out / "val.csv", step if resume else None) if ctx.is_main else None
    tb = tensorboard_writer(args.out) if ctx.is_main else None
    last_val: dict = {}
    sums: dict[str, float] = {}
    interval_start, interval_steps = time.perf_counter(), 0
    bar = tqdm(total=args.max_steps, initial=step, desc="train", unit="step", dynamic_ncols=True,
               disable=args.no_progress or not ctx.is_main)
    data = iter(loader)
    model.train()
    disc.train()
    stopped_by = None
    while step < args.max_steps:
        lr = lr_at(step, args)
        for opt in optimizers.values():
            for group in opt.param_groups:
                group["lr"] = lr
        losses = train_step(next(data), net, disc_ddp, disc, vgg, optimizers, args, device, amp)
        step += 1
        interval_steps += 1
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + v
        bar.update(1)

        if step % args.log_every == 0 or step == args.max_steps:
            mean = distributed.mean_over_ranks({k: v / interval_steps for k, v in sums.items()}, ctx)
            elapsed = time.perf_counter() - interval_start
            rate = interval_steps * args.batch_size * ctx.world_size / elapsed
            if ctx.is_main:
                row = {"step": step, **{k: f"{v:.6g}" for k, v in mean.items()}, "lr": f"{lr:.4g}",
                       "samples_per_s": f"{rate:.3g}"}
                train_csv.write(row)
                bar.set_postfix(mid=f"{mean['loss_mid']:.4f}", pair=f"{mean['loss_pair']:.4f}")
                tqdm.write(f"step {step:>7d} | mid {mean['loss_mid']:.5f} pair {mean['loss_pair']:.5f} "
                           f"adv {mean['loss_adv']:.4f} disc {mean['loss_disc']:.4f} | lr {lr:.3g} | "
                           f"{rate:.1f} samples/s")
                if tb is not None:
                    for k, v in mean.items():
                        tb.add_scalar(f"train/{k}", v, step)
            sums, interval_start, interval_steps = {}, time.perf_counter(), 0

        validated = step % args.val_every == 0 or step == args.max_steps
        if validated:
            if ctx.is_main:
                t0 = time.perf_counter()
                last_val, (y, pred, truth) = validate(model, val_set, args.T, device, amp, args.val_samples)
                tag = f"step_{step:06d}"
                visualize.save_gif(visualize.side_by_side(y, pred, truth), args.out / "samples" / f"{tag}.gif")
                visualize.plot_psnr_per_frame(
                    {"prediction": last_val["frame_psnr"], "blurry input": last_val["blurry_frame_psnr"]},
                    args.out / "plots" / f"psnr_{tag}.png", title=f"val psnr per frame, step {step}")
                scalars = {k: v for k, v in last_val.items() if not isinstance(v, list)}
                val_csv.write({"step": step, **{k: f"{v:.6g}" for k, v in scalars.items()}})
                if tb is not None:
                    for k, v in scalars.items():
                        tb.add_scalar(f"val/{k}", v, step)
                tqdm.write(f"val {step:>7d} | middle PSNR {last_val['middle_psnr']:.2f} dB (blurry "
                           f"{last_val['blurry_psnr']:.2f}, gain {last_val['middle_psnr_gain']:+.2f}) SSIM "
                           f"{last_val['middle_ssim']:.4f} | seq PSNR {last_val['seq_psnr']:.2f} | PWPSNR "
                           f"{last_val['pwpsnr']:.2f} | consistency {last_val['consistency_psnr']:.2f} | "
                           f"{time.perf_counter() - t0:.1f} s")
                state = training_state(model, disc, optimizers, step, args, max(best, last_val["seq_psnr"]),
                                       ctx.world_size)
                save_checkpoint(state, args.out / "checkpoint.pt")
                if last_val["seq_psnr"] > best:
                    best = last_val["seq_psnr"]
                    save_checkpoint(state, args.out / "best.pt")
            distributed.barrier(ctx)
            interval_start = time.perf_counter()  # validation time is not training throughput

        stopped_by = distributed.max_over_ranks(stop.received or 0, ctx) or None
        if stopped_by is not None:
            if ctx.is_main and not validated:  # a validation step has just saved this step's checkpoint
                save_checkpoint(training_state(model, disc, optimizers, step, args, best, ctx.world_size),
                                args.out / "checkpoint.pt")
            distributed.barrier(ctx)
            break
    bar.close()
    if tb is not None:
        tb.close()
    if step >= args.max_steps:
        stopped_by = None  # a signal during the last step: the run is complete all the same
    if ctx.is_main:
        log(f"stopped at step {step}: checkpoint.pt saved; continue with --resume --out {args.out}"
            if stopped_by is not None else f"done: {step} steps; outputs in {args.out}")
    return {"model": model, "discriminator": disc, "step": step, "val": last_val, "stopped_by": stopped_by}


def command(argv: Sequence[str] | None = None) -> None:
    """`python -m b2v_rnn.train`: :func:`main`, exiting with 128 + the signal number when a
    signal stopped the run, as a process killed by it would (schedulers tell it from a finished run)."""
    stopped_by = main(argv)["stopped_by"]
    if stopped_by is not None:
        sys.exit(128 + stopped_by)


if __name__ == "__main__":
    run_main(command)
