"""The training data stream: batches whose content is a function of (seed, step) alone.

Two sources, one contract (an endless iterator of {"blurry" (B,3,h,w), "sharp" (B,T,3,h,w)}
float batches in [0,1]):

- :func:`hdf5_batches`: a DataLoader over :class:`~b2v_rnn.data.BlurSequenceDataset`; each
  sample is read from the file and augmented on the CPU by worker processes.
- :class:`ResidentBatches`: the whole training file held as uint8 tensors on the training
  device, and each batch cut and augmented there (a few small ops per clip, one float
  conversion per batch). On a GPU this takes the file reads, the worker processes and the
  host-to-device copies out of the step (a few thousand clips at 96-320 px are 0.3-3 GB of
  uint8). On the CPU it measured 1.2-1.3x slower than the DataLoader (bench_data.py), which
  stays the CPU default.

Both draw the same augmentations (:mod:`b2v_rnn.data.augment`: random crop, colour-channel
shuffle, rotation by multiples of 90°, horizontal flip, 1 % noise on y), each from its own
seeded generator, so a resumed run sees the batches the uninterrupted run would have seen.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from .. import distributed
from ..data.augment import Augment, add_noise
from ..errors import UserError
from .signals import leave_stop_signals_to_main


class StepSampler(Sampler):
    """Endless stream of (epoch, index) pairs; the data order is a function of (seed, step).

    Each epoch is a DistributedSampler permutation (seed, epoch) of this process's shard,
    cut to whole batches; the stream starts at `start_step` batches in, so a resumed run
    sees exactly the samples the uninterrupted run would have seen.
    """

    def __init__(self, n: int, batch_size: int, seed: int, rank: int, world_size: int, start_step: int = 0):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world_size, self.start_step = rank, world_size, start_step
        self.steps_per_epoch = (n // world_size) // batch_size
        if self.steps_per_epoch == 0:
            raise UserError(f"--batch-size {batch_size} x {world_size} process(es) exceeds the {n} training samples")

    def __iter__(self):
        epoch, offset = divmod(self.start_step, self.steps_per_epoch)
        while True:
            shard = DistributedSampler(range(self.n), num_replicas=self.world_size, rank=self.rank,
                                       shuffle=True, seed=self.seed, drop_last=True)
            shard.set_epoch(epoch)
            indices = list(shard)[: self.steps_per_epoch * self.batch_size]
            for index in indices[offset * self.batch_size:]:
                yield epoch, index
            epoch, offset = epoch + 1, 0


class EpochIndexed(Dataset):
    """dataset[(epoch, i)] = sample i with the augmentation draws of `epoch`."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        epoch, index = key
        self.dataset.set_epoch(epoch)
        return self.dataset[index]


def open_dataset(path: Path | None, split: str, T: int, crop, augment: Augment | bool, seed: int, ctx, log=None):
    """The HDF5 file (or the embedded synthetic split) as a BlurSequenceDataset. With `log`
    given, a crop larger than the frames shrinks to the largest multiple of 20 that fits."""
    from ..data import BlurSequenceDataset, default_dataset, read_info
    from ..errors import UserError
    from ..data.h5format import corrupt_samples

    def generate_on_main() -> None:
        try:
            default_dataset(split, T)
        except (FileNotFoundError, ValueError) as e:  # UserError is a ValueError
            raise UserError(f"--{split}: {e}") from None

    if path is None:  # the other ranks wait while rank 0 generates the cache (or stop with it)
        distributed.judged_by_main(ctx, generate_on_main)
    try:
        if path is None:
            path = default_dataset(split, T)
        if log is not None:
            info = read_info(path, T)
            fits = min(info.H, info.W) // 20 * 20
            if crop > fits > 0:
                log(f"note: the preset's {crop} px crop does not fit the {info.H}x{info.W} frames of {path}; "
                    f"training on {fits} px crops")
                crop = fits
        dataset = BlurSequenceDataset(path, crop=crop, augment=augment, T=T, seed=seed)
        # Every sample read once now: a damaged one found mid-run would end it with a traceback.
        bad = corrupt_samples(path, progress=ctx.is_main)
    except (FileNotFoundError, ValueError) as e:  # UserError is a ValueError
        raise UserError(f"--{split}: {e}") from None
    if bad:
        listed = ", ".join(map(str, bad[:10])) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
        raise UserError(f"--{split} {path}: {len(bad)} of {len(dataset)} samples are damaged "
                       f"({'they fail their checksums' if dataset.info.checksummed else 'unreadable'}): "
                       f"sample(s) {listed}; reconvert the file")
    return dataset


def hdf5_batches(dataset, batch_size: int, seed: int, ctx, start_step: int, num_workers: int, pin: bool):
    """Endless batches read by DataLoader workers (see the module doc)."""
    sampler = StepSampler(len(dataset), batch_size, seed, ctx.rank, ctx.world_size, start_step=start_step)
    loader = DataLoader(EpochIndexed(dataset), batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                        pin_memory=pin, drop_last=True, persistent_workers=num_workers > 0,
                        worker_init_fn=leave_stop_signals_to_main)
    return iter(loader)


