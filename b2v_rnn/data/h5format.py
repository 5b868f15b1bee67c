"""The b2v HDF5 file format (DESIGN §5): its constants, a validator and an atomic writer.

Layout of one file (one split):
    attrs   format="b2v", version=1, T (odd int), source (str), downsample (float, 1.0 =
            none), gamma (float, 1.0 = frames averaged as stored, 2.2 = in linear light)
            and any extra source-specific attributes (e.g. seed, settings as JSON).
    sharp   uint8 (N, T, H, W, 3), chunked one sample per chunk.
    blurry  uint8 (N, H, W, 3) = rounded mean of the T sharp frames computed in float.
"""
from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from tqdm import tqdm

from .blur import NO_GAMMA, average_frames, check_gamma, check_T
from .errors import DataError

FORMAT = "b2v"
VERSION = 1
SUPPORTED_VERSIONS = (1,)


@dataclass(frozen=True)
class FileInfo:
    """What a valid file holds: N samples of T frames of H x W pixels, plus its attrs."""

    path: Path
    N: int
    T: int
    H: int
    W: int
    attrs: dict


def read_info(path: str | os.PathLike, T: int | None = None) -> FileInfo:
    """Open and validate a b2v file, returning its shape; the file is closed again.

    Raises FileNotFoundError if missing, ValueError naming the file and the problem if it
    is not HDF5, not ours, of an unsupported version, malformed, or holds T != expected T.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such HDF5 file")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DataError(f"{path}: not a readable HDF5 file ({e})") from None
    with f:
        attrs = {k: _plain(v) for k, v in f.attrs.items()}
        if attrs.get("format") != FORMAT:
            raise DataError(f"{path}: attribute format={attrs.get('format')!r}, expected {FORMAT!r} "
                             "(not a b2v dataset)")
        if attrs.get("version") not in SUPPORTED_VERSIONS:
            raise DataError(f"{path}: format version {attrs.get('version')!r} is not supported "
                             f"(supported: {SUPPORTED_VERSIONS})")
        for name in ("sharp", "blurry"):
            if not isinstance(f.get(name), h5py.Dataset):
                raise DataError(f"{path}: dataset {name!r} is missing")
        sharp, blurry = f["sharp"], f["blurry"]
        if sharp.dtype != np.uint8 or blurry.dtype != np.uint8:
            raise DataError(f"{path}: sharp/blurry must be uint8, got {sharp.dtype}/{blurry.dtype}")
        if sharp.ndim != 5 or sharp.shape[-1] != 3:
            raise DataError(f"{path}: sharp has shape {sharp.shape}, expected (N, T, H, W, 3)")
        N, fT, H, W, _ = sharp.shape
        if blurry.shape != (N, H, W, 3):
            raise DataError(f"{path}: blurry has shape {blurry.shape}, expected {(N, H, W, 3)} "
                             f"to match sharp {sharp.shape}")
        if N == 0:
            raise DataError(f"{path}: holds no samples")
        if attrs.get("T") != fT:
            raise DataError(f"{path}: attribute T={attrs.get('T')!r} but sharp holds {fT} frames")
        try:
            check_T(fT)
        except ValueError as e:
            raise DataError(f"{path}: {e}") from None
        if T is not None and T != fT:
            raise DataError(f"{path}: holds sequences of T={fT} frames, expected T={T}")
    return FileInfo(path, N, fT, H, W, attrs)


def _plain(value):
    """HDF5 attribute -> plain Python value (numpy scalars and bytes become int/float/str)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


