"""Training losses (paper Table 1, recurrent variant; DESIGN §3).

- :func:`middle_loss`: φm's loss, paper eq. 3 (MSE + λp · perceptual);
- :func:`pair_loss`: the pairwise ordering-invariant loss, paper eq. 5;
- :func:`adversarial_generator_loss` / :func:`adversarial_discriminator_loss`: hinge GAN loss;
- :func:`sequence_losses`: the pair losses of every unrolled step k = 1..(T−1)/2 (+ L_adv).

Images are (B, 3, H, W) and sequences (B, T, 3, H, W), float in [0,1]; every loss is
mean-reduced over its elements and returns a scalar tensor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .models.blur_to_video import check_T
from .models.vgg import VGG16Features

PERCEPTUAL_WEIGHT = 0.01
GRADIENT_WEIGHT = 0.1
ADVERSARIAL_WEIGHT = 0.01


def perceptual_loss(pred: Tensor, target: Tensor, vgg: VGG16Features) -> Tensor:
    """Feature reconstruction loss [Johnson et al. 2016]: MSE of VGG16 relu2_2 plus MSE of relu3_3."""
    return sum(F.mse_loss(p, t) for p, t in zip(vgg(pred), vgg(target)))


def gradient_loss(pred: Tensor, target: Tensor) -> Tensor:
    """L1 distance of the horizontal and vertical finite differences of two (B, C, H, W) images."""
    dx = F.l1_loss(pred.diff(dim=-1), target.diff(dim=-1))
    dy = F.l1_loss(pred.diff(dim=-2), target.diff(dim=-2))
    return dx + dy


def middle_loss(
    pred: Tensor,
    target: Tensor,
    vgg: VGG16Features | None = None,
    perceptual_weight: float = PERCEPTUAL_WEIGHT,
    gradient_weight: float = GRADIENT_WEIGHT,
) -> Tensor:
    """Paper eq. 3: ``|x̂[m] − x[m]|² + λp · L_perceptual(x̂[m], x[m])``; pred, target (B, 3, H, W).

    With ``vgg`` (from :func:`~b2v_rnn.models.load_vgg16`) the perceptual term is
    :func:`perceptual_loss` on relu2_2 and relu3_3. Without VGG16 weights there is no perceptual
    term (:func:`~b2v_rnn.models.load_vgg16` has warned): the substitute is ``gradient_weight ·``
    :func:`gradient_loss`, an image-gradient L1 term that, like the perceptual loss, penalises
    the blurred edges that an MSE alone tolerates; it needs no pretrained weights.
    """
    mse = F.mse_loss(pred, target)
    if vgg is not None:
        return mse + perceptual_weight * perceptual_loss(pred, target, vgg)
    return mse + gradient_weight * gradient_loss(pred, target)


def pair_loss(a: Tensor, b: Tensor, xa: Tensor, xb: Tensor) -> Tensor:
    """Paper eq. 5 for one symmetric pair: ``| |a+b| − |xa+xb| |₁ + | |a−b| − |xa−xb| |₁``, mean-reduced.

    ``a``, ``b``: the predicted frames x̂[m−k], x̂[m+k]; ``xa``, ``xb``: the true x[m−k], x[m+k];
    all of one shape. Swapping a and b (or xa and xb) gives exactly the same value: the loss does
    not ask which of the two frames comes first, which y cannot tell (paper Sec. 4).
    """
    sums = ((a + b).abs() - (xa + xb).abs()).abs()
    differences = ((a - b).abs() - (xa - xb).abs()).abs()
    return sums.mean() + differences.mean()


def adversarial_generator_loss(fake_logits: Tensor) -> Tensor:
    """Hinge GAN loss [Lim & Ye 2017; Miyato et al. 2018], generator side: ``−mean(D(y, x̂))``."""
    return -fake_logits.mean()


def adversarial_discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Hinge GAN loss, discriminator side: ``mean(relu(1 − D(y, x))) + mean(relu(1 + D(y, x̂)))``.

    Pass the fake frames detached so this loss does not reach the generator.
    """
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def sequence_losses(
    frames: Tensor,
    targets: Tensor,
    y: Tensor | None = None,
    discriminator: torch.nn.Module | None = None,
    adversarial_weight: float = ADVERSARIAL_WEIGHT,
) -> tuple[Tensor, Tensor]:
    """Losses of an unrolled sequence, paper Table 1 steps 2–3: returns ``(total, per_step)``.

    ``frames``, ``targets``: (B, T, 3, H, W), T odd, middle index m = (T−1)/2 (0-based).
    ``per_step``: (K,) with K = (T−1)/2, entry k−1 = :func:`pair_loss` of (x̂[m−k], x̂[m+k]) against
    (x[m−k], x[m+k]). ``total`` = ``per_step.sum()``, plus, when ``discriminator`` and ``y``
    (B, 3, H, W) are given, ``adversarial_weight`` × :func:`adversarial_generator_loss` over all
    2K non-middle frames. The middle frame has its own loss (:func:`middle_loss`).
    """
    if frames.shape != targets.shape or frames.dim() != 5:
        raise ValueError(
            f"sequence_losses: frames and targets must both be (B, T, 3, H, W), got "
            f"{tuple(frames.shape)} and {tuple(targets.shape)}"
        )
    T = frames.shape[1]
    check_T(T)
    m = (T - 1) // 2
    per_step = torch.stack(
        [pair_loss(frames[:, m - k], frames[:, m + k], targets[:, m - k], targets[:, m + k]) for k in range(1, m + 1)]
    )
    total = per_step.sum()
    if discriminator is not None:
        if y is None:
            raise ValueError("sequence_losses: the adversarial term needs y, the blurry image D is conditioned on")
        outer = torch.cat((frames[:, :m], frames[:, m + 1 :]), dim=1).flatten(0, 1)
        conditions = y.unsqueeze(1).expand(-1, T - 1, -1, -1, -1).flatten(0, 1)
        total = total + adversarial_weight * adversarial_generator_loss(discriminator(conditions, outer))
    return total, per_step
