"""The command line of `python -m b2v_rnn.train`: options, preset defaults, resumed settings,
built once into a frozen :class:`~b2v_rnn.training.config.TrainingConfig` (:func:`parse_args`)."""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import NamedTuple, Sequence

import torch

from ..checkpoint import load_checkpoint
from ..cli import HelpFormatter, add_device_arguments
from ..data.photos import PhotoFolder
from ..errors import UserError, check_gate, check_T
from ..losses import ADVERSARIAL_WEIGHT, DEFAULT_PAIR_LOSS, GRADIENT_WEIGHT, PAIR_LOSSES, PAIR_PATCH, PERCEPTUAL_WEIGHT
from .config import PATH_FIELDS, Resume, TrainingConfig

# Per-preset defaults for what --preset leaves open. "paper": the paper's 320 px crops and
# batch 24 (Sec. 7). "tiny": the main job, a few minutes on 2 CPU cores with the embedded
# 96 px data, enough for a visible drop in loss and a sample GIF.
PRESET_DEFAULTS = {
    "paper": dict(crop=320, batch_size=24, max_steps=200_000, lr=1e-4, val_every=5000, log_every=100),
    "small": dict(crop=160, batch_size=16, max_steps=100_000, lr=2e-4, val_every=2000, log_every=50),
    "tiny": dict(crop=40, batch_size=4, max_steps=300, lr=1e-3, val_every=100, log_every=20),
}
PRESET_COST = {
    "paper": "φm 4.9 M + G 2.7 M parameters; ~1 min per step on 2 CPU cores, for GPUs",
    "small": "φm 0.69 M + G 0.55 M; seconds per step on a CPU",
    "tiny": "φm 68 k + G 83 k; the few-minute CPU run",
}
"""The parameter counts are those the training log prints (tests/test_train.py compares them)."""
AUTO_PRESET = {"cuda": "paper", "cpu": "tiny"}
"""The preset when --preset is not given: the paper's widths need a GPU (on 2 CPU cores a
step takes about a minute and 7 GB), so a CPU gets the preset that finishes in minutes."""

# On --resume every option not typed on the command line is taken from the checkpoint.
# Changing these would change what the resumed run computes: a conflicting value is an error.
FIXED_ON_RESUME = ("preset", "T", "crop", "batch_size", "seed", "stage", "train", "val", "lr", "min_lr",
                   "adv_weight", "perceptual_weight", "gradient_weight", "decay_steps", "pair_loss", "pair_patch",
                   "generator_lr")

# Taken from the command line (or its defaults) even on --resume: where and how to run.
NOT_RESTORED = ("resume", "out", "overwrite", "init", "init_partial", "device", "num_workers", "no_progress", "threads", "fit_crop",
                "loader", "memory_format", "save_every", "save_minutes", "amp", "preset_auto")


class Start(NamedTuple):
    """What :func:`parse_args` returns: the frozen config, and the state to resume (None
    for a fresh start)."""

    config: TrainingConfig
    resume: Resume | None


def _preset_help() -> str:
    lines = [f"{name}: {PRESET_COST[name]}; crop {d['crop']}, batch {d['batch_size']}, {d['max_steps']:,} steps, "
             f"lr {d['lr']:g}" for name, d in PRESET_DEFAULTS.items()]
    return ("model size and its training defaults (default: paper on a GPU, tiny on a CPU). " + " | ".join(lines))


