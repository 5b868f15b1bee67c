"""Whole-model inference: φm + G unrolled for T = 7 frames, paper preset (paper Table 3).

Run:  PYTHONPATH=. python -m pytest bench/bench_model.py --benchmark-only

CPU: 320×320 and 480×640, float32 and bfloat16 autocast, channels_last (what
`predict` runs, :mod:`b2v_rnn.inference`) and contiguous, each under the dispatch policies
``auto`` (the default: the one-pass norm kernel, the fused fp32 1×1 convs on NCHW) and
``never`` (the eager chain everywhere, what ``B2V_OPS=reference`` computes) side by side.
``test_cpu_default_is_never_slower_than_the_eager_chain`` asserts the default's side of
each pair, and ``test_cpu_default_precision_is_never_slower_than_fp32`` that the precision
``--precision auto`` measures and takes here is not slower than float32 at 320×320 (in a
timed run: the smoke run, ``--benchmark-disable``, times one round and only checks the code runs).
CUDA (skipped without a GPU): fp32 weights, channels_last, float32 (TF32) and bfloat16
autocast, under ``auto``, ``never`` and ``always``, with the same assertion.
Target (paper preset, 720×1280, bf16, CUDA): <= 40 ms. ``extra_info`` records seconds per
image, parameter counts and the ops' paths.
"""

from __future__ import annotations

import os
import statistics
import time

import pytest
import torch

from b2v_rnn import ops
from b2v_rnn.cli import autocast_for
from b2v_rnn.inference import InferenceSettings, settings_for
from b2v_rnn.models import build_model
from timing import mean_seconds

T = 7
SIZES = {"320x320": (320, 320), "480x640": (480, 640), "720x1280": (720, 1280)}
CPU_SIZES = ("320x320", "480x640")
CPU_ROUNDS = {"320x320": 5, "480x640": 3}
CUDA_ROUNDS = 5


@pytest.fixture(scope="module")
def paper_model():
    torch.manual_seed(0)
    return build_model("paper").eval()


CUDA_SECONDS: dict[tuple[str, str, str], float] = {}
"""(size, precision, policy) -> mean seconds, for the never-slower check at the end."""


def run_inference(benchmark, model, size, device, dtype, amp=False, layout=None):
    on_cuda = device == "cuda"
    layout = layout or (torch.channels_last if on_cuda else torch.contiguous_format)
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
    # One warm-up everywhere: cuDNN autotuning and lazy init on CUDA, oneDNN's primitive cache on CPU.
    frames = benchmark.pedantic(extract, rounds=rounds, iterations=1, warmup_rounds=1)
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


CPU_SECONDS: dict[tuple[str, str, str, str], float] = {}
"""(size, precision, layout, policy) -> mean seconds, for the never-slower check on the CPU."""


@pytest.mark.parametrize("policy", ["auto", "never"])
@pytest.mark.parametrize("layout", ["channels_last", "contiguous"])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("size", CPU_SIZES)
def test_cpu(benchmark, paper_model, size, precision, layout, policy):
    benchmark.group = f"model-cpu-{size}-{precision}"
    memory_format = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    with ops.fused(policy):
        run_inference(benchmark, paper_model, size, "cpu", torch.float32, amp=precision == "bf16",
                      layout=memory_format)
    benchmark.extra_info.update(policy=policy, layout=layout,
                                predict_default=InferenceSettings(torch.device("cpu"), precision).describe())
    CPU_SECONDS[(size, precision, layout, policy)] = mean_seconds(benchmark)


def test_cpu_default_is_never_slower_than_the_eager_chain(benchmark):
    """At every size, precision and layout, the default dispatch (``auto``) is at most
    5 % slower than the eager chain (``never``, what B2V_OPS=reference computes) timed beside it.

    (``benchmark`` times nothing here: --benchmark-only skips tests without the fixture.)"""
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    pairs = {key: (seconds, CPU_SECONDS.get((*key[:3], "never"))) for key, seconds in CPU_SECONDS.items()
             if key[3] == "auto"}
    pairs = {key: pair for key, pair in pairs.items() if pair[1] is not None and pair[0] == pair[0] and pair[1] == pair[1]}
    if not pairs:
        pytest.skip("no timings (run with --benchmark-only, after test_cpu)")
    slower = {key: round(auto / never, 3) for key, (auto, never) in pairs.items() if auto > 1.05 * never}
    assert not slower, f"the default dispatch is slower than the eager chain (ratio auto/never): {slower}"


