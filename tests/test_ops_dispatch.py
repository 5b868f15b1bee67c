"""Which path an op call takes (fused kernel or eager chain), and the ops under torch.autocast."""

from __future__ import annotations

import pytest
import torch
from ops_helpers import fresh_seed, require_kernels

from b2v_rnn import ops
from b2v_rnn.models import build_model
from b2v_rnn.ops import PreActDilatedConv2d, ResampleConv2d, _dispatch

F32, BF16, F16, F64 = torch.float32, torch.bfloat16, torch.float16, torch.float64
PREACT, RESAMPLE = "preact_dilated_conv2d", "resample_conv2d"


# ----------------------------------------------------------------------------- the decision
@pytest.mark.parametrize("op", [PREACT, RESAMPLE])
@pytest.mark.parametrize("dtype", [F32, BF16, F16])
def test_cuda_default_is_the_eager_cudnn_chain(op, dtype):
    """The CUDA kernels measured 1.5-12x slower than cuDNN (bench/RESULTS.md): auto never picks them."""
    assert _dispatch.choose(op, "cuda", dtype, "compiled", "auto") == "eager"
    assert _dispatch.choose(op, "cuda", dtype, "jit", "auto") == "eager"


@pytest.mark.parametrize("op", [PREACT, RESAMPLE])
@pytest.mark.parametrize("dtype", [F32, BF16, F16, F64])
def test_cuda_kernels_stay_reachable_by_the_switch(op, dtype):
    assert _dispatch.choose(op, "cuda", dtype, "compiled", "always") == "fused"
    assert _dispatch.choose(op, "cuda", dtype, "compiled", "never") == "eager"
    assert _dispatch.choose(op, "cuda", dtype, "reference", "always") == "eager"  # nothing loaded


def test_cpu_uses_the_kernel_only_where_it_measured_faster():
    # fp32 preact: fused for layers of <= 4096 weights on NCHW input (1.14-1.98x); the wide layers
    # and any channels_last input run on oneDNN (bench/bench_layers.py, bench/RESULTS.md).
    assert _dispatch.choose(PREACT, "cpu", F32, "compiled", "auto", (25, 128, 1, 1)) == "fused"
    assert _dispatch.choose(PREACT, "cpu", F32, "compiled", "auto", (3, 64, 3, 3)) == "fused"
    assert _dispatch.choose(PREACT, "cpu", F32, "compiled", "auto", (128, 128, 1, 1)) == "eager"
    assert _dispatch.choose(PREACT, "cpu", F32, "compiled", "auto", (144, 144, 3, 3)) == "eager"
    assert _dispatch.choose(PREACT, "cpu", F32, "compiled", "auto", (16, 144, 1, 1), channels_last=True) == "eager"
    assert _dispatch.choose(PREACT, "cpu", F32, "compiled", "always", (144, 144, 3, 3), channels_last=True) == "fused"
    assert _dispatch.choose(RESAMPLE, "cpu", F32, "compiled", "auto", (144, 16, 5, 5)) == "eager"  # 0.97x
    # The one-pass norm statistics: every CPU float dtype, never CUDA, never under "never".
    for dtype in (F32, BF16, F64):
        assert _dispatch.choose("channel_moments", "cpu", dtype, "compiled", "auto") == "fused"
        assert _dispatch.choose("channel_moments", "cpu", dtype, "compiled", "never") == "eager"
        assert _dispatch.choose("channel_moments", "cuda", dtype, "compiled", "always") == "eager"
    assert _dispatch.choose("channel_moments", "cpu", F16, "compiled", "always") == "eager"
    # bf16 has no CPU kernel: oneDNN's bf16 convolution (AMX) runs it, whatever the policy.
    for op in (PREACT, RESAMPLE):
        assert _dispatch.choose(op, "cpu", BF16, "compiled", "auto") == "eager"
        assert _dispatch.choose(op, "cpu", BF16, "compiled", "always") == "eager"
        assert _dispatch.choose(op, "cpu", F64, "compiled", "always") == "fused"