class H5Writer:
    """Atomic writer of a b2v file: `with H5Writer(...) as w: w.append(frames)`.

    Samples go to a uniquely named temporary file in the destination folder, renamed to
    `path` only when the `with` block ends normally; on any exception (KeyboardInterrupt
    included) the temporary file is deleted, so `path` never holds a half-written file.
    The blurry image is computed here from the sharp frames (`average_frames`).

    path: destination. T: frames per sample. source: where the data came from.
    downsample: scale applied to the frames (1.0 = none). gamma: see `average_frames`.
    extra_attrs: more attributes to store. total: expected sample count (progress bar only).
    overwrite: replace an existing file instead of refusing with FileExistsError.
    """

    def __init__(self, path: str | os.PathLike, T: int, source: str, downsample: float = 1.0,
                 gamma: float = NO_GAMMA, extra_attrs: dict | None = None,
                 total: int | None = None, overwrite: bool = False, progress: bool = True):
        self.path = Path(path)
        self.T = check_T(T)
        self.gamma = check_gamma(gamma)
        self.attrs = dict(extra_attrs or {})
        self.attrs.update(format=FORMAT, version=VERSION, T=self.T, source=source,
                          downsample=float(downsample), gamma=self.gamma)
        self.total, self.overwrite, self.progress = total, overwrite, progress
        self.count = 0

    def __enter__(self) -> "H5Writer":
        if self.path.exists() and not self.overwrite:
            raise FileExistsError(f"{self.path}: already exists (pass overwrite / --overwrite to replace it)")
        if not self.path.parent.is_dir():
            raise FileNotFoundError(f"{self.path.parent}: output folder does not exist")
        # Same folder so the final os.replace is an atomic rename on one file system;
        # unique name so concurrent writers of the same path never share a temp file.
        self.tmp = self.path.parent / f".{self.path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
        self.file = h5py.File(self.tmp, "w")
        self.bar = tqdm(total=self.total, desc=f"writing {self.path.name}", unit="sample",
                        disable=not self.progress, leave=False)
        return self

    def append(self, sharp: np.ndarray) -> None:
        """Add one sample. sharp: uint8 (T, H, W, 3); all samples must share H and W."""
        if sharp.dtype != np.uint8 or sharp.shape[:1] != (self.T,) or sharp.ndim != 4 or sharp.shape[-1] != 3:
            raise DataError(f"sample {self.count}: expected uint8 ({self.T}, H, W, 3), "
                             f"got {sharp.dtype} {sharp.shape}")
        blurry = average_frames(sharp, self.gamma)
        if self.count == 0:
            H, W = sharp.shape[1:3]
            self.file.create_dataset("sharp", shape=(0, self.T, H, W, 3), maxshape=(None, self.T, H, W, 3),
                                     dtype=np.uint8, chunks=(1, self.T, H, W, 3))
            self.file.create_dataset("blurry", shape=(0, H, W, 3), maxshape=(None, H, W, 3),
                                     dtype=np.uint8, chunks=(1, H, W, 3))
        ds_sharp, ds_blurry = self.file["sharp"], self.file["blurry"]
        if sharp.shape[1:] != ds_sharp.shape[2:]:
            raise DataError(f"sample {self.count}: frames of size {sharp.shape[1:3]}, but earlier "
                             f"samples are {ds_sharp.shape[2:4]}")
        # Grow in blocks: resizing an HDF5 dataset per sample is needlessly slow.
        if self.count == ds_sharp.shape[0]:
            grow = max(16, self.count // 2)
            ds_sharp.resize(self.count + grow, axis=0)
            ds_blurry.resize(self.count + grow, axis=0)
        ds_sharp[self.count] = sharp
        ds_blurry[self.count] = blurry
        self.count += 1
        self.bar.update(1)

    def __exit__(self, exc_type, exc, tb) -> None:
        self.bar.close()
        complete = False
        try:
            if exc_type is None:
                if self.count == 0:
                    raise DataError(f"{self.path}: no samples were produced, nothing written")
                self.file["sharp"].resize(self.count, axis=0)
                self.file["blurry"].resize(self.count, axis=0)
                self.file.attrs.update(self.attrs)
                complete = True
        finally:
            self.file.close()
            if complete:
                os.replace(self.tmp, self.path)
            self.tmp.unlink(missing_ok=True)