DESCRIPTION = "Train b2v_rnn: φm and the recurrent generator G with teacher forcing (paper Table 1, Sec. 7)."
"""The first line of `b2v_rnn.train`'s docstring (tests/test_train.py checks they agree); kept
here so that this module never imports the command that imports it."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m b2v_rnn.train", allow_abbrev=False, description=DESCRIPTION,
                                formatter_class=HelpFormatter)
    p.add_argument("--T", type=int, default=7, help="frames per clip (odd, >= 3)")
    p.add_argument("--preset", choices=sorted(PRESET_DEFAULTS), help=_preset_help())
    p.add_argument("--train", type=Path, help="training HDF5 file (default: embedded synthetic train split)")
    p.add_argument("--val", type=Path, help="validation HDF5 file (default: embedded synthetic val split)")
    p.add_argument("--out", type=Path, default=Path("runs/b2v"), help="run folder")
    p.add_argument("--resume", nargs="?", const="auto", metavar="CKPT",
                   help="continue from CKPT (default: OUT/checkpoint.pt); other arguments default to the checkpoint's")
    p.add_argument("--init", type=Path, metavar="CKPT",
                   help="start from these weights with fresh optimisers and step 0 (e.g. a joint run for --stage "
                        "finetune); each network whose architecture differs from this run's starts fresh instead")
    p.add_argument("--init-partial", action="store_true",
                   help="with --init: in a network whose architecture differs, still load every tensor whose name "
                        "and shape match (e.g. φm's trunk under a new output head); the log counts them")
    p.add_argument("--overwrite", action="store_true", help="replace the outputs of an earlier run in --out")
    p.add_argument("--stage", choices=("joint", "finetune"), default="joint",
                   help="joint: G fed the true middle frame (teacher forcing); finetune: fed φm(y), detached")
    p.add_argument("--crop", type=int, help="square training crop, a multiple of 20 (default: the preset's, see --preset)")
    p.add_argument("--batch-size", type=int, help="samples per step per process (default: the preset's)")
    p.add_argument("--max-steps", type=int,
                   help="total optimisation steps (default: the preset's; with --minutes, no step limit)")
    p.add_argument("--minutes", type=float,
                   help="wall-clock budget of the training loop: the learning-rate decay is spread over it, "
                        "and the run validates and saves when it is spent (resumed runs count earlier time)")
    p.add_argument("--lr", type=float, help="Adam learning rate of φm, G and D (default: the preset's)")
    p.add_argument("--generator-lr", type=float,
                   help="G's own learning rate, e.g. higher than φm's when φm starts from trained weights "
                        "(default: --lr); it follows the same schedule")
    p.add_argument("--min-lr", type=float, default=0.1,
                   help="cosine decay to this fraction of --lr over --decay-steps (1 = constant)")
    p.add_argument("--decay-steps", type=int,
                   help="length of the cosine decay (default: --max-steps of the first start; a resumed run "
                        "with a larger --max-steps keeps it, and trains on at the final rate)")
    p.add_argument("--pair-loss", choices=PAIR_LOSSES, default=DEFAULT_PAIR_LOSS,
                   help="G's order-invariant pair loss: patch_mse / patch_charbonnier choose, per --pair-patch "
                        "square, the better of the two assignments of the pair (so G can learn a direction); "
                        "eq5 is the paper's per-pixel form, kept for the ablation")
    p.add_argument("--pair-patch", type=int, default=PAIR_PATCH, help="patch side p of the per-patch pair losses")
    p.add_argument("--loss-domain", choices=("linear", "log"), default="linear",
                   help="linear: mean squared errors over the batch; log: the mean of each sample's log error "
                        "(b2v_rnn.losses.log_domain: every sample's PSNR counts, so sharp inputs are not traded "
                        "for blurred ones)")
    p.add_argument("--adv-weight", type=float, default=0.0,
                   help=f"λadv, weight of G's hinge adversarial loss (0 = no discriminator). Off by default: at "
                        f"the paper's {ADVERSARIAL_WEIGHT} the hinge term is as large as the per-patch MSE pair loss "
                        "and, once D wins, it pulled k=3 from +0.04 to -0.24 dB in CPU runs (bench/ABLATION.md); "
                        "try ~1e-3 when D's term should stay well below the pair loss")
    p.add_argument("--perceptual-weight", type=float, default=PERCEPTUAL_WEIGHT,
                   help="λp, weight of the VGG16 perceptual term of L_middle (0 = MSE only)")
    p.add_argument("--gradient-weight", type=float, default=GRADIENT_WEIGHT,
                   help="weight of the image-gradient L1 term that replaces the perceptual one when no VGG16 "
                        "weights are found")
    p.add_argument("--vgg-weights", type=Path,
                   help="torchvision vgg16 state dict for the perceptual loss (else $B2V_VGG16 or the torch hub cache)")
    p.add_argument("--val-every", type=int,
                   help="validate, write a sample and a checkpoint every N steps (default: the preset's)")
    p.add_argument("--val-samples", type=int, default=16, help="validation clips used (0 = all)")
    p.add_argument("--select", choices=("patch_seq_psnr", "suite"), default="patch_seq_psnr",
                   help="what best.pt is chosen by: the validation clips' per-patch sequence PSNR, or the "
                        "do-no-harm suite's worst family (b2v_rnn/suite.py, rendered with seed 1, which the "
                        "suite's reports do not use)")
    p.add_argument("--suite-scenes", type=int, default=4, help="scenes per family of --select suite")
    p.add_argument("--suite-photos", type=Path,
                   help="photographs of --select suite (default: the embedded held-out scikit-image ones)")
    p.add_argument("--still-gate", type=float, metavar="TAU",
                   help="the model's still gate (BlurToVideo.still_gate, 0 = off; default: the --init "
                        "checkpoint's, else off)")
    p.add_argument("--noise-std", type=float, default=0.01,
                   help="std of the Gaussian noise added to each training y (the paper's 1%%; 0 = off). Noise in y "
                        "but not in its sharp frames teaches the networks to denoise, so they also change a clean "
                        "sharp photograph")
    p.add_argument("--noise-share", type=float, default=1.0, metavar="P",
                   help="share of training samples whose y gets --noise-std's noise (default 1: every one); the "
                        "rest keep a clean y, on which a sharp photograph's right answer is itself")
    p.add_argument("--middle-gate", type=float, metavar="TAU",
                   help="the model's middle gate (BlurToVideo.middle_gate: phi_m's corrections smaller than TAU "
                        "are dropped; 0 = off; default: the --init checkpoint's, else off)")
    p.add_argument("--frame-gate", type=float, metavar="TAU",
                   help="the model's frame gate (BlurToVideo.frame_gate: G's changes from the middle frame smaller "
                        "than TAU are dropped; 0 = off; default: the --init checkpoint's, else off)")
    p.add_argument("--sharp-gate", type=float, metavar="TAU",
                   help="the model's sharp gate (BlurToVideo.sharp_gate: phi_m's corrections are dropped where the "
                        "input's edges are already sharper than TAU; 0 = off; default: the --init checkpoint's, else off)")
    p.add_argument("--log-every", type=int, help="log averaged training losses every N steps (default: the preset's)")
    p.add_argument("--save-every", type=int, help="also save checkpoint.pt every N steps")
    p.add_argument("--save-minutes", type=float, default=5.0,
                   help="also save checkpoint.pt when this many minutes passed since the last save (0 = off)")
    p.add_argument("--num-workers", type=int,
                   help="DataLoader worker processes per training process for --loader hdf5 (default: 4 on "
                        "CUDA, 0 on CPU, where the cores are busy computing)")
    p.add_argument("--loader", choices=("auto", "hdf5", "resident"), default="auto",
                   help="hdf5: samples read and augmented by DataLoader workers; resident: the whole training "
                        "file held as uint8 on the device and augmented there; auto: resident on CUDA when the "
                        "file fits in a quarter of the GPU's memory, else hdf5")
    p.add_argument("--memory-format", choices=("auto", "channels_last", "contiguous"), default="auto",
                   help="activation layout; auto: channels_last (cuDNN's and oneDNN's fast NHWC kernels; on "
                        "a 2-core CPU the small preset's step ran 1.27x faster in fp32 and 1.28x in bf16)")
    add_device_arguments(p)
    p.add_argument("--seed", type=int, default=0, help="seeds initialisation, data order and augmentation")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    return p


def explicit_options(parser: argparse.ArgumentParser, argv: Sequence[str]) -> set[str]:
    """Destinations of the options actually typed on the command line."""
    typed = {a.split("=", 1)[0] for a in argv if a.startswith("--")}
    return {a.dest for a in parser._actions if typed & set(a.option_strings)}


def _load_resume(resume: str, out: Path) -> Resume:
    """--resume [CKPT]: the training state of CKPT (default: OUT/checkpoint.pt)."""
    path = out / "checkpoint.pt" if resume == "auto" else Path(resume)
    if not path.is_file():
        if resume == "auto" and out.is_dir():
            raise UserError(f"--resume: no checkpoint at {path}: the run in {out} stopped before its first "
                           "save. Start it again without --resume (its partial outputs are replaced)")
        raise UserError(f"--resume: no checkpoint at {path} (nothing to resume; start without --resume)")
    try:
        state = load_checkpoint(path)
    except UserError as e:
        raise UserError(f"--resume: {e}") from None
    if "args" not in state or "optimizers" not in state:
        raise UserError(f"--resume: {path} holds weights only, not a training state (use --init to start from it)")
    return Resume(path, state)


def _restored(values: dict, explicit: set[str], resume: Resume, amp: bool) -> dict:
    """``values`` (the parsed command line) with every option not typed taken from the
    resumed checkpoint's saved options; a typed one that would change what it computes is an error."""
    saved, path = resume.state["args"], resume.path
    merged = dict(values)
    for key, old in saved.items():
        if key in NOT_RESTORED or key not in merged:  # an option this version no longer has: ignored
            continue
        new = merged[key]
        new = str(new) if isinstance(new, Path) else new
        if key not in explicit:
            merged[key] = Path(old) if key in PATH_FIELDS and old is not None else old
        elif key in FIXED_ON_RESUME and new != old:
            raise UserError(f"--{key.replace('_', '-')} {new} differs from {old} in {path}; a resumed run "
                           "keeps the settings it started with (start a new run with --init instead)")
    if "pair_loss" not in saved and "pair_loss" not in explicit:
        merged["pair_loss"] = "eq5"  # runs saved before the option existed trained with eq. 5
    if saved.get("amp") and not amp:
        # --amp is where-to-run, not restored; but silently dropping bf16 halves a CPU run's speed.
        print(f"note: --resume: {path} trained with --amp (bf16); this run continues in float32 "
              "(pass --amp to keep bf16)", file=sys.stderr)
    return merged


