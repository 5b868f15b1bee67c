"""`BlurSequenceDataset`: training samples read from a b2v HDF5 file (format: `h5format`)."""
from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import UserError
from . import augment as _augment
from .augment import NO_AUGMENT, Augment
from .h5format import read_info, sample_error


class BlurSequenceDataset(Dataset):
    """(blurry, sharp sequence) pairs from one b2v HDF5 file, cropped and augmented.

    path: the file; validated on construction (see `read_info`).
    crop: output size, an int (square) or (h, w); None = full frames.
    augment: an `Augment`, True (all of the paper's augmentations), or False/None (none,
        centre crop).
    T: expected frames per sample; a file holding another T is refused.
    seed: base seed. Sample `i` in epoch `e` draws its randomness from a generator seeded
        by (seed, e, i), so any number of DataLoader workers, or a DistributedSampler,
        give identical samples. Call `set_epoch(e)` each epoch, before iterating (with
        `persistent_workers=True` workers keep the epoch they started with).

    Item: {"blurry": float32 (3, h, w), "sharp": float32 (T, 3, h, w)}, values in [0,1].
    The HDF5 file is opened lazily in the process that reads (each worker its own handle),
    and the handle is never pickled. A sample that fails its checksum, or a damaged file,
    raises UserError naming the file and the sample.
    """

    def __init__(self, path: str | os.PathLike, crop: int | tuple[int, int] | None = None,
                 augment: Augment | bool | None = True, T: int | None = None, seed: int = 0):
        self.info = read_info(path, T)
        self.path = Path(path)
        self.T = self.info.T
        if crop is None:
            crop = (self.info.H, self.info.W)
        elif isinstance(crop, int):
            crop = (crop, crop)
        self.crop = tuple(int(c) for c in crop)
        if not (0 < self.crop[0] <= self.info.H and 0 < self.crop[1] <= self.info.W):
            raise UserError(f"{self.path}: crop {self.crop} does not fit in frames of "
                             f"{(self.info.H, self.info.W)}")
        if augment is True:
            augment = Augment()
        self.augment = augment or NO_AUGMENT
        self.seed = int(seed)
        self.epoch = 0
        self._file: h5py.File | None = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return self.info.N

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draws of `epoch` (like DistributedSampler.set_epoch)."""
        self.epoch = int(epoch)

    def generator(self, index: int) -> torch.Generator:
        """The random generator of sample `index` in the current epoch."""
        seed = np.random.SeedSequence([self.seed, self.epoch, index]).generate_state(2, np.uint64)[0]
        return torch.Generator().manual_seed(int(seed) & ((1 << 63) - 1))

    def _handle(self) -> h5py.File:
        # An h5py handle must not cross a fork: reopen in any process that did not open it.
        if self._file is None or self._pid != os.getpid():
            self._file = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._file

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples in {self.path}")
        gen = self.generator(index)
        h, w = self.crop
        top, left = _augment.crop_origin(self.info.H, self.info.W, h, w, self.augment.crop, gen)
        try:
            f = self._handle()
            sharp = f["sharp"][index, :, top:top + h, left:left + w]
            blurry = f["blurry"][index, top:top + h, left:left + w]
        except (OSError, RuntimeError, KeyError) as e:  # h5py's errors for damaged data
            raise sample_error(self.path, index, e, self.info.checksummed) from None
        sharp = torch.from_numpy(sharp).permute(0, 3, 1, 2).float().div_(255.0)
        blurry = torch.from_numpy(blurry).permute(2, 0, 1).float().div_(255.0)
        blurry, sharp = _augment.apply(blurry, sharp, self.augment, gen)
        return {"blurry": blurry, "sharp": sharp}

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_file"] = None
        state["_pid"] = None
        return state

    def __del__(self):
        if getattr(self, "_file", None) is not None and self._pid == os.getpid():
            self._file.close()
