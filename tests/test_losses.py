"""Tests of b2v_rnn.losses: the properties of paper eq. 5 and of the per-patch min-over-swap pair
loss (property-based), measured reasons for the per-patch default, eq. 3, the hinge loss and the
sequence losses over an unrolled T."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from b2v_rnn.data.synthetic import REAL_MOTION, render_sequence
from b2v_rnn.losses import (
    PAIR_LOSSES,
    adversarial_discriminator_loss,
    adversarial_generator_loss,
    eq5_pair_loss,
    middle_loss,
    pair_loss,
    patch_pair_loss,
    patch_sums,
    sequence_losses,
)
from b2v_rnn.metrics import direction_correlation
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
def test_eq5_pair_loss_is_invariant_to_swapping_the_pair(images):
    a, b, xa, xb = images
    loss = eq5_pair_loss(a, b, xa, xb)
    assert loss == eq5_pair_loss(b, a, xa, xb) == eq5_pair_loss(a, b, xb, xa) == eq5_pair_loss(b, a, xb, xa)


@settings(max_examples=200, deadline=None)
@given(pixels, pixels, st.lists(st.booleans(), min_size=6, max_size=6))
def test_eq5_pair_loss_is_zero_at_either_assignment_even_per_pixel(xa, xb, swap):
    assert eq5_pair_loss(xa, xb, xa, xb) == 0
    assert eq5_pair_loss(xb, xa, xa, xb) == 0
    swap = torch.tensor(swap).reshape(xa.shape)
    assert eq5_pair_loss(torch.where(swap, xb, xa), torch.where(swap, xa, xb), xa, xb) == 0


@settings(max_examples=300, deadline=None)
@given(grid_quad)
def test_eq5_pair_loss_is_positive_unless_each_pixel_pair_is_the_true_pair(images):
    a, b, xa, xb = images
    same = ((a == xa) & (b == xb)) | ((a == xb) & (b == xa))
    loss = eq5_pair_loss(a, b, xa, xb)
    assert (loss == 0) == bool(same.all())
    assert loss >= 0


def test_eq5_pair_loss_matches_eq_5_by_hand():
    a, b = torch.tensor([0.2, 0.9]), torch.tensor([0.5, 0.1])
    xa, xb = torch.tensor([0.4, 0.0]), torch.tensor([0.1, 1.0])
    sums = [abs(0.7 - 0.5), abs(1.0 - 1.0)]
    diffs = [abs(0.3 - 0.3), abs(0.8 - 1.0)]
    assert eq5_pair_loss(a, b, xa, xb).item() == pytest.approx(np.mean(sums) + np.mean(diffs))


# Per-patch loss: one image (1, 3, 4, 4) cut into four 2×2 patches.
patch_images = arrays(np.int64, (1, 3, 4, 4), elements=st.integers(0, 64)).map(lambda a: torch.from_numpy(a).double() / 64)
patch_quad = st.tuples(patch_images, patch_images, patch_images, patch_images)
patch_masks = arrays(np.bool_, (2, 2)).map(
    lambda a: torch.from_numpy(a).repeat_interleave(2, 0).repeat_interleave(2, 1)
)


@pytest.mark.parametrize("kind", ["patch_mse", "patch_charbonnier"])
@settings(max_examples=100, deadline=None)
@given(images=patch_quad)
def test_patch_pair_loss_is_invariant_to_swapping_the_pair(kind, images):
    a, b, xa, xb = images
    loss = pair_loss(a, b, xa, xb, kind, patch=2)
    assert loss == pair_loss(b, a, xa, xb, kind, 2) == pair_loss(a, b, xb, xa, kind, 2) == pair_loss(b, a, xb, xa, kind, 2)
    assert loss >= 0


@settings(max_examples=100, deadline=None)
@given(patch_images, patch_images, patch_masks)
def test_patch_pair_loss_is_zero_at_the_truth_in_any_order_per_patch(xa, xb, swap):
    for kind in ("patch_mse", "patch_charbonnier"):
        assert pair_loss(xa, xb, xa, xb, kind, patch=2) == 0
        assert pair_loss(torch.where(swap, xb, xa), torch.where(swap, xa, xb), xa, xb, kind, patch=2) == 0


def test_patch_pair_loss_chooses_the_order_per_patch():
    torch.manual_seed(0)
    xa, xb = torch.rand(1, 3, 4, 4).double(), torch.rand(1, 3, 4, 4).double()
    a, b = xa + 0.1, xb - 0.2
    left = torch.zeros(4, 4, dtype=torch.bool)
    left[:, :2] = True  # the left 2×2 patches swapped, the right ones kept
    a2, b2 = torch.where(left, b, a), torch.where(left, a, b)
    # By hand: each patch takes its better assignment; here the true order is better everywhere
    # once each patch is unswapped, so the pair term is the plain MSE of (a, b).
    expected = 0.5 * (F.mse_loss(a, xa) + F.mse_loss(b, xb)) + 0.5 * F.mse_loss((a2 + b2) / 2, (xa + xb) / 2)
    assert torch.allclose(patch_pair_loss(a2, b2, xa, xb, patch=2), expected)
    # With one patch covering the image, the mixed answer is wrong in half of it.
    assert patch_pair_loss(a2, b2, xa, xb, patch=4) > expected + 0.05
    # Swapping single pixels inside a patch is not free, unlike eq. 5.
    pixel = torch.zeros(4, 4, dtype=torch.bool)
    pixel[0, 0] = True
    a3, b3 = torch.where(pixel, xb, xa), torch.where(pixel, xa, xb)
    assert eq5_pair_loss(a3, b3, xa, xb) == 0 and patch_pair_loss(a3, b3, xa, xb, patch=2) > 0


def test_patch_sums_cover_partial_patches():
    error = torch.ones(2, 3, 5, 7)
    sums = patch_sums(error, 4)
    assert sums.shape == (2, 2, 2)
    assert sums[0].tolist() == [[48.0, 36.0], [12.0, 9.0]]
    assert sums.sum() == error.sum()
    with pytest.raises(ValueError, match="patch"):
        patch_sums(error, 0)


def test_pair_loss_selector():
    torch.manual_seed(0)
    a, b, xa, xb = (torch.rand(1, 3, 8, 8) for _ in range(4))
    assert torch.equal(pair_loss(a, b, xa, xb, "eq5"), eq5_pair_loss(a, b, xa, xb))
    assert torch.equal(pair_loss(a, b, xa, xb), patch_pair_loss(a, b, xa, xb, 16, "mse"))
    assert set(PAIR_LOSSES) == {"eq5", "patch_mse", "patch_charbonnier"}
    with pytest.raises(ValueError, match="unknown pair loss 'l2'"):
        pair_loss(a, b, xa, xb, "l2")


def _scene_pair(seed: int) -> tuple[torch.Tensor, ...]:
    frames = render_sequence(np.random.default_rng(seed), 7, 64, REAL_MOTION)
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).double()[None] / 255
    return x[:, 0], x[:, 6], x.mean(1)


def test_measured_eq5_scores_a_per_pixel_scramble_as_perfect_while_patch_mse_ranks_it_below_y():
    """Why not eq. 5 (docs/design.md §3.2): the true pair swapped at random per pixel scores below y repeated, yet
    eq. 5 calls it perfect; the per-patch loss ranks it where its PSNR puts it."""
    generator = torch.Generator().manual_seed(0)
    for seed in range(3):
        xa, xb, y = _scene_pair(seed)
        swap = torch.rand(xa.shape[-2:], generator=generator) < 0.5
        a, b = torch.where(swap, xb, xa), torch.where(swap, xa, xb)
        assert eq5_pair_loss(a, b, xa, xb) == 0 < eq5_pair_loss(y, y, xa, xb)
        scrambled_mse = 0.5 * (F.mse_loss(a, xa) + F.mse_loss(b, xb))
        assert scrambled_mse > 0.5 * (F.mse_loss(y, xa) + F.mse_loss(y, xb))
        assert patch_pair_loss(a, b, xa, xb) > patch_pair_loss(y, y, xa, xb)


def test_measured_eq5_has_no_gradient_towards_a_direction_at_a_copy():
    """Why not eq. 5 (docs/design.md §3.2): G starts as a copy (a = b), where eq. 5's difference term gives no
    gradient at all; just off it, eq. 5 pushes a − b further along whatever sign it has (the noise
    here), while the per-patch loss pushes it towards the true difference, in one order per patch."""
    xa, xb, _ = _scene_pair(0)
    middle = 0.5 * (xa + xb)
    a, b = middle.clone().requires_grad_(), middle.clone().requires_grad_()
    ((a - b).abs() - (xa - xb).abs()).abs().mean().backward()
    assert a.grad.abs().sum() == 0 and b.grad.abs().sum() == 0

    noise = 1e-4 * torch.randn(middle.shape, generator=torch.Generator().manual_seed(0), dtype=middle.dtype)
    alignment = {}
    for name, loss in (("eq5", eq5_pair_loss), ("patch_mse", patch_pair_loss)):
        a, b = middle.clone().requires_grad_(), (middle + noise).requires_grad_()
        loss(a, b, xa, xb).backward()
        scale = 0.25 / max(a.grad.abs().max(), b.grad.abs().max())
        # direction_correlation of the descent step: per-patch |corr| of its a − b with xa − xb.
        alignment[name] = direction_correlation(0.5 - scale * a.grad[0], 0.5 - scale * b.grad[0], xa[0], xb[0])
    assert alignment["patch_mse"] > 0.9 and alignment["eq5"] < 0.3, alignment


def test_measured_l1_pulls_a_residual_towards_the_identity():
    """Why the pair losses are MSE, not L1 (docs/design.md §3.2). Fit the simplest residual,
    x[m+1] ≈ x[m] + w·(y − x[m]), by L1 and by MSE on the default (small-motion) scenes: most pixels
    do not change, their median change is 0, and L1's best w is much closer to 0 (the copy G starts
    as) than MSE's (measured: 0.13 / 0.22 / 0.11 against 0.36 / 0.47 / 0.13)."""
    weights = torch.linspace(-1, 3, 401, dtype=torch.float64)
    l1_best, mse_best = [], []
    for seed in range(3):
        x = torch.from_numpy(render_sequence(np.random.default_rng(seed), 7, 64)).double() / 255
        change, cue = (x[4] - x[3]).flatten(), (x.mean(0) - x[3]).flatten()
        residual = change[None] - weights[:, None] * cue[None]
        l1_best.append(weights[residual.abs().mean(1).argmin()].item())
        mse_best.append(weights[residual.square().mean(1).argmin()].item())
    assert all(0 <= a <= b for a, b in zip(l1_best, mse_best)), (l1_best, mse_best)
    assert sum(l1_best) < 0.6 * sum(mse_best), (l1_best, mse_best)


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
        assert torch.equal(
            sequence_losses(frames, targets, kind="eq5")[1][k - 1],
            eq5_pair_loss(frames[:, m - k], frames[:, m + k], targets[:, m - k], targets[:, m + k]),
        )
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


