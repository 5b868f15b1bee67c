"""Metrics of DESIGN §7 for extracted sequences, with their conventions written down.

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
"""
from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import torch
from skimage.metrics import structural_similarity

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
    """Order-invariant PSNR of the symmetric pair (x̂[m−k], x̂[m+k]) (DESIGN §7).

    Scores both assignments of the predicted pair to the true pair by the mean PSNR of the
    two frames and returns the better one, so swapping pred_a and pred_b never changes it
    (the ambiguity the pair loss of paper eq. 5 is built around).
    """
    direct = 0.5 * (psnr(pred_a, true_a) + psnr(pred_b, true_b))
    swapped = 0.5 * (psnr(pred_a, true_b) + psnr(pred_b, true_a))
    return max(direct, swapped)


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
    """Every metric of DESIGN §7 for one clip.

    pred, sharp: (T, 3, H, W); blurry: (3, H, W). Returns a dict of floats: middle_psnr,
    middle_ssim, blurry_psnr, blurry_ssim (the "do nothing" baseline y vs x[m]),
    pair_psnr_k{k} for k = 1..(T-1)/2, seq_psnr, seq_reversed (1.0 if the reversed
    direction was kept), pwpsnr, consistency_psnr, and frame_psnr (list, the per-frame
    PSNRs of the kept direction).
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
        out[f"pair_psnr_k{k}"] = pair_psnr(pred[m - k], pred[m + k], sharp[m - k], sharp[m + k])
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
    baseline) and the number of clips `n`.
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
        out["n"] = self.n
        return out
