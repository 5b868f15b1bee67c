"""`TrainingConfig`: every option of one training run, typed and frozen.

:func:`b2v_rnn.training.options.parse_args` builds it once, from the command line, the
saved options of a resumed checkpoint and the preset's defaults. Nothing assigns to it
afterwards (``frozen=True`` refuses it): the one later change, a preset's crop shrunk to fit
the training frames, makes a new config with :meth:`TrainingConfig.with_crop`, once, when
:class:`~b2v_rnn.training.trainer.Trainer` opens the training file and before any step.

A checkpoint keeps the config as :meth:`TrainingConfig.saved` gives it (``state["args"]``):
a plain dict of JSON-able values, Paths as str, keyed by the field names. The fields are the
command line's destinations plus ``preset_auto`` and ``fit_crop``, so the dict has the keys
that checkpoints written from the former argparse namespace have, and those still resume.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TrainingConfig:
    """The options of `python -m b2v_rnn.train` (its --help describes each), after merging."""

    T: int
    preset: str
    train: Path | None
    val: Path | None
    out: Path
    resume: str | None  # as typed: "auto" or a checkpoint path; the loaded state is a Resume
    init: Path | None
    init_partial: bool
    overwrite: bool
    stage: str
    crop: int
    batch_size: int
    max_steps: int
    minutes: float | None
    lr: float
    generator_lr: float | None
    min_lr: float
    decay_steps: int
    pair_loss: str
    pair_patch: int
    loss_domain: str
    adv_weight: float
    perceptual_weight: float
    gradient_weight: float
    vgg_weights: Path | None
    val_every: int
    val_samples: int
    select: str
    suite_scenes: int
    suite_photos: Path | None
    still_gate: float | None
    noise_std: float
    noise_share: float
    middle_gate: float | None
    frame_gate: float | None
    sharp_gate: float | None
    log_every: int
    save_every: int | None
    save_minutes: float
    num_workers: int
    loader: str
    memory_format: str
    device: str
    amp: bool
    threads: int | None
    seed: int
    no_progress: bool
    preset_auto: bool  # --preset was not given: the device chose it (the log says so)
    fit_crop: bool  # the crop is the preset's, which may shrink to fit the data; a typed one may not

    def saved(self) -> dict:
        """The options as a checkpoint stores them: a plain dict, Paths as str."""
        values = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            values[field.name] = str(value) if isinstance(value, Path) else value
        return values

    def with_crop(self, crop: int) -> TrainingConfig:
        """This config with the crop the training file allowed (see the module doc); a typed
        crop never changes, since the dataset refuses one that does not fit."""
        if crop == self.crop:
            return self
        if not self.fit_crop:
            raise ValueError(f"crop {self.crop} was typed on the command line; it cannot become {crop}")
        return dataclasses.replace(self, crop=crop)


FIELDS = tuple(field.name for field in dataclasses.fields(TrainingConfig))
PATH_FIELDS = tuple(field.name for field in dataclasses.fields(TrainingConfig) if field.type.startswith("Path"))
"""Options held as Paths: a checkpoint saves them as str, and restoring them makes Paths again."""


@dataclass(frozen=True)
class Resume:
    """--resume: the training state loaded from the checkpoint at ``path``, kept apart from
    the config (which only records how --resume was typed)."""

    path: Path
    state: dict
