"""The embedded default dataset: synthetic b2v files generated on first use and cached.

Files live in `$B2V_DATA_DIR` (or `~/.cache/b2v_rnn/`), named by split, T, size, sample
count and `GENERATOR_VERSION`, so changing any of them makes a new file instead of
silently reusing a stale one. Concurrent first uses (several ranks of a torchrun job,
two terminals) are safe: generation runs under an exclusive file lock, and the file
only ever appears complete (atomic rename by `H5Writer`). A generation killed half way
leaves a hidden temporary; the next one to take the lock removes it.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..outputs import check_writable, exclusive_lock, remove_stale_temporaries
from .h5format import read_info
from .synthetic import BROAD, HELD_OUT, SceneSettings, generate

GENERATOR_VERSION = 1
"""Bump whenever the synthetic renderer's output changes, to invalidate cached files."""


@dataclass(frozen=True)
class DefaultSplit:
    """How one default split is generated: sample count, image size, seed, scene settings."""

    n: int
    size: int
    seed: int
    settings: SceneSettings


DEFAULT_SIZE = 96
TRAIN_SAMPLES = 512
VAL_SAMPLES = 32
TEST_SAMPLES = 64

SPLITS = {
    # train and val share the distribution, not the seed; test differs in both
    # (held-out texture families, faster motion) to measure generalisation.
    "train": DefaultSplit(TRAIN_SAMPLES, DEFAULT_SIZE, seed=0, settings=BROAD),
    "val": DefaultSplit(VAL_SAMPLES, DEFAULT_SIZE, seed=1, settings=BROAD),
    "test": DefaultSplit(TEST_SAMPLES, DEFAULT_SIZE, seed=2, settings=HELD_OUT),
}


LARGEST_DEFAULT_BYTES = 2 * 2**30
"""A first use that would generate more than this is refused: the embedded data is for smoke
runs and quick experiments, and a large --T would otherwise start hours of rendering and
gigabytes of disk without asking (T = 1001: 14 GB). `data_tools.synthetic` makes any size."""
SECONDS_PER_FRAME = 0.005
"""Rendering time of one 96 px sharp frame on 2 idle cores (the train split, 512 x 7 frames,
in about 15 s); several times more on a busy machine."""


def generation_cost(split: str, T: int) -> tuple[int, float]:
    """(bytes on disk, seconds on 2 idle cores) of generating the default `split` for T frames:
    T sharp frames and one blurry image per sample, uint8, uncompressed."""
    spec = SPLITS[split]
    return spec.n * (T + 1) * spec.size * spec.size * 3, spec.n * T * SECONDS_PER_FRAME


def _describe_cost(size: int, seconds: float) -> str:
    amount = f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size / 2**20:.0f} MiB"
    duration = f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"
    return f"about {amount}, {duration} on 2 idle cores"


def data_dir(need_bytes: int = 0) -> Path:
    """Cache folder: $B2V_DATA_DIR, else ~/.cache/b2v_rnn (created if missing); UserError
    naming the variable when it cannot be created or written."""
    from_env = os.environ.get("B2V_DATA_DIR")
    path = Path(from_env or Path.home() / ".cache" / "b2v_rnn")
    check_writable(path, option="B2V_DATA_DIR=" if from_env else "dataset cache", need_bytes=need_bytes,
                   remedy="set B2V_DATA_DIR to a writable folder with room")
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_dataset(split: str = "train", T: int = 7) -> Path:
    """Path of the default synthetic `split` ("train", "val" or "test") for T frames,
    generating it on first use (about 15 s for train on 2 CPU cores)."""
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}, expected one of {sorted(SPLITS)}")
    spec = SPLITS[split]
    name = f"synthetic-{split}-T{T}-{spec.size}px-n{spec.n}-v{GENERATOR_VERSION}.h5"
    cached = data_dir() / name
    if _is_valid(cached, T):
        return cached
    size, seconds = generation_cost(split, T)
    if size > LARGEST_DEFAULT_BYTES:
        raise UserError(f"the default {split!r} split for T={T} would be generated first ({spec.n} samples: "
                        f"{_describe_cost(size, seconds)}); pass files of your own (--train/--val, --data), e.g. "
                        f"`python -m data_tools.synthetic --out {split}.h5 --n 64 --T {T}`, or use a smaller T")
    path = data_dir(need_bytes=size) / name
    with exclusive_lock(path.with_name(path.name + ".lock")):  # waits for another process generating it
        # Another process may have finished it while we waited for the lock.
        if not _is_valid(path, T):
            remove_stale_temporaries(path.parent, name=path.name)  # of a killed generation
            print(f"generating the default {split!r} split ({spec.n} samples of T={T} at {spec.size}x{spec.size}, "
                  f"{_describe_cost(size, seconds)}), once: cached as {path}", file=sys.stderr)
            generate(path, spec.n, T, spec.size, spec.seed, spec.settings, overwrite=True)
    return path


def _is_valid(path: Path, T: int) -> bool:
    """True if `path` is a complete b2v file of T frames (a damaged one is regenerated)."""
    if not path.exists():
        return False
    try:
        read_info(path, T)
    except UserError:
        return False
    return True


