"""The b2v HDF5 file format (README, Data): its constants, a validator, a checksum
verifier and an atomic writer.

Layout of one file (one split):
    attrs   format="b2v", version=1, T (odd int), source (str), downsample (float, 1.0 =
            none), gamma (float, 1.0 = frames averaged as stored, 2.2 = in linear light)
            and any extra source-specific attributes (e.g. seed, settings as JSON).
    sharp   uint8 (N, T, H, W, 3), chunked one sample per chunk.
    blurry  uint8 (N, H, W, 3) = rounded mean of the T sharp frames computed in float.
    still   optional bool (N, H, W): the pixels equal in every instant of the exposure (the
            scene families of `b2v_rnn.data.families` know it exactly; converters of real
            footage cannot, and leave it out). Every sample has one, or none does.
Files written by `H5Writer` (every converter, the synthetic generator) store a Fletcher-32
checksum with each chunk (h5py's `fletcher32` filter), i.e. one per sample: HDF5 then
refuses to return a damaged sample instead of handing back random pixels, and
`corrupt_samples` names every damaged one. Older files without checksums still load.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from tqdm import tqdm

from ..atomic import temporary_name
from ..errors import UserError, check_T
from .blur import NO_GAMMA, average_frames, check_gamma

FORMAT = "b2v"
VERSION = 1
SUPPORTED_VERSIONS = (1,)
MIN_METRIC_SIDE = 11
"""Smallest frame side the metrics accept: SSIM's Gaussian window (sigma 1.5) is 11 px."""


@dataclass(frozen=True)
class FileInfo:
    """What a valid file holds: N samples of T frames of H x W pixels, plus its attrs."""

    path: Path
    N: int
    T: int
    H: int
    W: int
    attrs: dict
    checksummed: bool = False  # every sample carries a Fletcher-32 checksum
    has_still: bool = False  # the file holds a still mask per sample


def read_info(path: str | os.PathLike, T: int | None = None) -> FileInfo:
    """Open and validate a b2v file, returning its shape; the file is closed again.

    UserError naming the file and the problem if it is missing, not HDF5, not ours, of an
    unsupported version, malformed, or holds T != expected T.
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a folder, not an HDF5 file")
    if not path.is_file():
        raise UserError(f"{path}: no such HDF5 file")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise UserError(f"{path}: not a readable HDF5 file ({e})") from None
    try:
        with f:
            return _validate(f, path, T)
    except (OSError, RuntimeError, KeyError) as e:  # h5py's errors for a damaged file structure
        raise UserError(f"{path}: damaged HDF5 file ({_first_line(e)})") from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _validate(f: h5py.File, path: Path, T: int | None) -> FileInfo:
    """read_info's checks on an open file."""
    attrs = {k: _plain(v) for k, v in f.attrs.items()}
    if attrs.get("format") != FORMAT:
        raise UserError(f"{path}: attribute format={attrs.get('format')!r}, expected {FORMAT!r} "
                         "(not a b2v dataset)")
    if attrs.get("version") not in SUPPORTED_VERSIONS:
        raise UserError(f"{path}: format version {attrs.get('version')!r} is not supported "
                         f"(supported: {SUPPORTED_VERSIONS})")
    for name in ("sharp", "blurry"):
        if not isinstance(f.get(name), h5py.Dataset):
            raise UserError(f"{path}: dataset {name!r} is missing")
    sharp, blurry = f["sharp"], f["blurry"]
    if sharp.dtype != np.uint8 or blurry.dtype != np.uint8:
        raise UserError(f"{path}: sharp/blurry must be uint8, got {sharp.dtype}/{blurry.dtype}")
    if sharp.ndim != 5 or sharp.shape[-1] != 3:
        raise UserError(f"{path}: sharp has shape {sharp.shape}, expected (N, T, H, W, 3)")
    N, fT, H, W, _ = sharp.shape
    if blurry.shape != (N, H, W, 3):
        raise UserError(f"{path}: blurry has shape {blurry.shape}, expected {(N, H, W, 3)} "
                         f"to match sharp {sharp.shape}")
    if N == 0:
        raise UserError(f"{path}: holds no samples")
    if attrs.get("T") != fT:
        raise UserError(f"{path}: attribute T={attrs.get('T')!r} but sharp holds {fT} frames")
    try:
        check_T(fT)
    except ValueError as e:
        raise UserError(f"{path}: {e}") from None
    if T is not None and T != fT:
        raise UserError(f"{path}: holds sequences of T={fT} frames, expected T={T}")
    still = f.get("still")
    if still is not None and (not isinstance(still, h5py.Dataset) or still.dtype != np.bool_
                              or still.shape != (N, H, W)):
        found = f"{still.dtype} {still.shape}" if isinstance(still, h5py.Dataset) else "a group"
        raise UserError(f"{path}: still mask is {found}, expected bool {(N, H, W)} to match sharp {sharp.shape}")
    return FileInfo(path, N, fT, H, W, attrs, checksummed=bool(sharp.fletcher32 and blurry.fletcher32),
                    has_still=still is not None)