def _device_type(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cuda" if name.startswith("cuda") else "cpu"


def _with_defaults(values: dict) -> dict:
    """``values`` with what the command line left open filled: the preset (by device), its
    defaults, --decay-steps (= --max-steps) and --num-workers (by device)."""
    filled = dict(values)
    device = _device_type(filled["device"])
    filled["preset_auto"] = filled["preset"] is None
    if filled["preset"] is None:
        filled["preset"] = AUTO_PRESET[device]
    filled["fit_crop"] = filled["crop"] is None  # a preset crop may shrink to fit the data; a typed one may not
    budgeted = filled["minutes"] is not None
    for key, value in PRESET_DEFAULTS[filled["preset"]].items():
        if filled[key] is None:
            filled[key] = 10**12 if key == "max_steps" and budgeted else value
    if filled["decay_steps"] is None:
        filled["decay_steps"] = filled["max_steps"]
    if filled["num_workers"] is None:
        filled["num_workers"] = 4 if device == "cuda" else 0
    return filled


def _finite(name: str, value: float | None) -> None:
    if value is not None and not math.isfinite(value):
        raise UserError(f"--{name} {value}: must be a finite number")


def parse_args(argv: Sequence[str] | None = None) -> Start:
    """The run's options, built once: the command line, merged with a resumed checkpoint's
    saved options, preset defaults filled, validated; with the loaded --resume state apart."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    values = vars(parser.parse_args(argv))
    resume = None
    if values["resume"] is not None:
        if values["init"] is not None:
            raise UserError("--init and --resume exclude each other (resume continues its own weights)")
        resume = _load_resume(values["resume"], values["out"])
        values = _restored(values, explicit_options(parser, argv), resume, values["amp"])
    config = TrainingConfig(**_with_defaults(values))
    _validate(config)
    return Start(config, resume)


def _validate(config: TrainingConfig) -> None:
    """Refuse a bad value, naming it and what it must be (reads only: the config is frozen)."""
    check_T(config.T, "--T")
    for name in ("lr", "generator_lr", "min_lr", "minutes", "save_minutes", "adv_weight", "perceptual_weight", "gradient_weight"):
        _finite(name.replace("_", "-"), getattr(config, name))
    if config.crop % 20 or config.crop <= 0:
        raise UserError(f"--crop {config.crop}: must be a positive multiple of 20 (the model's size multiple)")
    for key in ("batch_size", "max_steps", "val_every", "log_every", "decay_steps"):
        if getattr(config, key) < 1:
            raise UserError(f"--{key.replace('_', '-')} {getattr(config, key)}: must be >= 1")
    if not 0 <= config.seed < 2**32:  # numpy's seed range
        raise UserError(f"--seed {config.seed}: must lie in [0, 2**32)")
    if config.pair_patch < 1:
        raise UserError(f"--pair-patch {config.pair_patch}: must be >= 1")
    if config.save_every is not None and config.save_every < 1:
        raise UserError(f"--save-every {config.save_every}: must be >= 1")
    if config.minutes is not None and config.minutes <= 0:
        raise UserError(f"--minutes {config.minutes}: must be > 0")
    if config.save_minutes < 0:
        raise UserError(f"--save-minutes {config.save_minutes}: must be >= 0 (0 = off)")
    if config.num_workers < 0:
        raise UserError(f"--num-workers {config.num_workers}: must be >= 0")
    if config.val_samples < 0:
        raise UserError(f"--val-samples {config.val_samples}: must be >= 0 (0 = all)")
    if config.loss_domain == "log" and config.pair_loss == "eq5":
        raise UserError("--loss-domain log needs a per-patch --pair-loss (eq5 has no per-sample form)")
    if config.suite_scenes < 1:
        raise UserError(f"--suite-scenes {config.suite_scenes}: must be >= 1")
    if not (math.isfinite(config.noise_std) and 0 <= config.noise_std <= 0.5):
        raise UserError(f"--noise-std {config.noise_std}: must be between 0 and 0.5")
    if not (math.isfinite(config.noise_share) and 0 <= config.noise_share <= 1):
        raise UserError(f"--noise-share {config.noise_share}: must be between 0 and 1")
    check_gate(config.still_gate, "--still-gate")
    check_gate(config.middle_gate, "--middle-gate")
    check_gate(config.frame_gate, "--frame-gate")
    check_gate(config.sharp_gate, "--sharp-gate")
    if config.suite_photos is not None:
        try:
            PhotoFolder(config.suite_photos)
        except UserError as e:
            raise UserError(f"--suite-photos: {e}") from None
    if config.lr <= 0:
        raise UserError(f"--lr {config.lr}: must be > 0")
    if config.generator_lr is not None and not config.generator_lr > 0:
        raise UserError(f"--generator-lr {config.generator_lr}: must be > 0")
    if not 0 < config.min_lr <= 1:
        raise UserError(f"--min-lr {config.min_lr}: must lie in (0, 1]")
    for key in ("adv_weight", "perceptual_weight", "gradient_weight"):
        if getattr(config, key) < 0:
            raise UserError(f"--{key.replace('_', '-')} {getattr(config, key)}: must be >= 0")
