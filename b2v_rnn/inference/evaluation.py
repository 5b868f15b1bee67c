"""The metrics of `b2v_rnn.metrics` over the clips of a dataset: what `evaluate` reports and
what training validates with, computed by one loop."""
from __future__ import annotations

from typing import Callable

import torch
from tqdm import tqdm

from .. import metrics as M


def evaluate_clips(extract: Callable[[torch.Tensor], torch.Tensor], dataset, limit: int = 0,
                   device: str | torch.device = "cpu", progress: bool = True, keep: int = 0) -> dict:
    """Metrics of `extract` over the first `limit` clips of `dataset` (all if 0; a
    BlurSequenceDataset without augmentation). extract: y (1, 3, H, W) on `device` ->
    frames (1, T, 3, H, W).

    Returns the `MetricAverager` summary plus "clips" (the per-clip metrics, in file order),
    "blurry_frame_psnr" (the per-frame PSNR of the blurry input against each true frame) and
    "kept": (blurry, prediction in the truth's best direction, truth) of the first `keep` clips.
    """
    n = len(dataset) if limit <= 0 else min(limit, len(dataset))
    averager, clips, kept = M.MetricAverager(), [], []
    blurry_frames = torch.zeros(dataset.T, dtype=torch.float64)
    for i in tqdm(range(n), desc="evaluate", unit="clip", disable=not progress):
        item = dataset[i]
        y, x = item["blurry"], item["sharp"]
        pred = extract(y[None].to(device))[0].float().cpu()
        if pred.shape != x.shape:
            raise ValueError(f"clip {i}: the model returned {tuple(pred.shape)}, expected {tuple(x.shape)}")
        clip = M.clip_metrics(pred, x, y)
        averager.add(clip)
        clips.append(clip)
        if i < keep:
            kept.append((y, pred.flip(0) if clip["seq_reversed"] else pred, x))
        blurry_frames += torch.tensor([M.psnr(y, f) for f in x], dtype=torch.float64)
    summary = averager.summary()
    summary["blurry_frame_psnr"] = (blurry_frames / n).tolist()
    summary["clips"] = clips
    summary["kept"] = kept
    return summary
