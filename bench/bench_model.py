"""Whole-model inference: φm + G unrolled for T = 7 frames, paper preset (paper Table 3).

Run:  PYTHONPATH=. python -m pytest bench/bench_model.py --benchmark-only
CPU: float32 at 320×320, 480×640 and 720×1280 (the two larger ones a single round: minutes on
a few cores). CUDA (skipped without a GPU): float32 and bfloat16, synchronised in the timed call.
``extra_info`` records seconds per image, parameter counts and the ops backend.
"""

from __future__ import annotations

import pytest
import torch

from b2v_rnn import ops
from b2v_rnn.models import build_model
from timing import mean_seconds

T = 7
SIZES = {"320x320": (320, 320), "480x640": (480, 640), "720x1280": (720, 1280)}
CPU_ROUNDS = {"320x320": 3, "480x640": 1, "720x1280": 1}
CUDA_ROUNDS = 5


@pytest.fixture(scope="module")
def paper_model():
    torch.manual_seed(0)
    return build_model("paper").eval()


def run_inference(benchmark, model, size, device, dtype):
    model = model.to(device=device, dtype=dtype)
    y = torch.rand(1, 3, *SIZES[size], device=device, dtype=dtype)
    on_cuda = device == "cuda"

    def extract():
        with torch.inference_mode():
            frames = model.extract(y, T)
        if on_cuda:
            torch.cuda.synchronize()
        return frames

    rounds = CUDA_ROUNDS if on_cuda else CPU_ROUNDS[size]
    # One warm-up on CUDA (cuDNN autotuning, lazy init); on CPU a round already takes seconds.
    frames = benchmark.pedantic(extract, rounds=rounds, iterations=1, warmup_rounds=1 if on_cuda else 0)
    assert frames.shape == (1, T, 3, *SIZES[size])
    count = lambda module: sum(p.numel() for p in module.parameters())
    benchmark.extra_info.update(
        seconds_per_image=mean_seconds(benchmark),
        T=T,
        size=size,
        dtype=str(dtype),
        device=torch.cuda.get_device_name() if on_cuda else "cpu",
        threads=torch.get_num_threads(),
        ops_backend=ops.backend(),
        params_middle=count(model.middle),
        params_generator=count(model.generator),
        params_total=count(model),
    )


@pytest.mark.parametrize("size", list(SIZES))
def test_cpu_float32(benchmark, paper_model, size):
    benchmark.group = "model-cpu"
    run_inference(benchmark, paper_model, size, "cpu", torch.float32)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
@pytest.mark.parametrize("size", list(SIZES))
def test_cuda(benchmark, paper_model, size, dtype):
    benchmark.group = f"model-cuda-{size}"
    run_inference(benchmark, paper_model, size, "cuda", dtype)
