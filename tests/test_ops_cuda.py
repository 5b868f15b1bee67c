"""CUDA kernels of the fused ops against float64 references computed on the CPU.

Each test draws inputs on the CPU, runs the op on CUDA and compares with the op's
reference chain (pixel_(un)shuffle / affine + ReLU, then conv2d) in float64 on the CPU
from the *same* (already rounded) inputs, so only the kernel's own arithmetic counts.
Error = max |out − ref| / max |ref|. Shapes are odd on purpose: channel counts and
reduction lengths that are not multiples of the 16/32/48/64 tiles, tiles that straddle
two samples, every output-channel tile width (K ≤ 16, K = 48·i, K = 64·i).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from b2v_rnn import ops

# Compare the kernels themselves: the default policy routes CUDA calls to cuDNN.
pytestmark = [
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: the CUDA kernels cannot run"),
    pytest.mark.usefixtures("fused_always"),
]

# Far under 1e-3 for float32 (3×TF32 tensor cores keep float32 accuracy); 16-bit rounds
# the activation once (8 or 11 mantissa bits) and the output once.
TOLERANCE = {torch.float32: 2e-5, torch.float16: 4e-3, torch.bfloat16: 1e-2}
DTYPES = [pytest.param(d, id=str(d).split(".")[-1]) for d in TOLERANCE]

# (x shape, weight shape, factor, padding, shuffle)
RESAMPLE_CASES = [
    pytest.param((2, 1, 36, 44), (144, 16, 5, 5), 4, 2, False, id="model-1to144-k5"),
    pytest.param((3, 3, 20, 28), (37, 48, 3, 3), 4, 1, False, id="odd-K37"),
    pytest.param((1, 2, 10, 15), (5, 50, 1, 3), 5, 0, False, id="f5-K5-nopad"),
    pytest.param((2, 12, 7, 9), (64, 3, 3, 3), 2, 1, True, id="shuffle-K64"),
    pytest.param((2, 32, 5, 6), (19, 2, 5, 5), 4, 3, True, id="shuffle-K19-bigpad"),
]
# (x shape, weight shape, dilation, padding)
PREACT_CASES = [
    pytest.param((2, 144, 21, 19), (144, 144, 3, 3), 2, 2, id="model-144-d2"),
    pytest.param((3, 19, 13, 11), (37, 19, 3, 3), 2, 2, id="odd-C19-K37"),
    pytest.param((2, 8, 9, 17), (128, 8, 3, 3), 4, 1, id="K128-d4-narrowpad"),
    pytest.param((1, 33, 16, 14), (16, 33, 5, 5), 3, 0, id="k5-d3-nopad"),
    pytest.param((2, 7, 5, 6), (3, 7, 1, 1), 1, 0, id="1x1-K3"),
]


@pytest.fixture(autouse=True)
def _fused_cuda_kernels():
    """Fail (not skip) when a CUDA machine runs without the CUDA kernels registered."""
    assert ops.backend() != "reference", "the fused ops did not load; build with `pip install --no-build-isolation -e .`"
    for name in ("resample_conv2d", "resample_conv2d_backward", "preact_dilated_conv2d", "preact_dilated_conv2d_backward"):
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"b2v_rnn::{name}", "CUDA"), (
            f"b2v_rnn::{name} has no CUDA kernel: the extension was built without CUDA sources"
        )
    # Gradients go through cuDNN; TF32 there would dominate the float32 error.
    cudnn_tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32 = cudnn_tf32


def relative_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    value = value.detach().cpu().double()
    return ((value - reference).abs().max() / reference.abs().max().clamp_min(1e-30)).item()


def resample_inputs(x_shape, w_shape, dtype, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(x_shape, generator=generator).to(dtype)
    weight = (torch.randn(w_shape, generator=generator) / (w_shape[1] * w_shape[2] * w_shape[3]) ** 0.5).to(dtype)
    bias = torch.randn(w_shape[0], generator=generator).to(dtype)
    return x, weight, bias


def preact_inputs(x_shape, w_shape, dtype, seed=0):
    generator = torch.Generator().manual_seed(seed)
    batch, channels = x_shape[:2]
    x = torch.randn(x_shape, generator=generator).to(dtype)
    scale = (0.5 + torch.rand(batch, channels, generator=generator)).to(dtype)
    shift = (0.5 * torch.randn(batch, channels, generator=generator)).to(dtype)
    weight = (torch.randn(w_shape, generator=generator) / (w_shape[1] * w_shape[2] * w_shape[3]) ** 0.5).to(dtype)
    bias = torch.randn(w_shape[0], generator=generator).to(dtype)
    return x, scale, shift, weight, bias


def resample_reference(x, weight, bias, factor, padding, shuffle):
    mode = "shuffle" if shuffle else "unshuffle"
    return ops.resample_conv2d_reference(x, weight, bias, factor, padding, mode)


def cuda_leaves(*tensors):
    return [t.cuda().requires_grad_() for t in tensors]


def cpu_double_leaves(*tensors):
    return [t.double().requires_grad_() for t in tensors]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape, w_shape, factor, padding, shuffle", RESAMPLE_CASES)
def test_resample_forward_and_gradients(x_shape, w_shape, factor, padding, shuffle, dtype):
    inputs = resample_inputs(x_shape, w_shape, dtype)
    ours = cuda_leaves(*inputs)
    ref = cpu_double_leaves(*inputs)
    out = torch.ops.b2v_rnn.resample_conv2d(*ours, factor, padding, shuffle)
    expected = resample_reference(*ref, factor, padding, shuffle)
    assert out.dtype == dtype and out.shape == expected.shape and out.is_contiguous()
    assert relative_error(out, expected) < TOLERANCE[dtype]

    grad = torch.randn(expected.shape, generator=torch.Generator().manual_seed(1)).to(dtype)
    got = torch.autograd.grad(out, ours, grad.cuda())
    want = torch.autograd.grad(expected, ref, grad.double())
    for name, g, w in zip(("x", "weight", "bias"), got, want):
        assert relative_error(g, w) < 2 * TOLERANCE[dtype], f"grad_{name}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape, w_shape, dilation, padding", PREACT_CASES)
def test_preact_forward_and_gradients(x_shape, w_shape, dilation, padding, dtype):
    inputs = preact_inputs(x_shape, w_shape, dtype)
    ours = cuda_leaves(*inputs)
    ref = cpu_double_leaves(*inputs)
    out = torch.ops.b2v_rnn.preact_dilated_conv2d(*ours, dilation, padding)
    expected = ops.preact_dilated_conv2d_reference(*ref, dilation, padding)
    assert out.dtype == dtype and out.shape == expected.shape and out.is_contiguous()
    assert relative_error(out, expected) < TOLERANCE[dtype]

    grad = torch.randn(expected.shape, generator=torch.Generator().manual_seed(1)).to(dtype)
    got = torch.autograd.grad(out, ours, grad.cuda())
    want = torch.autograd.grad(expected, ref, grad.double())
    for name, g, w in zip(("x", "scale", "shift", "weight", "bias"), got, want):
        assert relative_error(g, w) < 2 * TOLERANCE[dtype], f"grad_{name}"


def test_low_precision_error_is_that_of_the_dtype():
    """flash-attention's rule: bf16 kernel error ≤ 2× the error of the eager bf16 chain (+ slack)."""
    x, scale, shift, weight, bias = preact_inputs((2, 144, 24, 20), (144, 144, 3, 3), torch.bfloat16)
    expected = ops.preact_dilated_conv2d_reference(x.double(), scale.double(), shift.double(), weight.double(), bias.double(), 2, 2)
    cuda = [t.cuda() for t in (x, scale, shift, weight, bias)]
    ours = torch.ops.b2v_rnn.preact_dilated_conv2d(*cuda, 2, 2)
    eager = ops.preact_dilated_conv2d_reference(*cuda, 2, 2)
    assert relative_error(ours, expected) <= 2 * relative_error(eager, expected) + 1e-3


