"""Validation during training: the docs/design.md §7 metrics of the full extraction on validation clips."""
from __future__ import annotations

import numpy as np
import torch

from ..metrics import MetricAverager, clip_metrics, psnr


@torch.no_grad()
def validate(model, val_set, T: int, device, amp, limit: int, memory_format=torch.contiguous_format) -> tuple[dict, tuple]:
    """The docs/design.md §7 metrics of model.extract over the first `limit` validation clips (all if 0),
    plus the per-frame PSNR of the blurry input ("blurry_frame_psnr"); returns (summary,
    (blurry, prediction in the truth's direction, truth) of the first clip)."""
    model.eval()
    averager, blurry_frames, sample = MetricAverager(), np.zeros(T), None
    n = len(val_set) if limit == 0 else min(limit, len(val_set))
    for i in range(n):
        item = val_set[i]
        y, x = item["blurry"].to(device), item["sharp"].to(device)
        with amp:
            pred = model.extract(y[None].contiguous(memory_format=memory_format), T)[0].float()
        metrics = clip_metrics(pred.cpu(), x.cpu(), y.cpu())
        averager.add(metrics)
        blurry_frames += [psnr(y.cpu(), f) for f in x.cpu()]
        if sample is None:
            shown = pred.flip(0) if metrics["seq_reversed"] else pred
            sample = (y.cpu(), shown.cpu(), x.cpu())
    model.train()
    summary = averager.summary()
    summary["blurry_frame_psnr"] = (blurry_frames / n).tolist()
    return summary, sample
