"""Training throughput: one full `b2v_rnn.train.train_step` (φm, G unrolled with teacher
forcing, discriminator; forward, backward and the three Adam steps).

Run:  PYTHONPATH=. python -m pytest bench/bench_train.py --benchmark-only
CPU: the tiny preset at the main job's settings (T=7, batch 4, 40 x 40 crops) and at
batch 8, 60 x 60. CUDA
(skipped without a GPU): the paper preset at the paper's batch 24 and 320 x 320 crops,
float32 and bfloat16 autocast, synchronised in the timed call.
Inputs are random tensors already on the device: data loading is measured in
bench_data.py. No VGG16 weights are loaded (the gradient-L1 substitute runs), as on a
machine without them. ``extra_info`` records samples/s and peak memory (CUDA: peak
allocated by PyTorch; CPU: the process's peak resident set, an upper bound).
"""

from __future__ import annotations

import resource
import sys
from argparse import Namespace
from contextlib import nullcontext

import pytest
import torch

from b2v_rnn import ops
from b2v_rnn.losses import ADVERSARIAL_WEIGHT, GRADIENT_WEIGHT, PERCEPTUAL_WEIGHT
from b2v_rnn.models import build_discriminator, build_model
from b2v_rnn.train import TeacherForced, train_step
from timing import mean_seconds

T = 7


def run_training(benchmark, preset, batch, crop, device, amp, rounds, warmup):
    torch.manual_seed(0)
    model, disc = build_model(preset).to(device), build_discriminator(preset).to(device)
    optimizers = {
        "middle": torch.optim.Adam(model.middle.parameters(), lr=1e-4),
        "generator": torch.optim.Adam(model.generator.parameters(), lr=1e-4),
        "discriminator": torch.optim.Adam(disc.parameters(), lr=1e-4, betas=(0.5, 0.999)),
    }
    args = Namespace(perceptual_weight=PERCEPTUAL_WEIGHT, gradient_weight=GRADIENT_WEIGHT,
                     adv_weight=ADVERSARIAL_WEIGHT)
    batch_data = {"blurry": torch.rand(batch, 3, crop, crop, device=device),
                  "sharp": torch.rand(batch, T, 3, crop, crop, device=device)}
    net = TeacherForced(model, "joint")
    context = torch.autocast("cuda", dtype=torch.bfloat16) if amp else nullcontext()
    on_cuda = device == "cuda"
    if on_cuda:
        torch.cuda.reset_peak_memory_stats()

    def step():
        losses = train_step(batch_data, net, disc, disc, None, optimizers, args, device, context)
        if on_cuda:
            torch.cuda.synchronize()
        return losses

    losses = benchmark.pedantic(step, rounds=rounds, iterations=1, warmup_rounds=warmup)
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    seconds = mean_seconds(benchmark)
    if on_cuda:
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:  # ru_maxrss: KiB on Linux, bytes on macOS
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)
    benchmark.extra_info.update(
        preset=preset, T=T, batch=batch, crop=crop, amp="bf16" if amp else "off",
        seconds_per_step=seconds, samples_per_second=batch / seconds, peak_memory_mib=round(peak, 1),
        peak_memory_kind="cuda max_memory_allocated" if on_cuda else "process peak RSS",
        device=torch.cuda.get_device_name() if on_cuda else "cpu", threads=torch.get_num_threads(),
        ops_backend=ops.backend(),
    )


@pytest.mark.parametrize("batch,crop", [(4, 40), (8, 60)], ids=["b4-40px", "b8-60px"])
def test_train_step_tiny_cpu(benchmark, batch, crop):
    run_training(benchmark, "tiny", batch=batch, crop=crop, device="cpu", amp=False, rounds=5, warmup=1)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("amp", [False, True], ids=["fp32", "bf16"])
def test_train_step_paper_cuda(benchmark, amp):
    run_training(benchmark, "paper", batch=24, crop=320, device="cuda", amp=amp, rounds=10, warmup=3)
