"""Data pipeline throughput: BlurSequenceDataset through a DataLoader, and synthetic generation.

    .venv/bin/python -m pytest bench/bench_data.py --benchmark-only

Loader: crop 256, batch 24 (the paper's batch for the side networks), full augmentation,
0 and 2 workers, on a synthetic file of 48 samples of 7 frames at 288 px made in a temp
dir. Each round is one pass over the file (2 batches); samples/s = 48 / mean time.
Resident: the same batches from `b2v_rnn.training.batches.ResidentBatches` (the whole file
held as uint8 on the device, cropped and augmented there in batched ops; what `train` uses on a
GPU), on the CPU here and on CUDA when present, side by side with the loader.
Synthetic: generation of 96 px samples (the default dataset's size) to an HDF5 file.
"""
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from b2v_rnn.data import BlurSequenceDataset, generate, render_sequence
from timing import mean_seconds

LOADER_SAMPLES = 48
BATCH = 24
CROP = 256


@pytest.fixture(scope="module")
def big_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "bench288.h5"
    generate(path, LOADER_SAMPLES, T=7, size=288, seed=0, progress=False)
    return path


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_throughput(benchmark, big_file, workers):
    dataset = BlurSequenceDataset(big_file, crop=CROP, augment=True)
    loader = DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=workers,
                        persistent_workers=workers > 0)

    def one_epoch():
        return sum(batch["sharp"].shape[0] for batch in loader)

    assert benchmark.pedantic(one_epoch, rounds=5, warmup_rounds=1) == LOADER_SAMPLES
    benchmark.extra_info["samples_per_s"] = LOADER_SAMPLES / mean_seconds(benchmark)


RESIDENT_DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", RESIDENT_DEVICES)
def test_resident_batches_throughput(benchmark, big_file, device):
    from b2v_rnn.distributed import Context
    from b2v_rnn.training.batches import ResidentBatches

    dataset = BlurSequenceDataset(big_file, crop=CROP, augment=True)
    context = Context(rank=0, world_size=1, local_rank=0, device=torch.device(device))
    batches = ResidentBatches(dataset, BATCH, seed=0, ctx=context, start_step=0, device=torch.device(device))

    def one_epoch():
        count = sum(next(batches)["sharp"].shape[0] for _ in range(LOADER_SAMPLES // BATCH))
        if device == "cuda":
            torch.cuda.synchronize()
        return count

    assert benchmark.pedantic(one_epoch, rounds=5, warmup_rounds=1) == LOADER_SAMPLES
    benchmark.extra_info["samples_per_s"] = LOADER_SAMPLES / mean_seconds(benchmark)


def test_synthetic_render_96(benchmark):
    rng_seeds = iter(range(10**6))
    benchmark.pedantic(lambda: render_sequence(np.random.default_rng(next(rng_seeds)), 7, 96),
                       rounds=20, warmup_rounds=2)
    benchmark.extra_info["samples_per_s"] = 1 / mean_seconds(benchmark)


def test_synthetic_generate_file_96(benchmark, tmp_path):
    counter = iter(range(10**6))
    n = 32

    def write():
        generate(tmp_path / f"s{next(counter)}.h5", n, T=7, size=96, seed=0, progress=False)

    benchmark.pedantic(write, rounds=2, warmup_rounds=1)
    benchmark.extra_info["samples_per_s"] = n / mean_seconds(benchmark)
