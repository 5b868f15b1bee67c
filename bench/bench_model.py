"""Whole-model inference: φm + G unrolled for T = 7 frames, paper preset (paper Table 3).

Run:  PYTHONPATH=. python -m pytest bench/bench_model.py --benchmark-only
CPU: float32 at 320×320, 480×640 and 720×1280 (the two larger ones a single round: minutes on
a few cores). CUDA (skipped without a GPU): fp32 weights, channels_last, float32 (TF32) and
bfloat16 autocast (what `predict --amp` runs), synchronised in the timed call, each under the
three dispatch policies side by side: ``auto`` (the default), ``never`` (the eager cuDNN chain,
what ``B2V_OPS=reference`` runs) and ``always`` (every op on the fused kernels). The last test
asserts that the default is never slower than the eager chain (issue 12's requirement: installing
the kernels must not slow the model down). Target (paper preset, 720×1280, bf16): <= 40 ms.
``extra_info`` records seconds per image, parameter counts and the ops' paths.
"""

from __future__ import annotations

import pytest
import torch

from b2v_rnn import ops
from b2v_rnn.cli import autocast_for
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


CUDA_SECONDS: dict[tuple[str, str, str], float] = {}
"""(size, precision, policy) -> mean seconds, for the never-slower check at the end."""


def run_inference(benchmark, model, size, device, dtype, amp=False):
    on_cuda = device == "cuda"
    layout = torch.channels_last if on_cuda else torch.contiguous_format
    model = model.to(device=device, dtype=dtype, memory_format=layout)
    y = torch.rand(1, 3, *SIZES[size], device=device, dtype=dtype).contiguous(memory_format=layout)
    autocast = autocast_for(torch.device(device), amp)

    def extract():
        with torch.inference_mode(), autocast:
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
        amp="bf16" if amp else "off",
        ops=ops.describe(),
        params_middle=count(model.middle),
        params_generator=count(model.generator),
        params_total=count(model),
    )


@pytest.mark.parametrize("size", list(SIZES))
def test_cpu_float32(benchmark, paper_model, size):
    benchmark.group = "model-cpu"
    run_inference(benchmark, paper_model, size, "cpu", torch.float32)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("policy", ["auto", "never", "always"])
@pytest.mark.parametrize("precision", ["tf32", "bf16"])
@pytest.mark.parametrize("size", list(SIZES))
def test_cuda(benchmark, paper_model, size, precision, policy):
    benchmark.group = f"model-cuda-{size}-{precision}"
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    with ops.fused(policy):
        run_inference(benchmark, paper_model, size, "cuda", torch.float32, amp=precision == "bf16")
    benchmark.extra_info["policy"] = policy
    CUDA_SECONDS[(size, precision, policy)] = mean_seconds(benchmark)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_default_dispatch_is_never_slower_than_the_eager_chain():
    pairs = [(key, CUDA_SECONDS.get((*key[:2], "never"))) for key in CUDA_SECONDS if key[2] == "auto"]
    pairs = [(key, eager) for key, eager in pairs if eager == eager and eager is not None and CUDA_SECONDS[key] == CUDA_SECONDS[key]]
    if not pairs:
        pytest.skip("no timings (run with --benchmark-only, after test_cuda)")
    slower = {key: round(CUDA_SECONDS[key] / eager, 3) for key, eager in pairs if CUDA_SECONDS[key] > 1.1 * eager}
    assert not slower, f"the default dispatch is slower than the eager chain (ratio auto/never): {slower}"