def test_policy_comes_from_the_environment_and_rejects_typos(monkeypatch):
    monkeypatch.setattr(_dispatch, "_policy", None)
    monkeypatch.setenv("B2V_FUSED", "Never")
    assert ops.fused_policy() == "never"
    monkeypatch.setattr(_dispatch, "_policy", None)
    monkeypatch.setenv("B2V_FUSED", "sometimes")
    with pytest.raises(ValueError, match="B2V_FUSED must be one of .*'sometimes'"):
        ops.fused_policy()
    monkeypatch.setattr(_dispatch, "_policy", "auto")
    with ops.fused("never"):
        assert ops.fused_policy() == "never"
    assert ops.fused_policy() == "auto"


def test_describe_names_library_policy_and_paths():
    line = _dispatch.describe("compiled", "auto")
    assert line.startswith("library compiled, B2V_FUSED=auto")
    assert "cpu float32: preact fused for small NCHW layers, else eager, resample eager, norm one-pass kernel" in line
    assert "cpu bfloat16: preact eager, resample eager, norm one-pass kernel" in line and "cuda bfloat16: eager" in line
    assert "cpu float32: eager" in _dispatch.describe("reference", "auto")


def _aten_and_custom_ops(fn) -> set[str]:
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return {event.key for event in prof.key_averages()}


@pytest.mark.parametrize("policy,fused_runs", [("always", True), ("never", False)])
def test_the_policy_decides_which_implementation_runs(policy, fused_runs):
    require_kernels()
    fresh_seed()
    layer = PreActDilatedConv2d(4, 5, dilation=2)
    x = torch.randn(2, 4, 9, 11)
    with ops.fused(policy):
        names = _aten_and_custom_ops(lambda: layer(x))
    assert ("b2v_rnn::preact_dilated_conv2d" in names) == fused_runs
    assert ("aten::convolution" in names) == (not fused_runs)


# ----------------------------------------------------------------------------- autocast
LAYERS = {
    "preact-3x3-d2": (lambda: PreActDilatedConv2d(6, 5, 3, dilation=2), (2, 6, 12, 10)),
    "preact-1x1": (lambda: PreActDilatedConv2d(6, 4, 1, padding=0), (2, 6, 12, 10)),
    "resample-unshuffle": (lambda: ResampleConv2d(1, 8, 5, 4), (3, 1, 16, 20)),
    "resample-shuffle": (lambda: ResampleConv2d(16, 6, 3, 4, mode="shuffle"), (2, 16, 5, 4)),
}


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-12)).item()


@pytest.mark.parametrize("policy", ["auto", "always"])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layers_run_bf16_activations_with_fp32_weights_on_cpu(name, policy):
    """Under CPU autocast a bf16 activation meets fp32 parameters: forward and backward work, in
    bf16, within bf16's error of fp32, and the fp32 parameters get fp32 gradients."""
    seed = fresh_seed()
    build, shape = LAYERS[name]
    layer = build()
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_(0, 0.3)
    x = torch.randn(shape)
    with ops.fused(policy):
        expected = layer(x)
        expected_grads = torch.autograd.grad(expected.square().sum(), list(layer.parameters()))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = layer(x.bfloat16())
        grads = torch.autograd.grad(out.float().square().sum(), list(layer.parameters()))
    assert out.dtype == torch.bfloat16, f"seed={seed}"
    assert _relative_error(out, expected) < 2e-2, f"seed={seed}"
    for g, e, p in zip(grads, expected_grads, layer.parameters()):
        assert g.dtype == p.dtype == torch.float32
        assert _relative_error(g, e) < 5e-2, f"seed={seed}"


def test_ops_still_refuse_mixed_dtypes_outside_autocast():
    layer = PreActDilatedConv2d(3, 3)
    with pytest.raises(ValueError, match="weight has dtype torch.float32 but x has dtype torch.bfloat16"):
        layer(torch.randn(1, 3, 8, 8).bfloat16())


