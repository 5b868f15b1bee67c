"""Tests of b2v_rnn.losses: the properties of paper eq. 5 (property-based), eq. 3, the hinge
loss and the sequence losses over an unrolled T."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from b2v_rnn.losses import (
    adversarial_discriminator_loss,
    adversarial_generator_loss,
    middle_loss,
    pair_loss,
    sequence_losses,
)
from b2v_rnn.models import VGG16Features, build_discriminator

# float32 pixel values in [0,1] compared in float64, where their sums and differences are exact:
# "zero" and "positive" then hold exactly, with no rounding tolerance.
pixels = arrays(np.float32, (2, 3), elements=st.floats(0, 1, width=32)).map(lambda a: torch.from_numpy(a).double())
quad = st.tuples(pixels, pixels, pixels, pixels)
# Multiples of 1/64: sums and differences are exact in float64, so "zero loss" can only mean
# "the true pair" (with arbitrary floats, 1 − (1 + 1e-45) rounds to 0 and the property breaks).
grid_pixels = arrays(np.int64, (2, 3), elements=st.integers(0, 64)).map(lambda a: torch.from_numpy(a).double() / 64)
grid_quad = st.tuples(grid_pixels, grid_pixels, grid_pixels, grid_pixels)


@settings(max_examples=200, deadline=None)
@given(quad)
def test_pair_loss_is_invariant_to_swapping_the_pair(images):
    a, b, xa, xb = images
    loss = pair_loss(a, b, xa, xb)
    assert loss == pair_loss(b, a, xa, xb) == pair_loss(a, b, xb, xa) == pair_loss(b, a, xb, xa)


@settings(max_examples=200, deadline=None)
@given(pixels, pixels, st.lists(st.booleans(), min_size=6, max_size=6))
def test_pair_loss_is_zero_at_either_assignment_even_per_pixel(xa, xb, swap):
    assert pair_loss(xa, xb, xa, xb) == 0
    assert pair_loss(xb, xa, xa, xb) == 0
    swap = torch.tensor(swap).reshape(xa.shape)
    assert pair_loss(torch.where(swap, xb, xa), torch.where(swap, xa, xb), xa, xb) == 0


@settings(max_examples=300, deadline=None)
@given(grid_quad)
def test_pair_loss_is_positive_unless_each_pixel_pair_is_the_true_pair(images):
    a, b, xa, xb = images
    same = ((a == xa) & (b == xb)) | ((a == xb) & (b == xa))
    loss = pair_loss(a, b, xa, xb)
    assert (loss == 0) == bool(same.all())
    assert loss >= 0


def test_pair_loss_matches_eq_5_by_hand():
    a, b = torch.tensor([0.2, 0.9]), torch.tensor([0.5, 0.1])
    xa, xb = torch.tensor([0.4, 0.0]), torch.tensor([0.1, 1.0])
    sums = [abs(0.7 - 0.5), abs(1.0 - 1.0)]
    diffs = [abs(0.3 - 0.3), abs(0.8 - 1.0)]
    assert pair_loss(a, b, xa, xb).item() == pytest.approx(np.mean(sums) + np.mean(diffs))


def test_middle_loss_with_and_without_vgg():
    torch.manual_seed(0)
    target = torch.rand(2, 3, 16, 16)
    pred = (target + 0.05 * torch.randn_like(target)).requires_grad_()
    vgg = VGG16Features()
    assert middle_loss(target, target) == 0
    assert middle_loss(target, target, vgg) == 0
    mse = torch.nn.functional.mse_loss(pred, target)
    with_vgg = middle_loss(pred, target, vgg, perceptual_weight=1.0)
    without = middle_loss(pred, target, gradient_weight=1.0)
    assert with_vgg > mse and without > mse and with_vgg != without
    assert middle_loss(pred, target, vgg, perceptual_weight=0.0) == mse
    with_vgg.backward()
    assert pred.grad is not None and not any(p.grad is not None for p in vgg.parameters())


def test_hinge_adversarial_losses():
    real, fake = torch.tensor([2.0, 1.0, 0.5]), torch.tensor([-2.0, -1.0, 0.0])
    assert adversarial_discriminator_loss(real, fake).item() == pytest.approx((0 + 0 + 0.5) / 3 + (0 + 0 + 1) / 3)
    assert adversarial_generator_loss(fake).item() == pytest.approx(1.0)
    assert adversarial_discriminator_loss(torch.ones(4), -torch.ones(4)) == 0


@pytest.mark.parametrize("T", [3, 7, 9])
def test_sequence_losses_sum_the_pair_loss_of_every_step(T):
    torch.manual_seed(T)
    frames, targets = torch.rand(2, T, 3, 8, 8), torch.rand(2, T, 3, 8, 8)
    m = (T - 1) // 2
    total, per_step = sequence_losses(frames, targets)
    assert per_step.shape == (m,)
    for k in range(1, m + 1):
        expected = pair_loss(frames[:, m - k], frames[:, m + k], targets[:, m - k], targets[:, m + k])
        assert torch.equal(per_step[k - 1], expected)
    assert torch.allclose(total, per_step.sum())
    # The time reversal of the truth is as good as the truth (paper Sec. 4's ambiguity).
    assert sequence_losses(targets.flip(1), targets)[0] == 0
    # The middle frame is not part of the pair losses.
    changed = frames.clone()
    changed[:, m] = 0
    assert torch.equal(sequence_losses(changed, targets)[0], total)


def test_sequence_losses_adversarial_term():
    torch.manual_seed(0)
    disc = build_discriminator("tiny").eval()  # eval: spectral norm's power iteration stops
    y, frames = torch.rand(1, 3, 16, 16), torch.rand(1, 5, 3, 16, 16)
    plain, per_step = sequence_losses(frames, frames)
    assert plain == 0
    total, _ = sequence_losses(frames, frames, y, disc, adversarial_weight=0.5)
    outer = frames[:, [0, 1, 3, 4]].flatten(0, 1)
    expected = 0.5 * adversarial_generator_loss(disc(y.expand(4, -1, -1, -1), outer))
    assert torch.allclose(total, expected, atol=1e-6)
    with pytest.raises(ValueError, match="needs y"):
        sequence_losses(frames, frames, None, disc)


def test_sequence_losses_reject_bad_shapes():
    with pytest.raises(ValueError, match="T=4"):
        sequence_losses(torch.rand(1, 4, 3, 8, 8), torch.rand(1, 4, 3, 8, 8))
    with pytest.raises(ValueError, match="frames and targets"):
        sequence_losses(torch.rand(1, 5, 3, 8, 8), torch.rand(1, 7, 3, 8, 8))
