"""Trained weights for inference: a checkpoint file, a folder of the authors' four pretrained
files, or (None) the default weights shipped with the package, SHA-256 verified."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..checkpoint import default_checkpoint, load_model
from ..cli import note
from ..errors import UserError


@dataclass(frozen=True)
class LoadedModel:
    """A network in eval mode, where it came from, and the T it was trained for."""

    module: nn.Module
    path: Path
    trained_T: int

    @property
    def fixed_T(self) -> bool:
        """Whether the network makes only the T it was trained for (the authors' networks: 7)."""
        return getattr(self.module, "fixed_T", None) is not None

    def check_frames(self, T: int, origin: str | None = None) -> None:
        """Refuse a T the network cannot extract; note one it was not trained for (G then
        unrolls fewer or more steps). `origin`: where T came from, for the message (default:
        the option, ``--T T``)."""
        if self.fixed_T and T != self.trained_T:
            fix = f"pass --T {self.trained_T}" if origin is None else f"use clips of {self.trained_T} frames"
            raise UserError(f"{origin or f'--T {T}'}: {self.path} holds the authors' pretrained networks, which "
                           f"extract exactly {self.trained_T} frames; {fix}")
        if T != self.trained_T:
            how = "extrapolates beyond" if T > self.trained_T else "uses fewer steps than"
            note(f"{self.path} was trained with T={self.trained_T}; extracting T={T} frames {how} training")


def load(checkpoint: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> LoadedModel:
    """The network of `checkpoint` (a file, or a folder of the authors' pretrained files; None:
    the shipped default weights) on `device`; UserError naming the file when it cannot be used."""
    path = Path(checkpoint) if checkpoint is not None else default_checkpoint()
    module, state = load_model(path, device)
    return LoadedModel(module, path, int(state["T"]))