def resident_bytes(info) -> int:
    """Bytes of a file's sharp and blurry arrays held as uint8."""
    return info.N * (info.T + 1) * info.H * info.W * 3


def fits_on_device(info, device: torch.device, share: float = 0.25) -> bool:
    """True on CUDA when the clips take at most `share` of the GPU's memory."""
    if device.type != "cuda":
        return False
    return resident_bytes(info) <= share * torch.cuda.get_device_properties(device).total_memory


class ResidentBatches:
    """Endless augmented batches from a training file held whole on `device` (see the module doc).

    The order of clips is :class:`StepSampler`'s; the augmentation of step s is drawn from
    generators seeded by (seed, rank, s). The draws differ from the HDF5 loader's (one
    generator per batch instead of per sample), the distribution is the same.
    """

    def __init__(self, dataset, batch_size: int, seed: int, ctx, start_step: int, device: torch.device):
        from ..data.h5format import corrupt_samples

        self.path, self.crop, self.augment = dataset.path, dataset.crop, dataset.augment
        self.batch_size, self.seed, self.rank, self.device = batch_size, seed, ctx.rank, device
        self.order = iter(StepSampler(len(dataset), batch_size, seed, ctx.rank, ctx.world_size, start_step=start_step))
        self.step = start_step
        try:
            with h5py.File(self.path, "r") as f:  # reading through the filters verifies each chunk's checksum
                sharp, blurry = f["sharp"][:], f["blurry"][:]
        except (OSError, RuntimeError, KeyError) as e:
            bad = corrupt_samples(self.path)
            what = f"samples {bad[:10]} cannot be read" if bad else f"cannot be read ({e})"
            raise UserError(f"--train: {self.path}: {what}; the file is damaged, reconvert it") from None
        self.sharp = torch.from_numpy(sharp).to(device)  # (N, T, H, W, 3) uint8
        self.blurry = torch.from_numpy(blurry).to(device)  # (N, H, W, 3) uint8

    def __iter__(self):
        return self

    def _generators(self) -> tuple[torch.Generator, torch.Generator]:
        seeds = np.random.SeedSequence([self.seed, self.rank, self.step]).generate_state(2, np.uint64)
        cpu = torch.Generator().manual_seed(int(seeds[0]) & ((1 << 63) - 1))
        noise = torch.Generator(self.device).manual_seed(int(seeds[1]) & ((1 << 63) - 1))
        return cpu, noise

    def __next__(self) -> dict[str, torch.Tensor]:
        indices = [next(self.order)[1] for _ in range(self.batch_size)]
        draws, noise = self._generators()
        self.step += 1
        return augmented_batch(self.blurry, self.sharp, indices, self.crop, self.augment, draws, noise)


def augmented_batch(blurry_u8, sharp_u8, indices, crop, aug: Augment, gen: torch.Generator,
                    noise_gen: torch.Generator) -> dict[str, torch.Tensor]:
    """The clips `indices` of uint8 (N, H, W, 3) / (N, T, H, W, 3) tensors, cropped and augmented as
    `augment.apply` does (same crop, channel order, turn and flip for y and every frame), as a
    float batch on their device: {"blurry" (B,3,h,w), "sharp" (B,T,3,h,w)}.

    Each clip is cut and turned while still uint8, one slice per clip (4x less memory traffic
    than float, and on the CPU faster than gathers over index grids); one conversion follows.
    """
    H, W = sharp_u8.shape[2:4]
    h, w = crop
    batch = len(indices)
    if aug.crop:
        tops, lefts = torch.randint(H - h + 1, (batch,), generator=gen), torch.randint(W - w + 1, (batch,), generator=gen)
    else:
        tops, lefts = torch.full((batch,), (H - h) // 2), torch.full((batch,), (W - w) // 2)
    perms = torch.rand(batch, 3, generator=gen).argsort(dim=1) if aug.channel_shuffle else torch.arange(3).expand(batch, 3)
    square = h == w
    if not aug.rotate:
        turns = torch.zeros(batch, dtype=torch.long)
    else:
        turns = torch.randint(4, (batch,), generator=gen) if square else 2 * torch.randint(2, (batch,), generator=gen)
    flips = torch.randint(2, (batch,), generator=gen) if aug.flip else torch.zeros(batch, dtype=torch.long)
    blurry, sharp = [], []
    for i, t, l, perm, k, flip in zip(indices, tops.tolist(), lefts.tolist(), perms.tolist(), turns.tolist(),
                                      flips.tolist()):
        y, x = blurry_u8[i, t:t + h, l:l + w][..., perm], sharp_u8[i, :, t:t + h, l:l + w][..., perm]  # HWC
        if k:
            y, x = torch.rot90(y, k, (-3, -2)), torch.rot90(x, k, (-3, -2))
        if flip:
            y, x = y.flip(-2), x.flip(-2)
        blurry.append(y)
        sharp.append(x)
    blurry = torch.stack(blurry).permute(0, 3, 1, 2).float().div_(255.0)
    sharp = torch.stack(sharp).permute(0, 1, 4, 2, 3).float().div_(255.0)
    return {"blurry": add_noise(blurry, aug, noise_gen).contiguous(), "sharp": sharp.contiguous()}
