"""Checkpoint files: atomic saving, validated loading, and the default weights shipped with
the package.

A checkpoint is a dict saved with `torch.save`:
    format="b2v_rnn-checkpoint", version=1,
    model          BlurToVideo state dict        model_config  its `config` (JSON-able)
    T              frames per clip it was trained on
    and, in training checkpoints, also
    discriminator, discriminator_config, optimizers {name: state}, step, args (dict),
    rng {torch, cuda, numpy, python}, sampler {seed, step, ...}.
Everything in it is tensors and plain Python values (the numpy RNG state is stored as a
list), so it loads with `torch.load(weights_only=True)`: loading a checkpoint never runs
code from the file.

The package may ship default weights at `b2v_rnn/weights/default.pt` with
`default.pt.sha256` beside it (`sha256sum` format); `default_checkpoint()` verifies the
hash before the file is used, and `load_checkpoint` checks any checkpoint that has such a
hash file beside it (`export` writes one), so damaged weights are never used silently.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from .atomic import atomic_path

FORMAT = "b2v_rnn-checkpoint"
VERSION = 1
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "default.pt"


INFERENCE_KINDS = ("BlurToVideo", "Jin2018")
"""Model kinds `predict` and `evaluate` run: this project's, and the authors' four networks
(`b2v_rnn.models.jin2018`, converted from their files by `b2v_rnn.export`)."""


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, corrupt, or does not fit its use."""


def save_checkpoint(state: dict, path: str | os.PathLike) -> Path:
    """`torch.save(state)` to `path` atomically: written under a unique temporary name in
    the same folder, flushed to disk, then renamed, so `path` is always either the old or
    the new complete file (an interruption never leaves a truncated checkpoint)."""
    path = Path(path)
    state = {"format": FORMAT, "version": VERSION, **state}
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read and validate a checkpoint; CheckpointError names the file and what is wrong."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file (a run folder holds checkpoint.pt "
                              "and best.pt; a folder of the authors' pretrained networks holds center_v3.pth "
                              "and three more)")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    hash_file = path.with_name(path.name + ".sha256")
    if hash_file.is_file():  # written by `export`: weights that no longer match it are damaged
        verify_sha256(path, hash_file)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for a corrupt or foreign file
        # weights_only=True refuses pickled objects: a foreign checkpoint fails here too.
        first = str(e).split(". ")[0].splitlines()[0] if str(e) else ""
        raise CheckpointError(f"{path}: not a readable b2v_rnn checkpoint ({type(e).__name__}: {first})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path}: not a b2v_rnn checkpoint (format={found!r}, expected {FORMAT!r})")
    if state.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {state.get('version')!r} is not supported "
                              f"(this b2v_rnn reads version {VERSION})")
    for key in ("model", "model_config", "T"):
        if key not in state:
            raise CheckpointError(f"{path}: checkpoint has no {key!r} entry")
    return state


def model_from_checkpoint(state: dict, path: str | os.PathLike = "checkpoint"):
    """Rebuild the BlurToVideo model a loaded checkpoint describes, with its weights.

    An architecture the config does not describe (a checkpoint of another model, an edited
    config, weights of other shapes) raises CheckpointError naming the file.
    """
    from .models import build_model_from_config

    config = state["model_config"]
    if not isinstance(config, dict) or config.get("kind") not in INFERENCE_KINDS:
        kind = config.get("kind") if isinstance(config, dict) else type(config).__name__
        raise CheckpointError(f"{path}: holds a model of kind {kind!r}, expected one of {INFERENCE_KINDS}")
    try:
        return build_model_from_config(config, state["model"])
    except (ValueError, TypeError, KeyError, RuntimeError) as e:
        raise CheckpointError(f"{path}: does not fit this version of b2v_rnn's architecture: {e}") from None


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """(model in eval mode on `device`, checkpoint dict) from a checkpoint file, or from a
    folder of the authors' pretrained files (`b2v_rnn.official`)."""
    from .official import holds_official_files, read_folder

    state = read_folder(path) if holds_official_files(path) else load_checkpoint(path)
    model = model_from_checkpoint(state, path).to(device).eval()
    return model, state


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: Path, hash_file: Path) -> None:
    """CheckpointError (one line naming both files) unless `path`'s SHA-256 is the one in
    `hash_file` (`sha256sum` format: the hex digest first)."""
    try:
        fields = hash_file.read_text().split()
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: its hash file {hash_file} cannot be read ({e})") from None
    expected = fields[0].lower() if fields else ""
    actual = sha256_of(path)
    if actual != expected:
        raise CheckpointError(f"{path}: SHA-256 {actual} does not match {expected!r} "
                              f"in {hash_file}; the file is damaged or was replaced")


def default_checkpoint() -> Path:
    """The default weights shipped with the package, after checking their SHA-256.

    Raises CheckpointError when none ship with this installation (train one with
    `python -m b2v_rnn.train` and pass `--checkpoint`), when the hash file is missing, or
    when the weights do not match it (a damaged or replaced file).
    """
    if not DEFAULT_WEIGHTS.is_file():
        raise CheckpointError(
            f"no --checkpoint given and no default weights ship with this installation "
            f"({DEFAULT_WEIGHTS} does not exist); train a model with `python -m b2v_rnn.train "
            f"--out runs/NAME` and pass --checkpoint runs/NAME/checkpoint.pt")
    hash_file = DEFAULT_WEIGHTS.with_name(DEFAULT_WEIGHTS.name + ".sha256")
    if not hash_file.is_file():
        raise CheckpointError(f"{DEFAULT_WEIGHTS}: its hash file {hash_file} is missing; "
                              "the default weights cannot be verified")
    verify_sha256(DEFAULT_WEIGHTS, hash_file)
    return DEFAULT_WEIGHTS
