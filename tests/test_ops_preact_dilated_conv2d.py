"""b2v_rnn::preact_dilated_conv2d against its reference (affine, ReLU, dilated conv2d)."""

from __future__ import annotations

import random

import pytest
import torch
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
)

from b2v_rnn.ops import (
    PreActDilatedConv2d,
    ResampleConv2d,
    preact_dilated_conv2d,
    preact_dilated_conv2d_reference,
)

# Compare the kernels themselves: the default policy would route some calls to the eager chain.
pytestmark = pytest.mark.usefixtures("fused_always")


def make_inputs(dilation, kernel, batch, with_bias, device, dtype, channels=3, channels_out=4):
    """Random x (odd sizes), scale, shift, weight, bias and a padding that fits."""
    rng = random.Random(torch.initial_seed())
    height, width = rng.choice([9, 13, 17]), rng.choice([11, 15, 19])
    reach = dilation * (kernel - 1)
    padding = rng.choice([reach // 2, 0, 1])
    if min(height, width) + 2 * padding <= reach:
        padding = reach // 2
    x = torch.randn(batch, channels, height, width, device=device, dtype=dtype)
    scale = torch.randn(batch, channels, device=device, dtype=dtype)
    shift = torch.randn(batch, channels, device=device, dtype=dtype)
    weight = torch.randn(channels_out, channels, kernel, kernel, device=device, dtype=dtype) / kernel
    bias = torch.randn(channels_out, device=device, dtype=dtype) if with_bias else None
    return x, scale, shift, weight, bias, padding


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("dtype", dtype_params())
@pytest.mark.parametrize("batch,with_bias", [(1, False), (3, True)], ids=["b1-nobias", "b3-bias"])
@pytest.mark.parametrize("x_layout", LAYOUTS)
@pytest.mark.parametrize("kernel", [1, 3, 5])
@pytest.mark.parametrize("dilation", [1, 2, 4, 8])
def test_matches_reference(dilation, kernel, x_layout, batch, with_bias, dtype, device):
    skip_unsupported(device, dtype)
    require_fused()
    seed = fresh_seed()
    x, scale, shift, weight, bias, padding = make_inputs(dilation, kernel, batch, with_bias, device, dtype)
    x = layout(x, x_layout)

    def fused(x, scale, shift, weight, bias):
        return preact_dilated_conv2d(x, scale, shift, weight, bias, dilation, padding)

    def reference(x, scale, shift, weight, bias):
        return preact_dilated_conv2d_reference(x, scale, shift, weight, bias, dilation, padding)

    context = f"preact_dilated_conv2d(x {tuple(x.shape)} {x_layout}, dilation={dilation}, k={kernel}, padding={padding})"
    names = ["x", "scale", "shift", "weight", "bias"]
    assert_matches_reference(fused, reference, [x, scale, shift, weight, bias], names, seed, context)


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("dilation", [1, 2])
def test_gradcheck_float64(dilation, device):
    require_fused()
    seed = fresh_seed()
    double = dict(device=device, dtype=torch.float64)
    x = torch.randn(2, 2, 5, 7, **double)
    scale, shift = torch.randn(2, 2, **double), torch.randn(2, 2, **double)
    weight, bias = torch.randn(3, 2, 3, 3, **double), torch.randn(3, **double)
    inputs = [t.requires_grad_(True) for t in (x, scale, shift, weight, bias)]
    assert torch.autograd.gradcheck(
        lambda *a: preact_dilated_conv2d(*a, dilation=dilation, padding=dilation), inputs
    ), f"seed={seed}"


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("with_bias", [True, False])
def test_opcheck(with_bias, device):
    require_kernels()
    if not hasattr(torch.library, "opcheck"):
        pytest.skip("torch.library.opcheck needs torch >= 2.4")
    fresh_seed()
    x, scale, shift, weight, bias, padding = make_inputs(2, 3, 2, with_bias, device, torch.float32)
    args = (x, scale, shift, weight, bias)
    leaves = [None if t is None else t.requires_grad_() for t in args]
    torch.library.opcheck(torch.ops.b2v_rnn.preact_dilated_conv2d.default, (*leaves, 2, padding))
    detached = [None if t is None else t.detach() for t in args]
    out = torch.ops.b2v_rnn.preact_dilated_conv2d(*detached, 2, padding)
    grad = torch.randn_like(out)
    for mask in ([True, True, True, True, True], [False, True, True, False, False]):
        bwd_args = (grad, *detached[:4], 2, padding, mask)
        torch.library.opcheck(torch.ops.b2v_rnn.preact_dilated_conv2d_backward.default, bwd_args)


@pytest.mark.parametrize("device", device_params())
def test_backward_masks_and_needs_input_grad(device):
    """Masked-out gradients come back empty; autograd asks only for what it needs."""
    require_kernels()
    fresh_seed()
    x, scale, shift, weight, bias, padding = make_inputs(2, 3, 2, True, device, torch.float32)
    out = torch.ops.b2v_rnn.preact_dilated_conv2d(x, scale, shift, weight, bias, 2, padding)
    mask = [False, True, False, False, True]
    grads = torch.ops.b2v_rnn.preact_dilated_conv2d_backward(torch.ones_like(out), x, scale, shift, weight, 2, padding, mask)
    assert [g.numel() == 0 for g in grads] == [not m for m in mask]
    assert grads[1].shape == scale.shape and grads[4].shape == bias.shape
    scale.requires_grad_(True)
    preact_dilated_conv2d(x, scale, shift, weight, bias, 2, padding).sum().backward()
    assert scale.grad is not None and all(t.grad is None for t in (x, shift, weight, bias))


class TinyBlock(torch.nn.Module):
    """Both fused ops in a row, as the model uses them: unshuffle-conv, pre-act dilated conv, shuffle-conv."""

    def __init__(self):
        super().__init__()
        self.down = ResampleConv2d(1, 8, 5, factor=4)
        self.middle = PreActDilatedConv2d(8, 16, 3, dilation=2)
        self.up = ResampleConv2d(16, 1, 3, factor=2, mode="shuffle")

    def forward(self, x):
        return self.up(self.middle(self.down(x)))


@pytest.mark.slow
@pytest.mark.parametrize("device", device_params())
def test_torch_compile_fullgraph_matches_eager(device):
    require_fused()
    seed = fresh_seed()
    model = TinyBlock().to(device)
    x = torch.randn(2, 1, 32, 24, device=device)
    eager_out = model(x)
    eager_grads = torch.autograd.grad(eager_out.square().sum(), list(model.parameters()))
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True)
    out = compiled(x)
    grads = torch.autograd.grad(out.square().sum(), list(model.parameters()))
    torch.testing.assert_close(out, eager_out, rtol=1e-4, atol=1e-4, msg=lambda m: f"seed={seed}\n{m}")
    for (name, _), a, b in zip(model.named_parameters(), grads, eager_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4, msg=lambda m: f"{name}, seed={seed}\n{m}")


def _bad_cases():
    x = torch.randn(2, 3, 9, 9)
    affine = torch.randn(2, 3)
    w = torch.randn(4, 3, 3, 3)
    base = dict(x=x, scale=affine, shift=affine, weight=w)
    return [
        ("rank", {**base, "x": torch.randn(3, 9, 9)}, ("x must be 4-D", "(3, 9, 9)")),
        ("channels", {**base, "weight": torch.randn(4, 5, 3, 3)}, ("5 input channels", "x has 3")),
        ("scale-shape", {**base, "scale": torch.randn(3)}, ("scale", "(2, 3)", "(3,)")),
        ("shift-shape", {**base, "shift": torch.randn(2, 4)}, ("shift", "(2, 3)", "(2, 4)")),
        ("dtype", {**base, "weight": w.double()}, ("weight", "torch.float64", "torch.float32")),
        ("scale-dtype", {**base, "scale": affine.double()}, ("scale", "torch.float64")),
        ("device", {**base, "weight": torch.randn(4, 3, 3, 3, device="meta")}, ("weight", "meta", "cpu")),
        ("shift-device", {**base, "shift": torch.randn(2, 3, device="meta")}, ("shift", "meta", "cpu")),
        ("dilation", {**base, "dilation": 0}, ("dilation", "0")),
        ("padding", {**base, "padding": -3}, ("padding", "-3")),
    ]


@pytest.mark.parametrize("case,kwargs,words", _bad_cases(), ids=[c[0] for c in _bad_cases()])
def test_bad_inputs_name_argument_and_value(case, kwargs, words):
    with pytest.raises((ValueError, RuntimeError)) as error:
        preact_dilated_conv2d(**kwargs)
    for word in words:
        assert word in str(error.value), f"{case}: {word!r} not in {str(error.value)!r}"


@pytest.mark.parametrize(
    "dilation,padding,weight_shape,words",
    [
        (0, 1, (4, 3, 3, 3), ("dilation", "0")),
        (1, -1, (4, 3, 3, 3), ("padding", "-1")),
        (1, 0, (4, 5, 3, 3), ("5 input channels", "x has 3")),
        (8, 0, (4, 3, 3, 3), ("does not fit", "9x9")),
    ],
    ids=["dilation", "padding", "channels", "kernel"],
)
def test_kernel_checks_raise_with_values(dilation, padding, weight_shape, words):
    """Calling the registered op directly still gets a clear TORCH_CHECK message."""
    require_kernels()
    x, affine = torch.randn(2, 3, 9, 9), torch.randn(2, 3)
    with pytest.raises(RuntimeError) as error:
        torch.ops.b2v_rnn.preact_dilated_conv2d(x, affine, affine, torch.randn(weight_shape), None, dilation, padding)
    for word in words:
        assert word in str(error.value), f"{word!r} not in {str(error.value)!r}"


@pytest.mark.parametrize("device", device_params())
def test_module_matches_instance_norm_chain(device):
    """PreActDilatedConv2d == InstanceNorm2d(affine) -> ReLU -> dilated Conv2d."""
    require_fused()
    seed = fresh_seed()
    block = PreActDilatedConv2d(6, 5, 3, dilation=4).to(device)
    with torch.no_grad():
        block.norm_weight.uniform_(0.5, 1.5)
        block.norm_bias.normal_()
    x = torch.randn(2, 6, 15, 13, device=device)
    norm = torch.nn.functional.instance_norm(x, weight=block.norm_weight, bias=block.norm_bias, eps=block.eps)
    expected = torch.nn.functional.conv2d(norm.relu(), block.weight, block.bias, padding=4, dilation=4)
    torch.testing.assert_close(block(x), expected, rtol=1e-4, atol=1e-4, msg=lambda m: f"seed={seed}\n{m}")
