"""How much memory an extraction needs, how much the device has, and the tile that fits.

The estimate is decided from the image's size alone (its header), so that an image too large
even in tiles is refused before it is decoded to float.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

from ..cli import note
from ..errors import UserError

# Peak memory of model.extract per input pixel, in float32 values, measured on a CPU
# (T = 7, 256² and 512² inputs): tiny ~170, small ~240, paper ~440, i.e. about
# 120 + 2.25 x the middle network's channels; the output frames come on top.
_FLOATS_PER_PIXEL_BASE = 120
_FLOATS_PER_PIXEL_PER_CHANNEL = 2.25
_MEMORY_HEADROOM = 0.7  # use at most this share of the free memory


def estimated_bytes(model, height: int, width: int, T: int) -> int:
    """Rough peak memory of extracting T frames from a height x width image in one piece."""
    channels = getattr(model, "config", {}).get("middle", {}).get("channels", 144)
    per_pixel = _FLOATS_PER_PIXEL_BASE + _FLOATS_PER_PIXEL_PER_CHANNEL * channels + 3 * (T + 1)
    return int(4 * per_pixel * height * width)


def available_bytes(device: torch.device) -> int | None:
    """Free memory of the device: CUDA's free memory, or on a CPU the smaller of the
    kernel's MemAvailable and what this process's cgroup may still use; None if unknown."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    candidates = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                candidates.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
            candidates.append(int(limit) - used)
    except (OSError, ValueError):
        pass
    return min(candidates) if candidates else None


def _size(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def automatic_tile(model, height: int, width: int, T: int, overlap: int, free: int | None,
                   name: str = "the image") -> int:
    """0 if the whole height x width image fits in `free` bytes (or free is unknown), else the
    largest tile side (a multiple of 64) that does, with a note; UserError if not even the
    smallest tile fits. `name` says which image, in both."""
    budget = None if free is None else free * _MEMORY_HEADROOM
    whole = estimated_bytes(model, height, width, T)
    if budget is None or whole <= budget:
        return 0
    per_pixel = estimated_bytes(model, 1, 1, T)
    # the blended result and its weights, and the decoded input (uint8, then float) held throughout
    frames = (4 * (3 * T + 1) + 3 + 4 * 3) * height * width
    side = math.isqrt(max(int(budget - frames), 0) // per_pixel) // 64 * 64
    smallest = max(64, (2 * overlap // 64 + 1) * 64)
    if side < smallest:
        raise UserError(f"{name} ({width}x{height}): needs about {_size(whole)}, only {_size(free)} free, and "
                       f"even {smallest}x{smallest} tiles do not fit; free some memory or use a smaller image")
    note(f"{name} ({width}x{height}) needs about {_size(whole)} whole, "
         f"{_size(free)} free: processing it in {side}x{side} tiles (choose with --tile)")
    return side


def is_out_of_memory(error: BaseException) -> bool:
    text = str(error)
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in text or "can't allocate memory" in text
