"""`Extractor`: T sharp frames from a blurry image with one loaded model, in the precision
and memory layout chosen for its device, whole or in tiles."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import UserError, check_T
from ..images import as_tensor
from ..visualize import to_uint8
from .loading import LoadedModel
from .memory import automatic_tile, available_bytes, is_out_of_memory
from .precision import InferenceSettings, settings_for
from .progress import frame_progress
from .tiling import check_tiling, extract_tiled

LARGE_PIXELS = 512 * 512
"""From this size on (or T / 7 times it in frames) a whole-image extraction draws a per-frame
progress bar: below it, one frame takes well under a second on a CPU."""


class Extractor:
    """Frames from blurry images.

        from b2v_rnn import inference
        extractor = inference.Extractor(inference.load())          # the shipped weights
        frames = extractor.frames("photo.jpg", T=7)                # uint8 (7, H, W, 3)

    `model`: a `LoadedModel` (from `load`) or a bare network with an ``extract(y, T)``
    method. `settings` fixes device, precision and layout; without it they follow `device`
    (default: where the model's weights are) and `precision` (``auto`` measures bf16 on a
    CPU with native bf16; see `b2v_rnn.inference.precision`).
    """

    def __init__(self, model: LoadedModel | nn.Module, settings: InferenceSettings | None = None, *,
                 device: str | torch.device | None = None, precision: str = "auto") -> None:
        self.loaded = model if isinstance(model, LoadedModel) else None
        module = model.module if isinstance(model, LoadedModel) else model
        if settings is None:
            where = torch.device(device) if device is not None else next(module.parameters()).device
            settings = settings_for(where, precision, model=module)
        self.settings = settings
        self.module = settings.prepare(module).eval()

    @property
    def default_T(self) -> int:
        """The T the model was trained for (7 for a bare network)."""
        return self.loaded.trained_T if self.loaded is not None else 7

    def _resolve_T(self, T: int | None) -> int:
        T = self.default_T if T is None else T
        check_T(T)
        if self.loaded is not None and self.loaded.fixed_T and T != self.loaded.trained_T:
            self.loaded.check_frames(T)  # raises, naming the file
        return T

    def __call__(self, y: torch.Tensor, T: int, tile: int = 0, overlap: int = 32, progress: bool = False) -> torch.Tensor:
        """A batch of one, y (1, 3, H, W) -> float frames (1, T, 3, H, W) on the device."""
        with self.settings.autocast():
            return extract_tiled(self.module, self.settings.input(y), T, tile, overlap, progress=progress)

    def frames_tensor(self, image, T: int | None = None, tile: int | None = None, overlap: int = 32,
                      progress: bool = False, name: str | None = None) -> torch.Tensor:
        """float (T, 3, H, W) in [0, 1] on the CPU (before rounding to 8 bits).

        `image`: anything `b2v_rnn.images.as_tensor` takes (a path, a PIL image, an HWC array,
        a (3, H, W) float tensor). `tile`: None tiles only when the whole image would not fit
        in the device's free memory, 0 never, N in N x N tiles overlapping by `overlap` px.
        `progress` draws bars (per frame on large whole images, per tile when tiled); `name`
        names the image in notes and errors.
        """
        T = self._resolve_T(T)
        if name is None:
            name = str(image) if isinstance(image, (str, Path)) else "the image"
        y = as_tensor(image)
        _, H, W = y.shape
        if tile is None:
            tile = automatic_tile(self.module, H, W, T, overlap, available_bytes(self.settings.device), name)
        check_tiling(tile, overlap)
        whole = tile <= 0 or (H <= tile and W <= tile)
        large = H * W >= LARGE_PIXELS or H * W * T >= LARGE_PIXELS * 7
        try:
            with frame_progress(self.module, T, Path(name).name, enabled=progress and whole and large):
                return self(y[None], T, tile, overlap, progress)[0].float().cpu()
        except RuntimeError as e:
            if not is_out_of_memory(e):
                raise
            hint = f"--tile {max(128, (tile or max(H, W)) // 2 // 64 * 64)}"
            raise UserError(f"{name} ({W}x{H}): out of memory on {self.settings.device}"
                           f"{f' with --tile {tile}' if tile else ''}; pass {hint} (or smaller)") from None

    def frames(self, image, T: int | None = None, tile: int | None = None, overlap: int = 32) -> np.ndarray:
        """uint8 (T, H, W, 3) frames, rounded as the PNG files `predict` writes."""
        return np.stack([to_uint8(f) for f in self.frames_tensor(image, T, tile, overlap)])