@pytest.mark.parametrize("preset", ["paper", "small", "tiny"])
def test_cpu_default_precision_is_never_slower_than_fp32(benchmark, paper_model, monkeypatch, preset):
    """The precision ``predict`` takes by default here (``--precision auto``, probed afresh:
    B2V_PRECISION_CACHE=off) runs the model at 320×320, T = 7, channels_last, at most 5 % slower
    than float32; and where bf16 runs the whole model >= 1.25× faster, the probe took it. The
    paper preset is the one that counts; the small one is the shipped weights' and the tiny one
    a model whose probe keeps fp32 here.

    Each round extracts once in float32 and once in bf16, in alternating order, so a
    neighbour's load hits both; the medians are compared. ``extra_info``: the probe's choice,
    its measured layer speed-up and cost, the whole model's seconds and ratios, the load."""
    monkeypatch.setenv("B2V_PRECISION_CACHE", "off")
    benchmark.group = f"default precision {preset}"
    torch.manual_seed(0)
    model = paper_model if preset == "paper" else build_model(preset).eval()
    cpu = torch.device("cpu")
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    start = time.perf_counter()
    default = settings_for(cpu, "auto", model=model)
    probe_seconds = time.perf_counter() - start
    model = default.prepare(model)
    y = default.input(torch.rand(1, 3, *SIZES["320x320"]))
    seconds: dict[str, list[float]] = {"fp32": [], "bf16": []}

    def extract(precision: str) -> float:
        begin = time.perf_counter()
        with torch.inference_mode(), autocast_for(cpu, precision == "bf16"):
            model.extract(y, T)
        return time.perf_counter() - begin

    extract("fp32"), extract("bf16")  # oneDNN's primitives are created at the first call

    def pair():
        order = ("fp32", "bf16") if len(seconds["fp32"]) % 2 == 0 else ("bf16", "fp32")
        for precision in order:
            seconds[precision].append(extract(precision))

    benchmark.pedantic(pair, rounds=CPU_ROUNDS["320x320"], iterations=1)
    median = {precision: statistics.median(times) for precision, times in seconds.items()}
    bf16_speedup = median["fp32"] / median["bf16"]
    default_ratio = median[default.precision] / median["fp32"]
    benchmark.extra_info.update(
        preset=preset, default=default.describe(), probe_seconds=round(probe_seconds, 3),
        threads=torch.get_num_threads(), seconds_fp32=seconds["fp32"], seconds_bf16=seconds["bf16"],
        bf16_speedup=round(bf16_speedup, 3),
        default_over_fp32=round(default_ratio, 3), load_before=load_before,
        load_after=os.getloadavg() if hasattr(os, "getloadavg") else None,
    )
    print(f"\n{preset}: default {default.describe()} (probe {probe_seconds:.2f} s) | median fp32 {median['fp32']:.3f} s, "
          f"bf16 {median['bf16']:.3f} s: bf16 {bf16_speedup:.2f}x fp32, default {default_ratio:.2f}x fp32's time")
    if benchmark.disabled:  # the smoke run (--benchmark-disable): one round each, too few to judge speed
        return
    assert default_ratio <= 1.05, f"the default ({default.describe()}) took {default_ratio:.2f}x fp32's time"
    assert default.precision == "bf16" or bf16_speedup < 1.25, (
        f"the default ({default.describe()}) kept fp32 where bf16 ran the model {bf16_speedup:.2f}x faster")


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
def test_cuda_default_dispatch_is_never_slower_than_the_eager_chain(benchmark):
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)  # --benchmark-only skips tests without it
    pairs = [(key, CUDA_SECONDS.get((*key[:2], "never"))) for key in CUDA_SECONDS if key[2] == "auto"]
    pairs = [(key, eager) for key, eager in pairs if eager == eager and eager is not None and CUDA_SECONDS[key] == CUDA_SECONDS[key]]
    if not pairs:
        pytest.skip("no timings (run with --benchmark-only, after test_cuda)")
    slower = {key: round(CUDA_SECONDS[key] / eager, 3) for key, eager in pairs if CUDA_SECONDS[key] > 1.1 * eager}
    assert not slower, f"the default dispatch is slower than the eager chain (ratio auto/never): {slower}"