def test_per_sample_pair_losses_average_to_the_batch_loss():
    torch.manual_seed(0)
    a, b, xa, xb = (torch.rand(3, 3, 20, 24) for _ in range(4))
    from b2v_rnn.losses import patch_pair_loss

    per_sample = patch_pair_loss(a, b, xa, xb, per_sample=True)
    assert per_sample.shape == (3,)
    assert torch.allclose(per_sample.mean(), patch_pair_loss(a, b, xa, xb))
    assert torch.allclose(per_sample[1], patch_pair_loss(a[1:2], b[1:2], xa[1:2], xb[1:2]))


def test_log_domain_weighs_each_sample_by_its_own_error():
    """A sharp sample (small error) gets as much pull as a blurred one (large error) in the log
    domain; in the linear mean it is drowned (the sharp input is traded for the blurred one)."""
    from b2v_rnn.losses import log_domain

    target = torch.zeros(2, 3, 8, 8)
    pred = torch.cat([torch.full((1, 3, 8, 8), 0.01), torch.full((1, 3, 8, 8), 0.1)]).requires_grad_()
    floor = 1e-5  # losses.LOG_FLOOR: d log(e + floor) = de / (e + floor)
    in_log = (0.01 / (0.01 ** 2 + floor)) / (0.1 / (0.1 ** 2 + floor))  # ~9.1, 10 without the floor
    for log, expected_ratio in ((False, 0.1), (True, in_log)):
        pred.grad = None
        middle_loss(pred, target, gradient_weight=0.0, log=log).backward()
        sharp_pull, blurred_pull = pred.grad[0].abs().mean(), pred.grad[1].abs().mean()
        assert float(sharp_pull / blurred_pull) == pytest.approx(expected_ratio, rel=0.01)
    per_sample = torch.tensor([1e-4, 1e-2])
    assert torch.allclose(log_domain(per_sample), torch.log(per_sample + 1e-5).mean())
    frames = torch.rand(2, 5, 3, 16, 16)
    assert sequence_losses(frames, frames, log=True)[0] == pytest.approx(2 * math.log(1e-5), rel=1e-6)
    with pytest.raises(ValueError, match="no log-domain form"):
        sequence_losses(frames, frames, kind="eq5", log=True)
