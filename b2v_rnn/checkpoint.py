"""Checkpoint files: atomic saving, validated loading, and the default weights shipped with
the package.

A checkpoint is a dict saved with `torch.save`:
    format="b2v_rnn-checkpoint", version=VERSION (2),
    model          the model's state dict        model_config  its `config`: every field of its
    T              frames per clip it was        config dataclass, as a plain dict
                   trained on                    (`dataclasses.asdict`, JSON-able)
    and, in training checkpoints, also
    discriminator, discriminator_config, optimizers {name: state}, step, args (dict),
    rng {torch, cuda, numpy, python}, sampler {seed, step, ...}.
Files of an older version are read through `upgrade`, which converts them to this layout; a
version newer than this b2v_rnn's is refused.
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
from .errors import UserError

FORMAT = "b2v_rnn-checkpoint"
VERSION = 5
"""The layout this b2v_rnn writes. Version 1 stored in a BlurToVideo config only the options
that differed from their legacy values (:data:`VERSION_1_OMITTED`); version 2 stores every field
of each network's config dataclass (``b2v_rnn.models``); version 3 adds the BlurToVideo config's
``middle_gate``, version 4 its ``frame_gate`` and version 5 its ``sharp_gate`` (older files
had none: off)."""

VERSION_1_OMITTED = {
    "model": {"still_gate": 0.0},
    "middle": {"linear_skip": 0, "head": "shuffle", "head_channels": 16},
    "generator": {"motion": "residual", "flow_channels": 32, "linear_skip": 0, "head": "shuffle",
                  "head_channels": 16},
}
"""What a key missing from a version-1 BlurToVideo config meant: the value the constructor took
by default when the option was added (the paper's networks: shuffle heads, a residual G, no
linear skips, no still gate). Options were added in pairs (motion with flow_channels, head with
head_channels), so a file lacks both or neither. The widths, and every key of a
PatchDiscriminator's and of Jin2018's config, were always written."""
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "default.pt"


INFERENCE_KINDS = ("BlurToVideo", "Jin2018")
"""Model kinds `predict` and `evaluate` run: this project's, and the authors' four networks
(`b2v_rnn.models.jin2018`, converted from their files by `b2v_rnn.export`)."""


def check_configs(state: dict) -> None:
    """UserError unless the configs in ``state`` (``model_config``, ``discriminator_config``)
    are whole configs of the current layout: a file marked with this :data:`VERSION` promises every
    field, and `upgrade` trusts that promise."""
    from .models import config_from_dict

    for key in ("model_config", "discriminator_config"):
        if key in state:
            try:
                config_from_dict(state[key])
            except (ValueError, TypeError) as e:
                raise UserError(f"refusing to write a version-{VERSION} checkpoint whose {key} is not "
                                      f"whole: {e}") from None


def save_checkpoint(state: dict, path: str | os.PathLike) -> Path:
    """`torch.save(state)` to `path` atomically: written under a unique temporary name in
    the same folder, flushed to disk, then renamed, so `path` is always either the old or
    the new complete file (an interruption never leaves a truncated checkpoint).

    The file is marked with this b2v_rnn's :data:`VERSION`, whatever ``state`` holds under
    ``version``, so its configs must be whole (:func:`check_configs`)."""
    path = Path(path)
    state = {**state, "format": FORMAT, "version": VERSION}
    check_configs(state)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read and validate a checkpoint; UserError names the file and what is wrong."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a folder, not a checkpoint file (a run folder holds checkpoint.pt "
                              "and best.pt; a folder of the authors' pretrained networks holds center_v3.pth "
                              "and three more)")
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint file")
    hash_file = path.with_name(path.name + ".sha256")
    if hash_file.is_file():  # written by `export`: weights that no longer match it are damaged
        verify_sha256(path, hash_file)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for a corrupt or foreign file
        # weights_only=True refuses pickled objects: a foreign checkpoint fails here too.
        first = str(e).split(". ")[0].splitlines()[0] if str(e) else ""
        raise UserError(f"{path}: not a readable b2v_rnn checkpoint ({type(e).__name__}: {first})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise UserError(f"{path}: not a b2v_rnn checkpoint (format={found!r}, expected {FORMAT!r})")
    try:
        state = upgrade(state)
    except UserError as e:
        raise UserError(f"{path}: {e}") from None
    for key in ("model", "model_config", "T"):
        if key not in state:
            raise UserError(f"{path}: checkpoint has no {key!r} entry")
    return state


def _from_version_1(state: dict) -> dict:
    """Version 1 → 2: a BlurToVideo config's omitted keys written out at their legacy values
    (:data:`VERSION_1_OMITTED`). A config that is not a BlurToVideo's, or not a dict, is left for
    `model_from_checkpoint` to refuse with its own message."""
    config = state.get("model_config")
    if not isinstance(config, dict) or config.get("kind") != "BlurToVideo":
        return state
    def completed(stored: dict, omitted: dict) -> dict:
        return {**stored, **{key: value for key, value in omitted.items() if key not in stored}}

    config = completed(config, VERSION_1_OMITTED["model"])
    for part in ("middle", "generator"):
        if isinstance(config.get(part), dict):
            config[part] = completed(config[part], VERSION_1_OMITTED[part])
    return {**state, "model_config": config}


def _gains_gate(gate: str):
    """The upgrade by which a BlurToVideo config gains ``gate``, off (the gate did not exist)."""

    def upgrade_step(state: dict) -> dict:
        config = state.get("model_config")
        if not isinstance(config, dict) or config.get("kind") != "BlurToVideo":
            return state
        return {**state, "model_config": {**config, gate: config.get(gate, 0.0)}}

    upgrade_step.__doc__ = f"A BlurToVideo config gains ``{gate}``, off."
    return upgrade_step


UPGRADES = {1: _from_version_1, 2: _gains_gate("middle_gate"), 3: _gains_gate("frame_gate"),
            4: _gains_gate("sharp_gate")}
"""Version → the function that converts a checkpoint dict of that version to the next one."""


def upgrade(state: dict) -> dict:
    """A checkpoint dict of any version this b2v_rnn reads, converted to the current layout
    (:data:`VERSION`) by each step of :data:`UPGRADES` from its version on; a new dict, ``state``
    is left as it was. UserError for a version it cannot read: none, or a newer one."""
    version = state.get("version")
    readable = f"this b2v_rnn reads versions 1 to {VERSION}"
    is_int = isinstance(version, int) and not isinstance(version, bool)
    if is_int and version > VERSION:
        raise UserError(f"checkpoint version {version} was written by a newer b2v_rnn ({readable}); "
                              "update b2v_rnn to read it")
    if not is_int or (version != VERSION and version not in UPGRADES):
        raise UserError(f"checkpoint version {version!r} is not supported ({readable})")
    while version < VERSION:
        state = UPGRADES[version](state)
        version += 1
    return {**state, "version": VERSION}


def model_from_checkpoint(state: dict, path: str | os.PathLike = "checkpoint"):
    """Rebuild the model a loaded checkpoint describes, with its weights (a checkpoint dict of an
    older version is upgraded first, as `load_checkpoint` does).

    An architecture the config does not describe (a checkpoint of another model, an edited
    config, weights of other shapes) raises UserError naming the file.
    """
    from .models import build_model_from_config

    if "version" in state:
        try:
            state = upgrade(state)
        except UserError as e:
            raise UserError(f"{path}: {e}") from None
    config = state["model_config"]
    if not isinstance(config, dict) or config.get("kind") not in INFERENCE_KINDS:
        kind = config.get("kind") if isinstance(config, dict) else type(config).__name__
        raise UserError(f"{path}: holds a model of kind {kind!r}, expected one of {INFERENCE_KINDS}")
    try:
        return build_model_from_config(config, state["model"])
    except (ValueError, TypeError, KeyError, RuntimeError) as e:
        raise UserError(f"{path}: does not fit this version of b2v_rnn's architecture: {e}") from None


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
    """UserError (one line naming both files) unless `path`'s SHA-256 is the one in
    `hash_file` (`sha256sum` format: the hex digest first)."""
    try:
        fields = hash_file.read_text().split()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: its hash file {hash_file} cannot be read ({e})") from None
    expected = fields[0].lower() if fields else ""
    actual = sha256_of(path)
    if actual != expected:
        raise UserError(f"{path}: SHA-256 {actual} does not match {expected!r} "
                              f"in {hash_file}; the file is damaged or was replaced")


def default_checkpoint() -> Path:
    """The default weights shipped with the package, after checking their SHA-256.

    Raises UserError when none ship with this installation (train one with
    `python -m b2v_rnn.train` and pass `--checkpoint`), when the hash file is missing, or
    when the weights do not match it (a damaged or replaced file).
    """
    if not DEFAULT_WEIGHTS.is_file():
        raise UserError(
            f"no --checkpoint given and no default weights ship with this installation "
            f"({DEFAULT_WEIGHTS} does not exist); train a model with `python -m b2v_rnn.train "
            f"--out runs/NAME` and pass --checkpoint runs/NAME/checkpoint.pt")
    hash_file = DEFAULT_WEIGHTS.with_name(DEFAULT_WEIGHTS.name + ".sha256")
    if not hash_file.is_file():
        raise UserError(f"{DEFAULT_WEIGHTS}: its hash file {hash_file} is missing; "
                              "the default weights cannot be verified")
    verify_sha256(DEFAULT_WEIGHTS, hash_file)
    return DEFAULT_WEIGHTS
