"""GPU benchmarks of the fused ops against their baselines (docs/design.md §4.5), skipped without CUDA.

For each shape, dtype (float32, bfloat16) and pass (forward, forward+backward):
- ``fused``: the b2v_rnn op on NCHW tensors (its kernels' native layout);
- ``eager``: the chain it replaces (pixel_unshuffle → conv2d; affine → ReLU → conv2d), in
  channels_last, cuDNN's fast layout;
- ``strided`` (resampling only): the single equivalent convolution on the original image,
  a (4·5)×(4·5) kernel with stride 4, no intermediate tensor at all.
The fused op must beat the better baseline. Every timed callable ends with
torch.cuda.synchronize(), so the figures are GPU time, not launch time. Run:

    pytest bench/bench_ops_cuda.py --benchmark-only --benchmark-group-by=param:case,param:dtype,param:pass_
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from b2v_rnn import ops

pytestmark = [
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: nothing to benchmark"),
    pytest.mark.usefixtures("fused_always"),  # `fused` times the kernels (the default dispatch picks cuDNN)
]

FACTOR = 4
# (case id, batch, image height, image width): the resampling conv maps the 1-channel image
# (one colour of the photo) to 144 channels at 1/4 resolution; the dilated conv then runs at
# that resolution (144 → 144, 3×3, dilation 2).
SHAPES = [
    ("infer-320x320-b3", 3, 320, 320),
    ("infer-720x1280-b3", 3, 720, 1280),
    ("train-320x320-b24", 24, 320, 320),
]
DTYPES = [pytest.param(torch.float32, id="float32"), pytest.param(torch.bfloat16, id="bfloat16")]
PASSES = ["forward", "forward+backward"]


class _CudaMachineInfo:
    """Adds the GPU to pytest-benchmark's machine info (kept in this file, not conftest)."""

    @staticmethod
    def pytest_benchmark_update_machine_info(config, machine_info):
        if torch.cuda.is_available():
            properties = torch.cuda.get_device_properties(0)
            machine_info["gpu"] = {
                "name": properties.name,
                "capability": f"{properties.major}.{properties.minor}",
                "memory_gib": round(properties.total_memory / 2**30, 1),
                "torch_cuda": torch.version.cuda,
                "cudnn": torch.backends.cudnn.version(),
                "b2v_backend": ops.backend(),
            }


@pytest.fixture(scope="module", autouse=True)
def _gpu_machine_info(request):
    plugins = request.config.pluginmanager
    if not plugins.has_plugin("b2v_cuda_machine_info"):
        plugins.register(_CudaMachineInfo(), "b2v_cuda_machine_info")


def _time(benchmark, step, pass_, leaves):
    """Benchmarks `step()` (forward) or its forward+backward, synchronised."""

    def forward():
        with torch.no_grad():
            step()
        torch.cuda.synchronize()

    def forward_backward():
        for leaf in leaves:
            leaf.grad = None
        step().sum().backward()
        torch.cuda.synchronize()

    run = forward if pass_ == "forward" else forward_backward
    for _ in range(3):  # warm-up: cuDNN autotuning, allocator, lazy loading
        run()
    benchmark.pedantic(run, rounds=20, iterations=1)


def _strided_weight(weight: torch.Tensor) -> torch.Tensor:
    """W'[k, c, r·i+dy, r·j+dx] = W[k, c·r²+dy·r+dx, i, j]: conv(unshuffle(x), W) == conv(x, W', stride r)."""
    k, c_r2, kh, kw = weight.shape
    c = c_r2 // (FACTOR * FACTOR)
    w = weight.reshape(k, c, FACTOR, FACTOR, kh, kw).permute(0, 1, 4, 2, 5, 3)
    return w.reshape(k, c, kh * FACTOR, kw * FACTOR)


@pytest.mark.parametrize("pass_", PASSES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("impl", ["fused", "eager", "strided"])
@pytest.mark.parametrize("case, batch, height, width", SHAPES, ids=[s[0] for s in SHAPES])
def test_resample_conv2d(benchmark, case, batch, height, width, impl, dtype, pass_):
    benchmark.group = f"resample 1->144 k5 {case} {dtype} {pass_}"
    train = pass_ != "forward"
    x = torch.randn(batch, 1, height, width, device="cuda", dtype=dtype)
    weight = (torch.randn(144, FACTOR * FACTOR, 5, 5, device="cuda", dtype=dtype) / 20).requires_grad_(train)
    bias = torch.zeros(144, device="cuda", dtype=dtype, requires_grad=train)
    if impl == "fused":
        step = lambda: ops.resample_conv2d(x, weight, bias, FACTOR, padding=2)  # noqa: E731
    elif impl == "eager":
        x_cl = x.contiguous(memory_format=torch.channels_last)
        weight_cl = weight.detach().contiguous(memory_format=torch.channels_last).requires_grad_(train)
        weight = weight_cl
        step = lambda: F.conv2d(F.pixel_unshuffle(x_cl, FACTOR), weight_cl, bias, padding=2)  # noqa: E731
    else:
        x_cl = x.contiguous(memory_format=torch.channels_last)
        strided = _strided_weight(weight.detach()).contiguous(memory_format=torch.channels_last).requires_grad_(train)
        weight = strided
        step = lambda: F.conv2d(x_cl, strided, bias, stride=FACTOR, padding=2 * FACTOR)  # noqa: E731
    _time(benchmark, step, pass_, [weight, bias] if train else [])


@pytest.mark.parametrize("pass_", PASSES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("impl", ["fused", "eager"])
@pytest.mark.parametrize("case, batch, height, width", SHAPES, ids=[s[0] for s in SHAPES])
def test_preact_dilated_conv2d(benchmark, case, batch, height, width, impl, dtype, pass_):
    benchmark.group = f"preact 144->144 3x3 d2 {case} {dtype} {pass_}"
    train = pass_ != "forward"
    h, w = height // FACTOR, width // FACTOR
    memory_format = torch.contiguous_format if impl == "fused" else torch.channels_last
    x = torch.randn(batch, 144, h, w, device="cuda", dtype=dtype).contiguous(memory_format=memory_format)
    x.requires_grad_(train)
    scale = (torch.rand(batch, 144, device="cuda", dtype=dtype) + 0.5).requires_grad_(train)
    shift = torch.randn(batch, 144, device="cuda", dtype=dtype).requires_grad_(train)
    weight = (torch.randn(144, 144, 3, 3, device="cuda", dtype=dtype) / 36).contiguous(memory_format=memory_format)
    weight.requires_grad_(train)
    bias = torch.zeros(144, device="cuda", dtype=dtype, requires_grad=train)
    if impl == "fused":
        step = lambda: ops.preact_dilated_conv2d(x, scale, shift, weight, bias, dilation=2)  # noqa: E731
    else:
        step = lambda: ops.preact_dilated_conv2d_reference(x, scale, shift, weight, bias, dilation=2)  # noqa: E731
    _time(benchmark, step, pass_, [x, scale, shift, weight, bias] if train else [])


def test_strided_weight_is_the_same_convolution():
    """The `strided` baseline computes what the fused op computes (else the race is unfair)."""
    x = torch.randn(2, 1, 32, 40, dtype=torch.float64)
    weight = torch.randn(8, FACTOR * FACTOR, 5, 5, dtype=torch.float64)
    torch.testing.assert_close(
        F.conv2d(x, _strided_weight(weight), stride=FACTOR, padding=2 * FACTOR),
        F.conv2d(F.pixel_unshuffle(x, FACTOR), weight, padding=2),
    )
