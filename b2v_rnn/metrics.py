"""Metrics of docs/design.md §7 for extracted sequences, with their conventions written down.

Conventions shared by every metric here:
- images are float RGB in [0, 1], shape (3, H, W) (sequences (T, 3, H, W)); predictions are
  clamped to [0, 1] first and are NOT quantised to 8 bits;
- data range 1, all three RGB channels (no conversion to the Y channel), no border crop;
- PSNR = 10 log10(1 / MSE), with MSE over every pixel and channel; identical images would
  give +inf, so the MSE is floored at 1e-10, i.e. PSNR is capped at `PSNR_CAP` = 100 dB
  (finite JSON, averages that stay meaningful; an oracle scores exactly 100);
- SSIM is scikit-image's `structural_similarity` with `channel_axis=-1` and the settings
  its documentation gives for matching Wang et al. (2004): Gaussian window with sigma 1.5
  (11 x 11), `use_sample_covariance=False`, mean over the three channels. Images must be
  at least 11 x 11 pixels.
- Clip-level scores are averaged over clips (the mean of per-clip PSNRs, as the papers
  this project compares with report them), not computed from a pooled MSE.

Sequence metrics account for the ambiguity of the temporal direction (paper Sec. 4): for
every independently moving object forward and backward sequences give the same blurry
image, so only the middle frame is compared directly.

Every moving layer (the camera, each object) is direction-ambiguous on its own, so a
global order scores correct answers as wrong in multi-object scenes (a scene re-rendered with
layer directions flipped gives a blurry image 50 dB from the original; docs/design.md §7.4).
`patch_pair_psnr` therefore chooses the order per p x p patch (`PAIR_PATCH` = 16 px), and
`clip_metrics` reports two references beside it: repeating y in both frames (what the
model must beat) and the direction-free ceiling, both frames = (x[m-k] + x[m+k]) / 2 (the
best any order-free answer can do; a model above it has learnt a direction).
`direction_correlation` measures that direction directly.
"""
from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import torch
from skimage.metrics import structural_similarity

from .losses import PAIR_PATCH, patch_swap_errors

PSNR_CAP = 100.0
"""Largest PSNR reported, in dB: the MSE is floored at 10**(-PSNR_CAP / 10)."""

_MSE_FLOOR = 10.0 ** (-PSNR_CAP / 10.0)


