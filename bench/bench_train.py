"""Training throughput: one full `b2v_rnn.training.step.train_step` (φm, G unrolled with teacher
forcing, discriminator; forward, backward and the three Adam steps).

Run:  PYTHONPATH=. python -m pytest bench/bench_train.py --benchmark-only
CPU: the tiny preset at the main job's settings (T=7, batch 4, 40 x 40 crops) and at batch 8,
60 x 60, and the small preset at batch 8, 80 x 80; each in float32 and under bfloat16 autocast
(--amp: oneDNN bf16, AMX on this Xeon). CUDA (skipped without a GPU): the small preset at
batch 64, 80 x 80 (the 10-minute GPU run's setting; target >= 3,000 samples/s in bf16), and the
paper preset at the paper's batch 24, 320 x 320 crops; float32 (TF32) and bf16, channels_last,
synchronised in the timed call.
Inputs are random tensors already on the device: data loading is measured in
bench_data.py. No VGG16 weights are loaded (the gradient-L1 substitute runs), as on a
machine without them. ``extra_info`` records samples/s, achieved TFLOP/s (the FLOPs of one
step counted by torch's FlopCounterMode on the eager path, forward and backward), and peak
memory (CUDA: peak allocated by PyTorch; CPU: the process's peak resident set, an upper bound).
"""

from __future__ import annotations

import resource
import sys
from argparse import Namespace

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from b2v_rnn import ops
from b2v_rnn.cli import autocast_for
from b2v_rnn.losses import ADVERSARIAL_WEIGHT, DEFAULT_PAIR_LOSS, GRADIENT_WEIGHT, PAIR_PATCH, PERCEPTUAL_WEIGHT
from b2v_rnn.models import build_discriminator, build_model
from b2v_rnn.training.step import TeacherForced, train_step
from timing import mean_seconds

T = 7


def step_flops(run_step) -> int:
    """FLOPs of one training step (convolutions and matmuls, forward and backward), counted on
    the eager path: the fused ops are not aten ops, so the counter would miss them."""
    with ops.fused("never"), FlopCounterMode(display=False) as counter:
        run_step()
    return counter.get_total_flops()


def run_training(benchmark, preset, batch, crop, device, amp, rounds, warmup, layout=None):
    torch.manual_seed(0)
    layout = layout or (torch.channels_last if device == "cuda" else torch.contiguous_format)
    model = build_model(preset).to(device, memory_format=layout)
    disc = build_discriminator(preset).to(device, memory_format=layout)
    fused = {"fused": True} if device == "cuda" else {}  # as the trainer does
    optimizers = {
        "middle": torch.optim.Adam(model.middle.parameters(), lr=1e-4, **fused),
        "generator": torch.optim.Adam(model.generator.parameters(), lr=1e-4, **fused),
        "discriminator": torch.optim.Adam(disc.parameters(), lr=1e-4, betas=(0.5, 0.999), **fused),
    }
    args = Namespace(perceptual_weight=PERCEPTUAL_WEIGHT, gradient_weight=GRADIENT_WEIGHT,
                     adv_weight=ADVERSARIAL_WEIGHT, pair_loss=DEFAULT_PAIR_LOSS, pair_patch=PAIR_PATCH)
    batch_data = {"blurry": torch.rand(batch, 3, crop, crop, device=device),
                  "sharp": torch.rand(batch, T, 3, crop, crop, device=device)}
    net = TeacherForced(model, "joint")
    context = autocast_for(torch.device(device), amp)
    on_cuda = device == "cuda"
    if on_cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        torch.cuda.reset_peak_memory_stats()

    def step():
        losses = train_step(batch_data, net, disc, disc, None, optimizers, args, device, context, layout)
        if on_cuda:
            torch.cuda.synchronize()
        return losses

    flops = step_flops(step)
    losses = benchmark.pedantic(step, rounds=rounds, iterations=1, warmup_rounds=warmup)
    assert all(torch.isfinite(v).item() for v in losses.values())
    seconds = mean_seconds(benchmark)
    if on_cuda:
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:  # ru_maxrss: KiB on Linux, bytes on macOS
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)
    benchmark.extra_info.update(
        preset=preset, T=T, batch=batch, crop=crop, amp="bf16" if amp else "off",
        seconds_per_step=seconds, samples_per_second=batch / seconds, tflop_per_step=flops / 1e12,
        tflop_per_second=flops / 1e12 / seconds, peak_memory_mib=round(peak, 1),
        peak_memory_kind="cuda max_memory_allocated" if on_cuda else "process peak RSS",
        device=torch.cuda.get_device_name() if on_cuda else "cpu", threads=torch.get_num_threads(),
        ops=ops.describe(), layout="channels_last" if layout == torch.channels_last else "contiguous",
    )


AMP = pytest.mark.parametrize("amp", [False, True], ids=["fp32", "bf16"])


@AMP
@pytest.mark.parametrize("preset,batch,crop", [("tiny", 4, 40), ("tiny", 8, 60), ("small", 8, 80)],
                         ids=["tiny-b4-40px", "tiny-b8-60px", "small-b8-80px"])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_train_step_cpu(benchmark, preset, batch, crop, amp, layout):
    benchmark.group = f"train step cpu {preset} b{batch} {crop}px"
    memory_format = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    run_training(benchmark, preset, batch=batch, crop=crop, device="cpu", amp=amp, rounds=3, warmup=1,
                 layout=memory_format)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@AMP
@pytest.mark.parametrize("preset,batch,crop", [("small", 64, 80), ("paper", 24, 320)],
                         ids=["small-b64-80px", "paper-b24-320px"])
def test_train_step_cuda(benchmark, preset, batch, crop, amp):
    benchmark.group = f"train step cuda {preset} b{batch} {crop}px"
    run_training(benchmark, preset, batch=batch, crop=crop, device="cuda", amp=amp, rounds=10, warmup=3)
