"""The authors' pretrained files: a folder holding the four files their ``demo.py`` reads.

    center_v3.pth                          centerEsti (frame 4)
    F35_N8.pth                             F35_N8     (frames 3 and 5)
    F26_N9_from_F35_N8.pth                 F26_N9     (frames 2 and 6)
    F17_N9_from_F26_N9_from_F35_N8.pth     F17_N9     (frames 1 and 7)

Each is a dict whose ``'state_dict_G'`` is the network's state dict, in torch's legacy
(pre-zip) format from PyTorch 0.3. They are read with ``torch.load(weights_only=True)`` (no
code from the file runs), ``module.`` prefixes (``nn.DataParallel``) are stripped, and the
running statistics that PyTorch 0.3's ``InstanceNorm2d`` saved are dropped: the networks
normalise by the statistics of their input (:mod:`b2v_rnn.models.jin2018`). Anything else
that does not fit (a missing, unexpected or mis-shaped key) is a :class:`UserError`
naming the file, in one line.

:func:`read_folder` returns the folder as a checkpoint dict of this project (``model``,
``model_config``, ``T``), which ``b2v_rnn.checkpoint.load_model`` and ``b2v_rnn.export`` use.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor, nn

from .checkpoint import sha256_of
from .errors import UserError

FILES = {
    "center": "center_v3.pth",
    "frames35": "F35_N8.pth",
    "frames26": "F26_N9_from_F35_N8.pth",
    "frames17": "F17_N9_from_F26_N9_from_F35_N8.pth",
}
"""Network of :class:`~b2v_rnn.models.jin2018.Jin2018` → the authors' file holding its weights."""

SAVED_BY_OLD_NORMS = ("running_mean", "running_var", "num_batches_tracked")
"""Buffers of an ``InstanceNorm2d`` saved by PyTorch before 0.4, which never used them."""

SHOWN = 3
"""Keys listed per kind of mismatch; the count of the rest follows."""


def holds_official_files(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder with at least one of the authors' file names in it."""
    path = Path(path)
    return path.is_dir() and any((path / name).exists() for name in FILES.values())


def input_files(path: str | os.PathLike) -> list[Path]:
    """What loading ``path`` reads: the authors' four files for a folder of them, else ``path``
    (for the check that an output never replaces an input)."""
    path = Path(path)
    return [path / name for name in FILES.values()] if holds_official_files(path) else [path]


def _listed(keys: list[str]) -> str:
    more = f" and {len(keys) - SHOWN} more" if len(keys) > SHOWN else ""
    return ", ".join(keys[:SHOWN]) + more


def _first_line(error: Exception) -> str:
    text = str(error)
    return text.split(". ")[0].splitlines()[0] if text else type(error).__name__


def read_file(path: Path, network: nn.Module) -> dict[str, Tensor]:
    """The state dict in the authors' file ``path``, checked against ``network``'s (names and shapes)."""
    if not path.is_file():
        raise UserError(f"{path}: missing; the folder must hold the authors' four files ({', '.join(FILES.values())})")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a damaged or foreign file
        raise UserError(f"{path}: not a readable PyTorch weights file ({type(error).__name__}: "
                              f"{_first_line(error)})") from None
    if not isinstance(saved, dict) or not isinstance(saved.get("state_dict_G"), dict):
        found = sorted(map(str, saved))[:SHOWN] if isinstance(saved, dict) else type(saved).__name__
        raise UserError(f"{path}: has no 'state_dict_G' dict (found {found}); not one of the authors' files")
    own = network.state_dict()
    state = {}
    for key, value in saved["state_dict_G"].items():
        key = str(key)
        while key.startswith("module."):
            key = key[len("module."):]
        if key.rsplit(".", 1)[-1] in SAVED_BY_OLD_NORMS and key not in own:
            continue
        state[key] = value
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    reshaped = [f"{key} {tuple(getattr(state[key], 'shape', ()))} (expected {tuple(own[key].shape)})"
                for key in sorted(set(own) & set(state))
                if not isinstance(state[key], Tensor) or state[key].shape != own[key].shape]
    if missing or unexpected or reshaped:
        problems = [f"{what} {_listed(keys)}" for what, keys in
                    (("missing", missing), ("unexpected", unexpected), ("wrong shape", reshaped)) if keys]
        raise UserError(f"{path}: does not fit the authors' {type(network).__name__}: {'; '.join(problems)}")
    return state


def read_folder(folder: str | os.PathLike, hashes: bool = False) -> dict:
    """The four files of ``folder`` as a checkpoint dict: ``model`` (a
    :class:`~b2v_rnn.models.jin2018.Jin2018` state dict), ``model_config``, ``T`` = 7, and
    ``source`` (the folder, with each file's SHA-256 when ``hashes``)."""
    from .models.jin2018 import FRAMES, Jin2018

    folder = Path(folder)
    model = Jin2018()
    state: dict[str, Tensor] = {}
    source: dict = {"folder": str(folder), "files": {}}
    for name, file in FILES.items():
        for key, value in read_file(folder / file, getattr(model, name)).items():
            state[f"{name}.{key}"] = value.to(torch.float32)
        if hashes:
            source["files"][file] = sha256_of(folder / file)
    return {"model": state, "model_config": dict(model.config), "T": FRAMES, "source": source}