@pytest.mark.parametrize("layout", ["channels_last", "noncontiguous"])
def test_any_input_layout(layout):
    x, scale, shift, weight, bias = (t.cuda() for t in preact_inputs((2, 20, 11, 13), (24, 20, 3, 3), torch.float32))
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
        weight = weight.contiguous(memory_format=torch.channels_last)
    else:
        x = torch.cat([x, x], dim=-1)[..., ::2]
        scale, shift = scale.t().contiguous().t(), shift.t().contiguous().t()
    out = torch.ops.b2v_rnn.preact_dilated_conv2d(x, scale, shift, weight, bias, 2, 2)
    expected = ops.preact_dilated_conv2d_reference(*(t.cpu().double() for t in (x, scale, shift, weight, bias)), 2, 2)
    assert relative_error(out, expected) < TOLERANCE[torch.float32]


def test_output_masks_return_only_what_is_asked():
    x, scale, shift, weight, _ = (t.cuda() for t in preact_inputs((2, 5, 6, 7), (4, 5, 3, 3), torch.float32))
    grad = torch.randn(2, 4, 6, 7, device="cuda")
    results = torch.ops.b2v_rnn.preact_dilated_conv2d_backward(grad, x, scale, shift, weight, 1, 1, [False, True, False, False, True])
    assert [r.numel() == 0 for r in results] == [True, False, True, True, False]
    x, weight, _ = (t.cuda() for t in resample_inputs((2, 1, 8, 6), (4, 4, 3, 3), torch.float32))
    grad = torch.randn(2, 4, 4, 3, device="cuda")
    results = torch.ops.b2v_rnn.resample_conv2d_backward(grad, x, weight, 2, 1, False, [True, False, False])
    assert [r.numel() == 0 for r in results] == [False, True, True]