def test_whole_model_trains_under_cpu_autocast():
    """Every layer of φm and G, forward and backward, bf16 activations and fp32 weights."""
    seed = fresh_seed()
    model = build_model("tiny")
    for p in model.parameters():  # move the zero-initialised last layers off zero
        p.data.add_(0.05 * torch.randn_like(p))
    y, T = torch.rand(2, 3, 40, 40), 5
    expected = model.extract(y, T)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        frames = model.extract(y, T)
    frames.float().mean().backward()
    assert frames.shape == expected.shape and torch.isfinite(frames).all()
    # bf16 rounding through every layer: 1.3-3.0 % over 20 seeds (measured); a wrong path is far off
    assert _relative_error(frames, expected) < 6e-2, f"seed={seed}"
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize("method", ["two_pass", "welford", "sums", "moments"])
def test_channel_statistics_methods_agree(method):
    from b2v_rnn.ops.preact_dilated_conv2d import channel_statistics

    fresh_seed()
    x = torch.randn(2, 5, 13, 11, dtype=torch.float64) * 2 + 1.5
    mean, var = channel_statistics(x, "two_pass")
    torch.testing.assert_close(mean, x.mean(dim=(2, 3)))
    torch.testing.assert_close(var, x.var(dim=(2, 3), unbiased=False))
    if method == "moments":
        require_kernels()
    m, v = channel_statistics(x.bfloat16(), method)
    torch.testing.assert_close(m.double(), mean, rtol=1e-2, atol=2e-2)
    torch.testing.assert_close(v.double(), var, rtol=2e-2, atol=2e-2)
    with pytest.raises(ValueError, match="method must be"):
        channel_statistics(x, "guess")


def test_instance_norm_statistics_in_bf16_match_fp32():
    """The one-pass bf16 statistics are within bf16's rounding of the fp32 two-pass ones."""
    fresh_seed()
    x = torch.randn(3, 8, 17, 19) * 3 + 2
    gamma, beta = torch.rand(8) + 0.5, torch.randn(8)
    scale, shift = ops.instance_norm_affine(x, gamma, beta, 1e-5)
    scale16, shift16 = ops.instance_norm_affine(x.bfloat16(), gamma, beta, 1e-5)
    assert scale16.dtype == torch.bfloat16
    torch.testing.assert_close(scale16.float(), scale, rtol=1e-2, atol=1e-3)
    torch.testing.assert_close(shift16.float(), shift, rtol=1e-2, atol=2e-2)


def test_torch_compile_traces_the_ops_under_autocast():
    fresh_seed()
    torch._dynamo.reset()
    layer = PreActDilatedConv2d(4, 4, dilation=2)
    x = torch.randn(2, 4, 10, 10)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        eager = layer(x)
        compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)(x)
    torch.testing.assert_close(compiled, eager)


# ----------------------------------------------------------------------------- layout
@pytest.mark.parametrize("amp", [False, True], ids=["fp32", "bf16"])
def test_channels_last_end_to_end(amp):
    """With a channels_last model and input, every layer's output stays channels_last on the
    eager path (what CUDA runs), and the frames equal the contiguous model's."""
    fresh_seed()
    model = build_model("tiny")
    for p in model.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    y = torch.rand(2, 3, 40, 40)
    expected = model.extract(y, 5)
    model = model.to(memory_format=torch.channels_last)
    layouts = []

    def record(module, inputs, output):
        if isinstance(output, torch.Tensor) and output.dim() == 4 and output.shape[1] > 1:
            layouts.append((type(module).__name__, output.is_contiguous(memory_format=torch.channels_last)))

    hooks = [m.register_forward_hook(record) for m in model.modules()]
    with ops.fused("never"), torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        frames = model.extract(y.contiguous(memory_format=torch.channels_last), 5)
    for hook in hooks:
        hook.remove()
    assert layouts and all(kept for _, kept in layouts), [name for name, kept in layouts if not kept]
    assert _relative_error(frames, expected) < (6e-2 if amp else 1e-5)  # bf16: 1.3-3.0 % measured
