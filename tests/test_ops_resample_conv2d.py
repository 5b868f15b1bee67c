"""b2v_rnn::resample_conv2d against its reference (pixel_(un)shuffle then conv2d)."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F
from ops_helpers import (
    LAYOUTS,
    assert_matches_reference,
    device_params,
    dtype_params,
    fresh_seed,
    layout,
    require_fused,
    require_kernels,
    skip_unsupported,
    strided_conv_weight,
)

from b2v_rnn.ops import ResampleConv2d, resample_conv2d, resample_conv2d_reference

# Compare the kernels themselves: the default policy would route some calls to the eager chain.
pytestmark = pytest.mark.usefixtures("fused_always")


def make_inputs(mode, factor, kernel, batch, with_bias, device, dtype, channels_out=5):
    """Random x, weight, bias with odd sizes on the resampled grid; x is (B, C, H, W)."""
    rng = random.Random(torch.initial_seed())
    grid_h, grid_w = rng.choice([3, 5, 7]), rng.choice([5, 9, 11])
    if mode == "unshuffle":
        channels = rng.choice([1, 2])
        shape = (batch, channels, grid_h * factor, grid_w * factor)
        conv_in = channels * factor * factor
    else:
        conv_in = rng.choice([1, 2])
        shape = (batch, conv_in * factor * factor, grid_h, grid_w)
        grid_h, grid_w = grid_h * factor, grid_w * factor
    padding = rng.choice([0, kernel // 2, kernel // 2 + 1])
    if min(grid_h, grid_w) + 2 * padding < kernel:
        padding = kernel // 2
    x = torch.randn(shape, device=device, dtype=dtype)
    weight = torch.randn(channels_out, conv_in, kernel, kernel, device=device, dtype=dtype) / kernel
    bias = torch.randn(channels_out, device=device, dtype=dtype) if with_bias else None
    return x, weight, bias, padding


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("dtype", dtype_params())
@pytest.mark.parametrize("batch,with_bias", [(1, False), (3, True)], ids=["b1-nobias", "b3-bias"])
@pytest.mark.parametrize("x_layout", LAYOUTS)
@pytest.mark.parametrize("kernel", [1, 3, 5])
@pytest.mark.parametrize("mode", ["unshuffle", "shuffle"])
@pytest.mark.parametrize("factor", [2, 4, 5])
def test_matches_reference(factor, mode, kernel, x_layout, batch, with_bias, dtype, device):
    skip_unsupported(device, dtype)
    require_fused()
    seed = fresh_seed()
    x, weight, bias, padding = make_inputs(mode, factor, kernel, batch, with_bias, device, dtype)
    x = layout(x, x_layout)

    def fused(x, weight, bias):
        return resample_conv2d(x, weight, bias, factor, padding, mode)

    def reference(x, weight, bias):
        return resample_conv2d_reference(x, weight, bias, factor, padding, mode)

    context = f"resample_conv2d(x {tuple(x.shape)} {x_layout}, factor={factor}, mode={mode}, k={kernel}, padding={padding})"
    assert_matches_reference(fused, reference, [x, weight, bias], ["x", "weight", "bias"], seed, context)


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("mode", ["unshuffle", "shuffle"])
def test_gradcheck_float64(mode, device):
    require_fused()
    seed = fresh_seed()
    factor, padding = 2, 1
    x_shape = (2, 1, 6, 10) if mode == "unshuffle" else (2, 4, 3, 5)
    x = torch.randn(x_shape, device=device, dtype=torch.float64)
    weight = torch.randn(3, 4 if mode == "unshuffle" else 1, 3, 3, device=device, dtype=torch.float64)
    bias = torch.randn(3, device=device, dtype=torch.float64)
    inputs = [t.requires_grad_(True) for t in (x, weight, bias)]
    assert torch.autograd.gradcheck(
        lambda x, w, b: resample_conv2d(x, w, b, factor, padding, mode), inputs
    ), f"seed={seed}"


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("mode,with_bias", [("unshuffle", True), ("shuffle", False)])
def test_opcheck(mode, with_bias, device):
    require_kernels()
    if not hasattr(torch.library, "opcheck"):
        pytest.skip("torch.library.opcheck needs torch >= 2.4")
    fresh_seed()
    x, weight, bias, padding = make_inputs(mode, 2, 3, 2, with_bias, device, torch.float32)
    shuffle = mode == "shuffle"
    forward_args = (x.requires_grad_(), weight.requires_grad_(), bias, 2, padding, shuffle)
    torch.library.opcheck(torch.ops.b2v_rnn.resample_conv2d.default, forward_args)
    out = torch.ops.b2v_rnn.resample_conv2d(*[a.detach() if torch.is_tensor(a) else a for a in forward_args])
    grad = torch.randn_like(out)
    for mask in ([True, True, True], [False, True, False]):
        args = (grad, x.detach(), weight.detach(), 2, padding, shuffle, mask)
        torch.library.opcheck(torch.ops.b2v_rnn.resample_conv2d_backward.default, args)


@pytest.mark.parametrize("device", device_params())
def test_backward_masks_and_needs_input_grad(device):
    """Masked-out gradients come back empty; autograd asks only for what it needs."""
    require_kernels()
    fresh_seed()
    x, weight, bias, padding = make_inputs("unshuffle", 4, 3, 1, True, device, torch.float32)
    out = torch.ops.b2v_rnn.resample_conv2d(x, weight, bias, 4, padding, False)
    grads = torch.ops.b2v_rnn.resample_conv2d_backward(torch.ones_like(out), x, weight, 4, padding, False, [False, True, False])
    assert grads[0].numel() == 0 and grads[2].numel() == 0
    assert grads[1].shape == weight.shape
    weight.requires_grad_(True)
    resample_conv2d(x, weight, bias, 4, padding).sum().backward()
    assert weight.grad is not None and x.grad is None and bias.grad is None


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("factor", [2, 4, 5])
def test_single_strided_convolution_is_equivalent(factor, device):
    """Benchmark baseline (b): one (rK)x(rK) stride-r convolution equals unshuffle + conv."""
    seed = fresh_seed()
    x, weight, bias, padding = make_inputs("unshuffle", factor, 5, 2, True, device, torch.float64)
    expected = resample_conv2d_reference(x, weight, bias, factor, padding)
    strided = F.conv2d(x, strided_conv_weight(weight, factor), bias, stride=factor, padding=factor * padding)
    torch.testing.assert_close(strided, expected, msg=lambda m: f"seed={seed}\n{m}")


def _bad_cases():
    x = torch.randn(2, 1, 16, 16)
    w16 = torch.randn(4, 16, 3, 3)
    meta = torch.randn(4, 16, 3, 3, device="meta")
    return [
        ("spatial", dict(x=torch.randn(2, 1, 18, 16), weight=w16), ("18x16", "factor=4")),
        ("rank", dict(x=torch.randn(1, 16, 16), weight=w16), ("x must be 4-D", "(1, 16, 16)")),
        ("weight-rank", dict(x=x, weight=torch.randn(4, 16, 3)), ("weight must be 4-D", "(4, 16, 3)")),
        ("channels", dict(x=torch.randn(2, 2, 16, 16), weight=w16), ("16 input channels", "needs 32")),
        ("shuffle-channels", dict(x=torch.randn(2, 6, 4, 4), weight=w16, mode="shuffle"), ("6 channels", "factor²=16")),
        ("dtype", dict(x=x, weight=w16.double()), ("weight", "torch.float64", "torch.float32")),
        ("device", dict(x=x, weight=meta), ("weight", "meta", "cpu")),
        ("bias", dict(x=x, weight=w16, bias=torch.randn(5)), ("bias", "(4,)", "(5,)")),
        ("padding", dict(x=x, weight=w16, padding=-1), ("padding", "-1")),
        ("factor", dict(x=x, weight=w16, factor=0), ("factor", "0")),
        ("mode", dict(x=x, weight=w16, mode="bogus"), ("mode", "'bogus'")),
    ]


@pytest.mark.parametrize("case,kwargs,words", _bad_cases(), ids=[c[0] for c in _bad_cases()])
def test_bad_inputs_name_argument_and_value(case, kwargs, words):
    kwargs = {"factor": 4, "padding": 1, **kwargs}
    with pytest.raises((ValueError, RuntimeError)) as error:
        resample_conv2d(**kwargs)
    for word in words:
        assert word in str(error.value), f"{case}: {word!r} not in {str(error.value)!r}"


@pytest.mark.parametrize(
    "args,words",
    [
        ((torch.randn(1, 1, 6, 8), torch.randn(2, 16, 1, 1), None, 4, 0, False), ("6x8", "factor=4")),
        ((torch.randn(1, 1, 8, 8), torch.randn(2, 16, 1, 1), None, 4, -2, False), ("padding", "-2")),
        ((torch.randn(1, 2, 8, 8), torch.randn(2, 16, 1, 1), None, 4, 0, False), ("16 input channels", "32")),
        ((torch.randn(1, 1, 8, 8).half(), torch.randn(2, 16, 1, 1).half(), None, 4, 0, False), ("float32", "Half")),
        ((torch.randn(1, 1, 8, 8), torch.randn(2, 16, 5, 5), None, 4, 0, False), ("does not fit",)),
    ],
    ids=["spatial", "padding", "channels", "dtype", "kernel"],
)
def test_kernel_checks_raise_with_values(args, words):
    """Calling the registered op directly still gets a clear TORCH_CHECK message."""
    require_kernels()
    with pytest.raises(RuntimeError) as error:
        torch.ops.b2v_rnn.resample_conv2d(*args)
    for word in words:
        assert word in str(error.value), f"{word!r} not in {str(error.value)!r}"


@pytest.mark.parametrize("device", device_params())
def test_module_state_dict_and_shapes(device):
    require_fused()
    fresh_seed()
    down = ResampleConv2d(1, 8, 5, factor=4).to(device)
    up = ResampleConv2d(8 * 4, 3, 3, factor=2, mode="shuffle").to(device)
    x = torch.randn(3, 1, 40, 24, device=device)
    hidden = down(x)
    assert hidden.shape == (3, 8, 10, 6)
    assert up(hidden[:, :8].repeat(1, 4, 1, 1)).shape == (3, 3, 20, 12)
    assert set(down.state_dict()) == {"weight", "bias"}
