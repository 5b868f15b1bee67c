"""Extraction in overlapping tiles, so that memory stays bounded on any image size.

Tiles are blended with feathered (linear ramp) weights. The temporal direction of each
tile's sequence is ambiguous on its own (paper Sec. 4), so a tile whose reversed sequence
agrees better with what is already placed in its overlap is flipped first: neighbouring
tiles never blend a forward with a backward sequence. Which of its two directions the whole
image comes out in is arbitrary.
"""
from __future__ import annotations

import torch
from tqdm import tqdm

from ..errors import UserError


def check_tiling(tile: int, overlap: int) -> None:
    """--tile and --tile-overlap as every command takes them (tile 0: the whole image)."""
    if tile < 0 or overlap < 0:
        raise UserError(f"--tile {tile} and --tile-overlap {overlap} must be >= 0")
    if tile and tile <= 2 * overlap:
        raise UserError(f"--tile {tile} must be larger than twice --tile-overlap {overlap}")


def _ramp(n: int, overlap: int, device) -> torch.Tensor:
    """1-D blending weights of a tile side: rising over `overlap` pixels at both ends."""
    i = torch.arange(n, device=device, dtype=torch.float32)
    edge = torch.minimum(i + 1, n - i)
    return (edge / max(overlap, 1)).clamp(max=1.0)


def _starts(size: int, tile: int, overlap: int) -> list[int]:
    if size <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride))
    return starts + [size - tile]


def _aligned(frames: torch.Tensor, acc: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """frames, or frames reversed in time if that agrees better with the blend so far."""
    seen = weight > 0
    if not seen.any():
        return frames
    blended = acc / weight.clamp(min=1e-8)
    forward = ((frames - blended) ** 2 * seen).sum()
    backward = ((frames.flip(1) - blended) ** 2 * seen).sum()
    return frames.flip(1) if backward < forward else frames


@torch.inference_mode()
def extract_tiled(model, y: torch.Tensor, T: int, tile: int = 0, overlap: int = 32, progress: bool = False) -> torch.Tensor:
    """model.extract on y (1, 3, H, W), whole or in overlapping tiles -> float (1, T, 3, H, W).

    Tiles are placed in raster order; blending weights ramp linearly over the overlap.
    """
    _, _, H, W = y.shape
    if tile <= 0 or (H <= tile and W <= tile):
        return model.extract(y, T).float()
    check_tiling(tile, overlap)
    acc = torch.zeros(1, T, 3, H, W, device=y.device)
    weight = torch.zeros(1, 1, 1, H, W, device=y.device)
    boxes = [(top, left) for top in _starts(H, tile, overlap) for left in _starts(W, tile, overlap)]
    for top, left in tqdm(boxes, desc="tiles", unit="tile", leave=False, disable=not progress):
        h, w = min(tile, H), min(tile, W)
        region = (slice(None), slice(None), slice(None), slice(top, top + h), slice(left, left + w))
        frames = _aligned(model.extract(y[:, :, top:top + h, left:left + w], T).float(), acc[region], weight[region])
        ramp = (_ramp(h, overlap, y.device)[:, None] * _ramp(w, overlap, y.device)[None, :])[None, None, None]
        acc[region] += frames * ramp
        weight[region] += ramp
    return acc / weight