SMALL_REQUEST = 1 << 20
"""The caching allocator serves requests up to 1 MiB from its small pool, larger ones from the large pool."""


def _free_blocks(pool: str) -> list[int]:
    """Sizes of the caching allocator's free blocks in its ``"small"`` or ``"large"`` pool
    (large-pool blocks under 1 MiB cannot serve a large request and are left out)."""
    least = 1 if pool == "small" else SMALL_REQUEST + 1
    return [block["size"] for segment in torch.cuda.memory_snapshot() if segment.get("segment_type") == pool
            for block in segment["blocks"] if block["state"] == "inactive" and block["size"] >= least]


def _poisoned_output(call, out_bytes: int) -> torch.Tensor:
    """Calls `call` with EVERY free block the output could be carved from filled with NaN.

    The first version poisoned one fresh block and hoped the output would land there; a
    float32 input's segment had a free tail that fit better, so the test failed on its own
    trick. Here: a free block of twice the output's size is made in the output's
    pool, then every free block of that pool is taken by allocations of the largest free size
    (whole blocks; at most 1 MiB at a time in the small pool), filled with 0xFF bytes (NaN in
    float32, bfloat16 and float16) and released. The output can only come from poisoned
    memory, and the address check says so if it did not.
    """
    pool = "small" if out_bytes <= SMALL_REQUEST else "large"
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    room = torch.empty(min(2 * out_bytes, SMALL_REQUEST) if pool == "small" else 2 * out_bytes,
                       dtype=torch.uint8, device="cuda")
    del room
    poisoned, ranges = [], []
    for _ in range(10_000):
        free = _free_blocks(pool)
        if not free:
            break
        size = max(free) if pool == "large" else min(max(free), SMALL_REQUEST)
        block = torch.full((size,), 0xFF, dtype=torch.uint8, device="cuda")
        poisoned.append(block)
        ranges.append((block.data_ptr(), block.data_ptr() + block.numel()))
    assert not _free_blocks(pool), f"could not take every free block of the {pool} pool"
    torch.cuda.synchronize()
    del poisoned, block
    out = call()
    torch.cuda.synchronize()
    assert any(start <= out.data_ptr() < end for start, end in ranges), "the output did not come from poisoned memory"
    return out


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_output_element_is_written(dtype):
    size = torch.empty((), dtype=dtype).element_size()
    x, weight, bias = (t.cuda() for t in resample_inputs((4, 3, 244, 268), (37, 48, 3, 3), dtype))
    out = _poisoned_output(lambda: torch.ops.b2v_rnn.resample_conv2d(x, weight, bias, 4, 1, False),
                           4 * 37 * 61 * 67 * size)
    assert not out.isnan().any()
    x, scale, shift, weight, _ = (t.cuda() for t in preact_inputs((4, 19, 61, 67), (50, 19, 3, 3), dtype))
    out = _poisoned_output(lambda: torch.ops.b2v_rnn.preact_dilated_conv2d(x, scale, shift, weight, None, 2, 2),
                           4 * 50 * 61 * 67 * size)
    assert not out.isnan().any()
    grad_out = torch.ones_like(out)
    grad_x = _poisoned_output(
        lambda: torch.ops.b2v_rnn.preact_dilated_conv2d_backward(grad_out, x, scale, shift, weight, 2, 2, [True] * 5)[0],
        x.numel() * size,
    )
    assert not grad_x.isnan().any()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
