"""Training losses (paper Table 1, recurrent variant; docs/design.md §3).

- :func:`middle_loss`: φm's loss, paper eq. 3 (MSE + λp · perceptual);
- :func:`pair_loss`: an order-invariant loss of one symmetric pair, chosen by name from
  :data:`PAIR_LOSSES`: ``"patch_mse"`` (the default), ``"patch_charbonnier"`` (both
  :func:`patch_pair_loss`) or ``"eq5"`` (:func:`eq5_pair_loss`, the paper's, for the ablation);
- :func:`adversarial_generator_loss` / :func:`adversarial_discriminator_loss`: hinge GAN loss;
- :func:`sequence_losses`: the pair losses of every unrolled step k = 1..(T−1)/2 (+ L_adv).

Why the default departs from paper eq. 5 (docs/design.md §3.2; measured by ``python -m
bench.probes generator``, bench/ABLATION.md): eq. 5's difference term is invariant to swapping
a and b at each pixel independently, so it cannot teach a direction, and with G starting as a copy
(a = b) its gradient is zero; its L1 penalty also keeps a zero-initialised residual at the
identity. The per-patch min-over-swap MSE asks for one consistent order per p×p patch, which
is as much as y can tell (every moving layer is direction-ambiguous on its own).

Images are (B, 3, H, W) and sequences (B, T, 3, H, W), float in [0,1]; every loss is
mean-reduced over its elements and returns a scalar tensor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import check_T
from .models.vgg import VGG16Features

PERCEPTUAL_WEIGHT = 0.01
GRADIENT_WEIGHT = 0.1
ADVERSARIAL_WEIGHT = 0.01
PAIR_PATCH = 16
"""Side of the patches in which :func:`patch_pair_loss` asks for one order, pixels."""
CHARBONNIER_EPS = 1e-3
LOG_FLOOR = 1e-5
"""The per-sample error floor of the log-domain losses (50 dB): below it, no further push."""


def log_domain(per_sample: Tensor, floor: float = LOG_FLOOR) -> Tensor:
    """Mean over the batch of log(e_i + floor) for per-sample mean errors e (B,).

    Minimising it maximises the mean per-sample PSNR, where a plain mean of squared errors
    maximises the PSNR of the pooled error: a mean error is dominated by the blurriest samples,
    so a network may trade a sharp input's 45 dB for 30 dB to gain a fraction of a dB on a
    blurred one. In the log, each sample's error counts relative to its own size (the gradient
    of sample i is scaled by 1/e_i), so keeping a sharp input sharp is worth as much as deblurring
    a blurred one by the same ratio. Adam normalises the overall scale, so learning rates carry over.
    """
    return torch.log(per_sample + floor).mean()


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
    log: bool = False,
) -> Tensor:
    """Paper eq. 3: ``|x̂[m] − x[m]|² + λp · L_perceptual(x̂[m], x[m])``; pred, target (B, 3, H, W).

    With ``vgg`` (from :func:`~b2v_rnn.models.load_vgg16`) the perceptual term is
    :func:`perceptual_loss` on relu2_2 and relu3_3. Without VGG16 weights there is no perceptual
    term (:func:`~b2v_rnn.models.load_vgg16` has warned): the substitute is ``gradient_weight ·``
    :func:`gradient_loss`, an image-gradient L1 term that, like the perceptual loss, penalises
    the blurred edges that an MSE alone tolerates; it needs no pretrained weights.
    ``log``: the MSE term is :func:`log_domain` of the per-sample MSEs instead.
    """
    mse = log_domain(((pred - target) ** 2).flatten(1).mean(dim=1)) if log else F.mse_loss(pred, target)
    if vgg is not None:
        return mse + perceptual_weight * perceptual_loss(pred, target, vgg)
    return mse + gradient_weight * gradient_loss(pred, target)


def eq5_pair_loss(a: Tensor, b: Tensor, xa: Tensor, xb: Tensor) -> Tensor:
    """Paper eq. 5 for one symmetric pair: ``| |a+b| − |xa+xb| |₁ + | |a−b| − |xa−xb| |₁``, mean-reduced.

    ``a``, ``b``: the predicted frames x̂[m−k], x̂[m+k]; ``xa``, ``xb``: the true x[m−k], x[m+k];
    all of one shape. Swapping a and b (or xa and xb) gives exactly the same value: the loss does
    not ask which of the two frames comes first, which y cannot tell (paper Sec. 4). Kept for the
    ablation: it is also invariant to swapping at each pixel separately (see the module notes).
    """
    sums = ((a + b).abs() - (xa + xb).abs()).abs()
    differences = ((a - b).abs() - (xa - xb).abs()).abs()
    return sums.mean() + differences.mean()


def _penalty(difference: Tensor, penalty: str) -> Tensor:
    if penalty == "mse":
        return difference.square()
    if penalty == "charbonnier":
        return (difference.square() + CHARBONNIER_EPS**2).sqrt() - CHARBONNIER_EPS
    raise ValueError(f"unknown penalty {penalty!r}; expected 'mse' or 'charbonnier'")


def patch_sums(error: Tensor, patch: int) -> Tensor:
    """Sums of a per-pixel error (B, C, H, W) over each p×p patch and the channels → (B, ⌈H/p⌉, ⌈W/p⌉).

    Patches start at the top-left; the last row and column of patches are partial when p does not
    divide H or W (zero padding adds nothing to a sum).
    """
    if isinstance(patch, bool) or not isinstance(patch, int) or patch < 1:
        raise ValueError(f"patch must be a positive number of pixels, got {patch!r}")
    error = F.pad(error.sum(dim=1), (0, -error.shape[-1] % patch, 0, -error.shape[-2] % patch))
    B, H, W = error.shape
    return error.reshape(B, H // patch, patch, W // patch, patch).sum(dim=(2, 4))


def patch_swap_errors(
    a: Tensor, b: Tensor, xa: Tensor, xb: Tensor, patch: int = PAIR_PATCH, penalty: str = "mse"
) -> tuple[Tensor, Tensor]:
    """Per-patch summed errors of the pair in both assignments: ``(keep, swap)``, each (B, h, w).

    ``keep`` = Σ_patch pen(a − xa) + pen(b − xb), ``swap`` = Σ_patch pen(a − xb) + pen(b − xa), summed
    over the channels too; images (B, C, H, W). Shared by :func:`patch_pair_loss` and the per-patch
    metrics (:func:`b2v_rnn.metrics.patch_pair_psnr`).
    """
    if not a.shape == b.shape == xa.shape == xb.shape or a.dim() != 4:
        raise ValueError(
            f"pair images must all be (B, C, H, W) of one shape, got {tuple(a.shape)}, {tuple(b.shape)}, "
            f"{tuple(xa.shape)}, {tuple(xb.shape)}"
        )
    keep = patch_sums(_penalty(a - xa, penalty) + _penalty(b - xb, penalty), patch)
    swap = patch_sums(_penalty(a - xb, penalty) + _penalty(b - xa, penalty), patch)
    return keep, swap


def patch_pair_loss(
    a: Tensor,
    b: Tensor,
    xa: Tensor,
    xb: Tensor,
    patch: int = PAIR_PATCH,
    penalty: str = "mse",
    sum_weight: float = 0.5,
    per_sample: bool = False,
) -> Tensor:
    """Order-invariant pair loss per patch (docs/design.md §3.2): per p×p patch the smaller of the keep/swap
    error, plus ``sum_weight`` × the error of the pair's mean ``(a + b)/2`` against ``(xa + xb)/2``.

    Images (B, 3, H, W) as in :func:`eq5_pair_loss`. Both terms are mean-reduced per frame pixel
    and channel, so with ``penalty="mse"`` the first is the MSE of the pair in its better order
    patch by patch. Zero exactly at the true pair in any per-patch order; swapping a and b (or xa
    and xb) never changes it; swapping single pixels inside a patch does. The sum term is
    order-free and pins the pair's mean, which y constrains (eq. 1); at weight 0.5 it stays small
    enough that the true pair swapped at random per pixel (a + b exact, each frame worse than y)
    still scores worse than y repeated (tests/test_losses.py measures it).
    ``penalty``: ``"mse"`` or ``"charbonnier"`` (``√(d² + ε²) − ε``, ε = 1e-3).
    ``per_sample``: the loss of each sample (B,) instead of their mean.
    """
    keep, swap = patch_swap_errors(a, b, xa, xb, patch, penalty)
    pairs = torch.minimum(keep, swap).flatten(1).sum(dim=1) / (2 * a[0].numel())
    total = pairs + sum_weight * _penalty(0.5 * ((a - xa) + (b - xb)), penalty).flatten(1).mean(dim=1)
    return total if per_sample else total.mean()


PAIR_LOSSES = ("patch_mse", "patch_charbonnier", "eq5")
"""Names :func:`pair_loss` and :func:`sequence_losses` accept."""
DEFAULT_PAIR_LOSS = "patch_mse"


def pair_loss(
    a: Tensor, b: Tensor, xa: Tensor, xb: Tensor, kind: str = DEFAULT_PAIR_LOSS, patch: int = PAIR_PATCH,
    log: bool = False,
) -> Tensor:
    """The pair loss named ``kind`` (one of :data:`PAIR_LOSSES`) of predicted (a, b) = (x̂[m−k], x̂[m+k])
    against the true (xa, xb) = (x[m−k], x[m+k]), images (B, 3, H, W); ``patch`` is p for the
    per-patch kinds. ``log``: :func:`log_domain` of the per-sample losses (per-patch kinds only)."""
    if kind == "eq5":
        if log:
            raise ValueError("the eq5 pair loss has no log-domain form; use a per-patch kind")
        return eq5_pair_loss(a, b, xa, xb)
    if kind in ("patch_mse", "patch_charbonnier"):
        penalty = "mse" if kind == "patch_mse" else "charbonnier"
        per_sample = patch_pair_loss(a, b, xa, xb, patch, penalty, per_sample=True)
        return log_domain(per_sample) if log else per_sample.mean()
    raise ValueError(f"unknown pair loss {kind!r}; expected one of {PAIR_LOSSES}")


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
    kind: str = DEFAULT_PAIR_LOSS,
    patch: int = PAIR_PATCH,
    log: bool = False,
) -> tuple[Tensor, Tensor]:
    """Losses of an unrolled sequence, paper Table 1 steps 2–3: returns ``(total, per_step)``.

    ``frames``, ``targets``: (B, T, 3, H, W), T odd, middle index m = (T−1)/2 (0-based).
    ``per_step``: (K,) with K = (T−1)/2, entry k−1 = :func:`pair_loss` ``kind`` (patch side ``patch``) of
    (x̂[m−k], x̂[m+k]) against (x[m−k], x[m+k]). ``total`` = ``per_step.sum()``, plus, when ``discriminator`` and ``y``
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
        [
            pair_loss(frames[:, m - k], frames[:, m + k], targets[:, m - k], targets[:, m + k], kind, patch, log)
            for k in range(1, m + 1)
        ]
    )
    total = per_step.sum()
    if discriminator is not None:
        if y is None:
            raise ValueError("sequence_losses: the adversarial term needs y, the blurry image D is conditioned on")
        outer = torch.cat((frames[:, :m], frames[:, m + 1 :]), dim=1).flatten(0, 1)
        conditions = y.unsqueeze(1).expand(-1, T - 1, -1, -1, -1).flatten(0, 1)
        total = total + adversarial_weight * adversarial_generator_loss(discriminator(conditions, outer))
    return total, per_step