def sample_error(path: Path, index: int, error: BaseException, checksummed: bool) -> UserError:
    """The UserError for a sample HDF5 could not read: a failed checksum, or damage."""
    if checksummed and "filter" in str(error):
        return UserError(f"{path}: sample {index} fails its checksum (the file is damaged; reconvert it)")
    return UserError(f"{path}: sample {index} cannot be read, the file is damaged ({_first_line(error)})")


def corrupt_samples(path: str | os.PathLike, limit: int = 0, progress: bool = False) -> list[int]:
    """Indices of the samples (of the first `limit`, 0 = all) whose pixels HDF5 cannot read
    back: with checksums (see the module docstring) every damaged sample, without them only
    damage to the file's structure."""
    info = read_info(path)
    n = info.N if limit <= 0 else min(limit, info.N)
    bad = []
    with h5py.File(info.path, "r") as f:
        # delay: a bar only for a check that takes a while, not a flash on every small file
        for i in tqdm(range(n), desc=f"checking {info.path.name}", unit="sample", disable=not progress, leave=False,
                      delay=1.0):
            try:
                f["sharp"][i]
                f["blurry"][i]
            except (OSError, RuntimeError, KeyError):
                bad.append(i)
    return bad


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
    overwrite: replace an existing file instead of refusing it (UserError).
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
            raise UserError(f"{self.path}: already exists (pass overwrite / --overwrite to replace it)")
        if not self.path.parent.is_dir():
            raise UserError(f"{self.path.parent}: output folder does not exist")
        self.tmp = temporary_name(self.path)
        self.file = h5py.File(self.tmp, "w")
        self.bar = tqdm(total=self.total, desc=f"writing {self.path.name}", unit="sample",
                        disable=not self.progress, leave=False)
        return self

    def append(self, sharp: np.ndarray, still: np.ndarray | None = None, blurry: np.ndarray | None = None) -> None:
        """Add one sample. sharp: uint8 (T, H, W, 3); all samples must share H and W.
        still: its still mask, bool (H, W), given for every sample or for none. blurry: uint8
        (H, W, 3) when the blurry image is not the frames' mean (one recorded by a camera,
        `b2v_rnn.data.camera`); by default the mean in linear light of this file's gamma."""
        if sharp.dtype != np.uint8 or sharp.shape[:1] != (self.T,) or sharp.ndim != 4 or sharp.shape[-1] != 3:
            raise UserError(f"sample {self.count}: expected uint8 ({self.T}, H, W, 3), "
                             f"got {sharp.dtype} {sharp.shape}")
        if still is not None and (still.dtype != np.bool_ or still.shape != sharp.shape[1:3]):
            raise UserError(f"sample {self.count}: still mask must be bool {sharp.shape[1:3]}, "
                            f"got {still.dtype} {still.shape}")
        if blurry is None:
            blurry = average_frames(sharp, self.gamma)
        elif blurry.dtype != np.uint8 or blurry.shape != sharp.shape[1:]:
            raise UserError(f"sample {self.count}: blurry image must be uint8 {sharp.shape[1:]}, "
                            f"got {blurry.dtype} {blurry.shape}")
        if self.count == 0:
            self._create_datasets(*sharp.shape[1:3], with_still=still is not None)
        names = ("sharp", "blurry", "still") if "still" in self.file else ("sharp", "blurry")
        if (still is not None) != (len(names) == 3):
            raise UserError(f"sample {self.count}: {'has' if still is not None else 'lacks'} a still mask, "
                            f"but the first sample {'did not' if still is not None else 'did'}")
        ds_sharp = self.file["sharp"]
        if sharp.shape[1:] != ds_sharp.shape[2:]:
            raise UserError(f"sample {self.count}: frames of size {sharp.shape[1:3]}, but earlier "
                             f"samples are {ds_sharp.shape[2:4]}")
        # Grow in blocks: resizing an HDF5 dataset per sample is needlessly slow.
        if self.count == ds_sharp.shape[0]:
            grow = max(16, self.count // 2)
            for name in names:
                self.file[name].resize(self.count + grow, axis=0)
        ds_sharp[self.count] = sharp
        self.file["blurry"][self.count] = blurry
        if still is not None:
            self.file["still"][self.count] = still
        self.count += 1
        self.bar.update(1)

    def _create_datasets(self, H: int, W: int, with_still: bool) -> None:
        """One chunk per sample, each with its checksum (the module docstring)."""
        shapes = {"sharp": ((self.T, H, W, 3), np.uint8), "blurry": ((H, W, 3), np.uint8)}
        if with_still:
            shapes["still"] = ((H, W), np.bool_)
        for name, (shape, dtype) in shapes.items():
            self.file.create_dataset(name, shape=(0, *shape), maxshape=(None, *shape), dtype=dtype,
                                     chunks=(1, *shape), fletcher32=True)

    def __exit__(self, exc_type, exc, tb) -> None:
        self.bar.close()
        complete = False
        try:
            if exc_type is None:
                if self.count == 0:
                    raise UserError(f"{self.path}: no samples were produced, nothing written")
                for name in ("sharp", "blurry", "still"):
                    if name in self.file:
                        self.file[name].resize(self.count, axis=0)
                self.file.attrs.update(self.attrs)
                complete = True
        finally:
            self.file.close()
            if complete:
                os.replace(self.tmp, self.path)
            self.tmp.unlink(missing_ok=True)
