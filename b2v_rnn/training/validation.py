"""Validation during training: the metrics `evaluate` reports (docs/design.md §7), by the same
loop (`b2v_rnn.inference.evaluate_clips`), on the full extraction of validation clips."""
from __future__ import annotations

import torch

from ..inference import evaluate_clips


@torch.no_grad()
def validate(model, val_set, T: int, device, amp, limit: int, memory_format=torch.contiguous_format) -> tuple[dict, tuple]:
    """The metrics of model.extract over the first `limit` validation clips (all if 0), plus the
    per-frame PSNR of the blurry input ("blurry_frame_psnr"); returns (summary, (blurry,
    prediction in the truth's direction, truth) of the first clip). `amp` is the autocast
    context the model runs under."""
    def extract(y: torch.Tensor) -> torch.Tensor:
        with amp:
            return model.extract(y.contiguous(memory_format=memory_format), T)

    model.eval()
    try:
        summary = evaluate_clips(extract, val_set, limit, device, progress=False, keep=1)
    finally:
        model.train()
    sample = summary.pop("kept")[0]
    summary.pop("clips")
    return summary, sample