def _prepare(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if pred.shape != target.shape:
        raise ValueError(f"prediction of shape {tuple(pred.shape)} vs target of shape {tuple(target.shape)}")
    return pred.detach().double().clamp(0.0, 1.0), target.detach().double()


def mse_to_psnr(mse: float | torch.Tensor) -> float:
    """PSNR in dB of a mean squared error at data range 1, capped at `PSNR_CAP`."""
    return 10.0 * math.log10(1.0 / max(float(mse), _MSE_FLOOR))


def psnr(pred: torch.Tensor, target: torch.Tensor) -> float:
    """PSNR (dB) of one image (3, H, W) or any same-shaped tensors, over all elements.

    Convention: data range 1, RGB, no border crop, prediction clamped to [0, 1], capped
    at `PSNR_CAP` (as in BasicSR's `calculate_psnr` with crop_border=0 on RGB, except that
    it works on [0, 1] floats instead of quantised uint8).
    """
    pred, target = _prepare(pred, target)
    return mse_to_psnr(torch.mean((pred - target) ** 2))


def ssim(pred: torch.Tensor, target: torch.Tensor) -> float:
    """SSIM of one RGB image (3, H, W): skimage's structural_similarity, data range 1,
    channel_axis=-1, Gaussian window sigma 1.5, population covariance (Wang et al. 2004,
    as skimage documents for matching their implementation); mean over channels."""
    pred, target = _prepare(pred, target)
    if pred.ndim != 3 or pred.shape[0] != 3:
        raise ValueError(f"ssim expects one image (3, H, W), got {tuple(pred.shape)}")
    a = pred.permute(1, 2, 0).cpu().numpy()
    b = target.permute(1, 2, 0).cpu().numpy()
    return float(structural_similarity(a, b, data_range=1.0, channel_axis=-1, gaussian_weights=True,
                                       sigma=1.5, use_sample_covariance=False))


def pair_psnr(pred_a: torch.Tensor, pred_b: torch.Tensor, true_a: torch.Tensor, true_b: torch.Tensor) -> float:
    """Order-invariant PSNR of the symmetric pair (x̂[m−k], x̂[m+k]) (docs/design.md §7.3).

    Scores both assignments of the predicted pair to the true pair by the mean PSNR of the
    two frames and returns the better one, so swapping pred_a and pred_b never changes it
    (the ambiguity the pair loss of paper eq. 5 is built around).
    """
    direct = 0.5 * (psnr(pred_a, true_a) + psnr(pred_b, true_b))
    swapped = 0.5 * (psnr(pred_a, true_b) + psnr(pred_b, true_a))
    return max(direct, swapped)


def patch_pair_psnr(pred_a: torch.Tensor, pred_b: torch.Tensor, true_a: torch.Tensor, true_b: torch.Tensor,
                    patch: int = PAIR_PATCH) -> float:
    """Per-patch order-invariant PSNR of the pair (x̂[m−k], x̂[m+k]) (docs/design.md §7.4), images (3, H, W).

    Per p×p patch (from the top-left; the last row and column partial when p does not divide
    H or W) the squared error summed over both frames is taken in the better of the two
    assignments; the PSNR is of the mean of those errors over every pixel, channel and both
    frames. Never below the PSNR of the pooled error of the better global order, and equal to
    it when p covers the image (it can fall below `pair_psnr`, which averages the two frames'
    PSNRs); swapping pred_a and pred_b never changes it.
    """
    pred_a, true_a = _prepare(pred_a, true_a)
    pred_b, true_b = _prepare(pred_b, true_b)
    keep, swap = patch_swap_errors(pred_a[None], pred_b[None], true_a[None], true_b[None], patch)
    return mse_to_psnr(torch.minimum(keep, swap).sum() / (2 * pred_a.numel()))


def _patch_rows(x: torch.Tensor, patch: int) -> torch.Tensor:
    """(3, H, W) → (n, 3·p·p): the complete p×p patches (p clipped to the image), one per row."""
    p = min(patch, x.shape[-2], x.shape[-1])
    return x.unfold(-2, p, p).unfold(-2, p, p).permute(1, 2, 0, 3, 4).reshape(-1, 3 * p * p)


def direction_correlation(pred_a: torch.Tensor, pred_b: torch.Tensor, true_a: torch.Tensor,
                          true_b: torch.Tensor, patch: int = PAIR_PATCH,
                          shuffled: bool = False) -> float:
    """Signed-direction effect: per p×p patch the |Pearson correlation| of x̂a − x̂b with xa − xb.

    The sign inside a patch is what a direction is (a frame that copies its neighbour, or one
    that knows only *where* things move, |x̂a − x̂b| ≈ |xa − xb|, scores ≈ 0), and the absolute
    value accepts either order per patch. Patches are weighted by the standard deviation of
    xa − xb, so static patches, where there is no direction to find, do not count. Images
    (3, H, W); complete patches only. ``shuffled=True`` is the control: each predicted patch is
    compared with the true difference of another patch (the patch list rolled by half its
    length), which gives the value of chance for this image (the two are equal when the image
    holds a single patch). 1 for the truth in any per-patch order.
    """
    pred_a, true_a = _prepare(pred_a, true_a)
    pred_b, true_b = _prepare(pred_b, true_b)
    pred = _patch_rows(pred_a - pred_b, patch)
    true = _patch_rows(true_a - true_b, patch)
    if shuffled:
        true = true.roll(max(1, true.shape[0] // 2), dims=0)
    pred = pred - pred.mean(dim=1, keepdim=True)
    true = true - true.mean(dim=1, keepdim=True)
    weight = true.square().mean(dim=1).sqrt()
    if float(weight.sum()) == 0.0:
        return 0.0
    corr = (pred * true).sum(dim=1) / ((pred.square().sum(dim=1) * true.square().sum(dim=1)).sqrt() + 1e-12)
    return float((weight * corr.abs()).sum() / weight.sum())


def sequence_psnr(pred: torch.Tensor, target: torch.Tensor) -> tuple[float, list[float], bool]:
    """Per-frame PSNR averaged over a sequence (T, 3, H, W), in the better direction.

    Convention of HyperCUT's pPSNR and blur2vid: the predicted sequence is compared with
    the truth forward and reversed, and the direction with the higher mean PSNR is kept.
    Returns (mean PSNR, per-frame PSNRs of the kept direction in the order of the truth,
    reversed?).
    """
    if pred.ndim != 4:
        raise ValueError(f"sequence_psnr expects (T, 3, H, W), got {tuple(pred.shape)}")
    forward = [psnr(p, t) for p, t in zip(pred, target)]
    backward = [psnr(p, t) for p, t in zip(pred.flip(0), target)]
    if sum(backward) > sum(forward):
        return sum(backward) / len(backward), backward, True
    return sum(forward) / len(forward), forward, False


def pixelwise_sequence_psnr(pred: torch.Tensor, target: torch.Tensor) -> float:
    """blur2vid's pixel-wise PSNR (PWPSNR) of a sequence (T, 3, H, W).

    For each pixel the squared error is averaged over frames and channels, forward and
    reversed; each pixel keeps the smaller of the two and the PSNR is taken of their mean.
    Never lower than `sequence_psnr`: the most lenient score, reported only for comparison
    with that work.
    """
    pred, target = _prepare(pred, target)
    forward = ((pred - target) ** 2).mean(dim=(0, 1))
    backward = ((pred.flip(0) - target) ** 2).mean(dim=(0, 1))
    return mse_to_psnr(torch.minimum(forward, backward).mean())


def consistency_psnr(pred: torch.Tensor, blurry: torch.Tensor) -> float:
    """PSNR of the mean of the predicted frames (T, 3, H, W) against the blurry image
    (3, H, W): how well the output obeys the image formation model y = mean x (paper eq. 1).
    The blurry input of an 8-bit dataset is itself rounded, so even the true frames score
    about 59 dB, not the cap."""
    return psnr(pred.detach().double().clamp(0.0, 1.0).mean(0), blurry)


def clip_metrics(pred: torch.Tensor, sharp: torch.Tensor, blurry: torch.Tensor) -> dict:
    """Every metric of docs/design.md §7 for one clip.

    pred, sharp: (T, 3, H, W); blurry: (3, H, W). Returns a dict of floats: middle_psnr,
    middle_ssim, blurry_psnr, blurry_ssim (the "do nothing" baseline y vs x[m]),
    pair_psnr_k{k} for k = 1..(T-1)/2, seq_psnr, seq_reversed (1.0 if the reversed
    direction was kept), pwpsnr, consistency_psnr, and frame_psnr (list, the per-frame
    PSNRs of the kept direction).

    Per-patch figures (p = `PAIR_PATCH`), for each k: patch_pair_psnr_k{k} (the model),
    blurry_pair_psnr_k{k} (y repeated in both frames), ceiling_pair_psnr_k{k} (both frames
    = (x[m-k] + x[m+k]) / 2; order-free, so per-patch and global agree for the two
    references), direction_corr_k{k} and direction_corr_shuffled_k{k} (its control). Over the
    sequence: patch_seq_psnr = (middle_psnr + 2 Σ_k patch_pair_psnr_k{k}) / T, the per-frame
    mean with the order chosen per patch, and blurry_patch_seq_psnr, the same for y repeated;
    select checkpoints by patch_seq_psnr (or its gain, `MetricAverager.summary`).
    """
    T = sharp.shape[0]
    if pred.shape != sharp.shape or T % 2 == 0:
        raise ValueError(f"prediction {tuple(pred.shape)} vs truth {tuple(sharp.shape)}: expected "
                         "equal shapes (T, 3, H, W) with odd T")
    m = T // 2
    out = {
        "middle_psnr": psnr(pred[m], sharp[m]),
        "middle_ssim": ssim(pred[m], sharp[m]),
        "blurry_psnr": psnr(blurry, sharp[m]),
        "blurry_ssim": ssim(blurry, sharp[m]),
    }
    for k in range(1, m + 1):
        a, b, xa, xb = pred[m - k], pred[m + k], sharp[m - k], sharp[m + k]
        out[f"pair_psnr_k{k}"] = pair_psnr(a, b, xa, xb)
        out[f"patch_pair_psnr_k{k}"] = patch_pair_psnr(a, b, xa, xb)
        out[f"blurry_pair_psnr_k{k}"] = patch_pair_psnr(blurry, blurry, xa, xb)
        ceiling = 0.5 * (xa + xb)
        out[f"ceiling_pair_psnr_k{k}"] = patch_pair_psnr(ceiling, ceiling, xa, xb)
        out[f"direction_corr_k{k}"] = direction_correlation(a, b, xa, xb)
        out[f"direction_corr_shuffled_k{k}"] = direction_correlation(a, b, xa, xb, shuffled=True)
    pairs = [out[f"patch_pair_psnr_k{k}"] for k in range(1, m + 1)]
    blurry_pairs = [out[f"blurry_pair_psnr_k{k}"] for k in range(1, m + 1)]
    out["patch_seq_psnr"] = (out["middle_psnr"] + 2 * sum(pairs)) / T
    out["blurry_patch_seq_psnr"] = (out["blurry_psnr"] + 2 * sum(blurry_pairs)) / T
    seq, frames, reversed_ = sequence_psnr(pred, sharp)
    out["seq_psnr"] = seq
    out["seq_reversed"] = float(reversed_)
    out["pwpsnr"] = pixelwise_sequence_psnr(pred, sharp)
    out["consistency_psnr"] = consistency_psnr(pred, blurry)
    out["frame_psnr"] = frames
    return out


class MetricAverager:
    """Mean of `clip_metrics` dicts over clips; list-valued entries averaged elementwise.

    `summary()` adds middle_psnr_gain and middle_ssim_gain (prediction minus the blurry
    baseline), patch_pair_psnr_gain_k{k} and patch_seq_psnr_gain (the per-patch figures minus
    y repeated) and the number of clips `n`.
    """

    def __init__(self):
        self.sums: dict = defaultdict(float)
        self.lists: dict = {}
        self.n = 0

    def add(self, metrics: dict) -> None:
        self.n += 1
        for key, value in metrics.items():
            if isinstance(value, list):
                acc = self.lists.setdefault(key, np.zeros(len(value)))
                acc += np.asarray(value, dtype=np.float64)
            else:
                self.sums[key] += float(value)

    def summary(self) -> dict:
        if self.n == 0:
            raise ValueError("no clips were evaluated")
        out = {key: value / self.n for key, value in self.sums.items()}
        out.update({key: (value / self.n).tolist() for key, value in self.lists.items()})
        if "middle_psnr" in out:
            out["middle_psnr_gain"] = out["middle_psnr"] - out["blurry_psnr"]
            out["middle_ssim_gain"] = out["middle_ssim"] - out["blurry_ssim"]
        for key in [key for key in out if key.startswith("patch_pair_psnr_k")]:
            k = key.removeprefix("patch_pair_psnr_k")
            out[f"patch_pair_psnr_gain_k{k}"] = out[key] - out[f"blurry_pair_psnr_k{k}"]
        if "patch_seq_psnr" in out:
            out["patch_seq_psnr_gain"] = out["patch_seq_psnr"] - out["blurry_patch_seq_psnr"]
        out["n"] = self.n
        return out


def grid_peak_ratio(image: torch.Tensor, period: int) -> float:
    """How strongly `image` (3, H, W) repeats with `period` px: spectral power of its grey mean
    at the grid frequencies (n/period · j along each axis and the diagonal, j = 1..period−1),
    the largest, over the median power of their neighbours (a 7×5 window beside each peak).

    A natural photograph, or a difference of two, gives a few units to a few tens; a
    pixel-shuffle grid of r px gives hundreds to tens of thousands at periods r and its
    divisors (φm's factor-4 shuffle, G's factor 5; docs/design.md §2.2). Applied to `frame − input` it
    measures the pattern a model adds. H and W are cropped to multiples of `period`.
    """
    grey = image.detach().double().mean(0)
    height, width = (s // period * period for s in grey.shape)
    grey = grey[:height, :width] - grey[:height, :width].mean()
    power = torch.fft.fft2(grey).abs().square().cpu().numpy()
    best = 0.0
    for j in range(1, period):
        fy, fx = height * j // period, width * j // period
        for y, x in ((fy, 0), (0, fx), (fy, fx)):
            beside = [power[np.ix_([(y + d) % height for d in range(-3, 4) if d], [(x + d) % width for d in range(1, 6)])],
                      power[np.ix_([(y + d) % height for d in range(1, 6)], [(x + d) % width for d in range(-3, 4) if d])]]
            neighbours = np.concatenate([block.ravel() for block in beside])
            best = max(best, power[y, x] / max(float(np.median(neighbours)), 1e-30))
    return best
