"""The one-pass InstanceNorm statistics kernel (b2v_rnn::channel_moments, CPU; docs/design.md §4.3).

Checked against float64 statistics on fresh random inputs of many shapes, in both layouts and
in every dtype it takes, including a mean far larger than the spread (where E[x²] − E[x]²
would cancel without the kernel's shifted sums); its gradient by gradcheck and opcheck.
"""
from __future__ import annotations

import pytest
import torch
from ops_helpers import fresh_seed, require_kernels

from b2v_rnn.ops import channel_moments_reference
from b2v_rnn.ops.preact_dilated_conv2d import channel_statistics

SHAPES = [(1, 1, 1, 1), (2, 3, 5, 7), (3, 17, 9, 4), (1, 144, 20, 20), (4, 33, 16, 16), (2, 16, 1, 300)]
# Relative error of the variance: float32 summation (float64: its own rounding).
TOLERANCE = {torch.float32: 2e-5, torch.bfloat16: 2e-5, torch.float64: 1e-12}


def moments(x):
    return torch.ops.b2v_rnn.channel_moments(x)


@pytest.fixture(autouse=True)
def _kernels():
    require_kernels()


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64], ids=str)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "sliced"])
def test_matches_float64_statistics(shape, dtype, layout):
    seed = fresh_seed()
    offset = torch.randn(shape[0], shape[1], 1, 1) * 50  # |mean| up to ~100x the spread
    x = (torch.randn(shape) * torch.rand(shape[0], shape[1], 1, 1) + offset).to(dtype)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    elif layout == "sliced":  # neither layout: read through a copy
        x = torch.cat([x, x], dim=3)[..., ::2]
    mean, var = moments(x)
    expected_mean, expected_var = (t.double() for t in channel_moments_reference(x))
    assert mean.dtype == var.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    scale = expected_mean.abs() + expected_var.sqrt() + 1e-12
    assert ((mean.double() - expected_mean).abs() / scale).max() < TOLERANCE[dtype] / 10, f"seed={seed}"
    # Absolute, relative to the mean's square: where the variance is tiny next to it, no
    # float32 one-pass method can do better than a few ulps of E[x²].
    error = (var.double() - expected_var).abs() / (expected_var + 1e-7 * expected_mean.square() + 1e-30)
    assert error.max() < TOLERANCE[dtype], f"seed={seed}: {error.max():.2e}"


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_gradient_by_gradcheck_and_opcheck(layout):
    seed = fresh_seed()
    memory_format = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    x = (torch.randn(2, 5, 6, 7, dtype=torch.float64) * 3 + 2).contiguous(memory_format=memory_format)
    assert torch.autograd.gradcheck(moments, (x.requires_grad_(),)), f"seed={seed}"
    if hasattr(torch.library, "opcheck"):
        torch.library.opcheck(torch.ops.b2v_rnn.channel_moments.default, (x,))
        torch.library.opcheck(torch.ops.b2v_rnn.channel_moments.default,
                              (torch.randn(2, 4, 3, 5).bfloat16().requires_grad_(),))


def test_gradient_of_the_norm_matches_the_eager_statistics():
    """Through a whole InstanceNorm (a loss of the normalised x): the kernel's formula and
    autograd of the two-pass chain give the same gradient."""
    seed = fresh_seed()
    x = torch.randn(3, 8, 10, 12) * 2 + 1

    def normalised(method):
        leaf = x.clone().requires_grad_()
        mean, var = channel_statistics(leaf, method)
        out = (leaf - mean[:, :, None, None]) * torch.rsqrt(var[:, :, None, None] + 1e-5)
        (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()
        return leaf.grad

    torch.testing.assert_close(normalised("moments"), normalised("two_pass"), rtol=1e-4, atol=1e-5,
                               msg=f"seed={seed}")


def test_bad_input_names_the_problem():
    with pytest.raises(RuntimeError, match="channel_moments: x must be 4-D"):
        moments(torch.rand(3, 4))
    with pytest.raises(RuntimeError, match="supports float32, bfloat16 and float64, got Half"):
        moments(torch.rand(1, 2, 3, 3).half())
