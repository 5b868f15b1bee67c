"""A progress bar over the frames of one whole-image extraction.

A whole image is one call of the model, so the bar is advanced by forward hooks on the
sub-networks that make frames, which the model names in its ``frames_per_call``
(`BlurToVideo`: the middle network 1 frame, the generator 1 per call; `Jin2018`: frame 4,
then 2 frames per network).
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from tqdm import tqdm

@contextmanager
def frame_progress(model, T: int, description: str, enabled: bool, mininterval: float = 0.1):
    """Yields the bar (None when disabled or the model names no sub-networks that make frames).
    `mininterval` is tqdm's redraw interval in seconds."""
    parts = [(getattr(model, name, None), frames) for name, frames in getattr(model, "frames_per_call", {}).items()]
    parts = [(m, frames) for m, frames in parts if isinstance(m, torch.nn.Module)]
    if not enabled or not parts:
        yield None
        return
    bar = tqdm(total=T, desc=description, unit="frame", leave=False, mininterval=mininterval)

    def advance(frames: int):
        def hook(*_) -> None:
            # A forward hook's non-None return value replaces the module's output, and tqdm's
            # update() returns True whenever it redraws: the hook must return None.
            bar.update(frames)

        return hook

    hooks = [m.register_forward_hook(advance(frames)) for m, frames in parts]
    try:
        yield bar
    finally:
        for hook in hooks:
            hook.remove()
        bar.close()
