"""The run folder (--out): what may be there before a run starts, and clearing it.

A folder holds one of: nothing; a run with a checkpoint (continue it with --resume, or
replace it with --overwrite); a *failed start*, only this script's outputs and no
checkpoint (an oversized batch, a damaged file, a kill before the first save), which a new
start replaces without asking, since nothing in it can be resumed; or files of the user's
own, which are never touched without --overwrite (and even then only this script's outputs go).
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Sequence

from ..errors import UserError
from ..outputs import check_writable, internal_names, refuse_inputs_among_outputs

OUTPUTS = ("checkpoint.pt", "best.pt", "train.csv", "val.csv", "samples", "plots", "tensorboard")


def _entries(out: Path) -> list[Path]:
    """What is in the folder, without the lock and staging entries of `outputs`."""
    return [p for p in out.iterdir() if not p.name.startswith(internal_names())]


def is_failed_start(out: Path) -> bool:
    """Only this script's outputs, and no checkpoint to resume from."""
    entries = _entries(out)
    return bool(entries) and not (out / "checkpoint.pt").exists() and all(p.name in OUTPUTS for p in entries)


def check_out(out: Path, resuming: bool, overwrite: bool, inputs: Sequence[Path | None]) -> None:
    """Refuse to mix with an earlier run unless ``resuming``, ``overwrite`` or a failed start
    (writes nothing); ``inputs``: the files the run reads (None where not given), none of which
    a new start may replace."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    check_writable(out, "--out")
    if not resuming:  # a new start replaces these outputs: none of them may be an input
        refuse_inputs_among_outputs([out / name for name in OUTPUTS], inputs)
    if resuming or overwrite or not out.is_dir() or not _entries(out):
        return
    if is_failed_start(out):
        return
    if (out / "checkpoint.pt").exists():
        raise UserError(f"--out {out}: holds a run (checkpoint.pt); pass --resume to continue it or --overwrite "
                       "to start again in its place")
    raise UserError(f"--out {out}: folder is not empty and holds files this script did not write; choose another "
                   "--out, or pass --overwrite to write beside them (only this script's outputs are replaced)")


def prepare_out(out: Path, resuming: bool, overwrite: bool, log) -> None:
    """Create the run folder; a new start (not ``resuming``) with ``overwrite``, or over a failed
    start, first removes only the files this script writes (never anything else a user keeps there)."""
    if not resuming and out.is_dir() and (overwrite or is_failed_start(out)):
        if not overwrite:
            log(f"note: {out} holds only the outputs of a start that never saved a checkpoint; replacing them")
        for name in OUTPUTS:
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    (out / "samples").mkdir(parents=True, exist_ok=True)
    (out / "plots").mkdir(exist_ok=True)