def test_opcheck(dtype):
    x, weight, bias = cuda_leaves(*resample_inputs((2, 1, 12, 16), (8, 16, 3, 3), dtype))
    torch.library.opcheck(torch.ops.b2v_rnn.resample_conv2d.default, (x, weight, bias, 4, 1, False))
    x, scale, shift, weight, bias = cuda_leaves(*preact_inputs((2, 6, 9, 7), (5, 6, 3, 3), dtype))
    torch.library.opcheck(torch.ops.b2v_rnn.preact_dilated_conv2d.default, (x, scale, shift, weight, bias, 2, 2))


def test_torch_compile_matches_eager():
    torch._dynamo.reset()

    def block(x, scale, shift, weight_in, weight):
        features = ops.resample_conv2d(x, weight_in, None, factor=4, padding=1)
        return ops.preact_dilated_conv2d(features, scale, shift, weight, None, dilation=2).square().mean()

    x = torch.randn(2, 1, 24, 20, device="cuda")
    weight_in = torch.randn(12, 16, 3, 3, device="cuda", requires_grad=True)
    scale = torch.rand(2, 12, device="cuda", requires_grad=True)
    shift = torch.randn(2, 12, device="cuda", requires_grad=True)
    weight = torch.randn(12, 12, 3, 3, device="cuda", requires_grad=True)
    leaves = (scale, shift, weight_in, weight)
    eager = block(x, scale, shift, weight_in, weight)
    eager_grads = torch.autograd.grad(eager, leaves)
    compiled = torch.compile(block, fullgraph=True)(x, scale, shift, weight_in, weight)
    compiled_grads = torch.autograd.grad(compiled, leaves)
    torch.testing.assert_close(compiled, eager)
    for c, e in zip(compiled_grads, eager_grads):
        torch.testing.assert_close(c, e)


def test_wrong_kernel_would_fail():
    """The comparison is sharp enough to see a one-tap shift (a typical index bug)."""
    x, weight, bias = resample_inputs((2, 1, 36, 44), (144, 16, 5, 5), torch.float32)
    expected = resample_reference(x.double(), weight.double(), bias.double(), 4, 2, False)
    shifted = F.conv2d(F.pixel_unshuffle(x.double(), 4), weight.double().roll(1, dims=-1), bias.double(), padding=2)
    assert relative_error(shifted, expected) > 100 * TOLERANCE[torch.bfloat16]


@pytest.mark.parametrize("policy", ["always", "auto"], ids=["fused", "dispatch-default"])
def test_model_layers_under_bf16_autocast_with_fp32_weights(policy):
    """The crash `train --amp` once had: bf16 activations meet fp32 weights in every layer.
    Forward and backward, through the fused kernels and through the default (cuDNN) path."""
    from b2v_rnn.models import build_model

    torch.manual_seed(0)
    model = build_model("tiny").cuda()
    for p in model.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    y = torch.rand(2, 3, 40, 40, device="cuda")
    with ops.fused(policy):
        expected = model.extract(y, 5)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            frames = model.extract(y.contiguous(memory_format=torch.channels_last), 5)
        frames.float().mean().backward()
    assert torch.isfinite(frames).all()
    assert relative_error(frames.float(), expected.float()) < 6e-2  # CPU bf16 measured 1.3-3.0 %
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all(), name
