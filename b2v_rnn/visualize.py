"""Images, GIFs, MP4 videos and the per-frame PSNR plot written by train, predict and evaluate.

Tensors come in as float in [0, 1], (3, H, W) per image or (T, 3, H, W) per sequence, and
become uint8 HWC only here, at the file boundary. Files are written under a temporary
name and renamed, so an interrupted run never leaves a truncated image under the final
name. Plotting needs no matplotlib: the PSNR plot is drawn with numpy and skimage.draw,
its labels with a 3 x 5 bitmap font.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from PIL import Image
from skimage.draw import disk, line

from .atomic import atomic_path

__all__ = ["to_uint8", "save_image", "save_frames", "save_gif", "save_mp4", "ping_pong", "mp4_available",
           "side_by_side", "plot_psnr_per_frame"]


def to_uint8(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """(3, H, W) float tensor in [0, 1] (or an HWC uint8/float array) -> HWC uint8, rounded."""
    if isinstance(image, torch.Tensor):
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"expected an image tensor (3, H, W), got {tuple(image.shape)}")
        image = image.detach().float().cpu().clamp(0, 1).permute(1, 2, 0).numpy()
    if image.dtype == np.uint8:
        return image
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def save_image(image: torch.Tensor | np.ndarray, path: str | os.PathLike) -> Path:
    """Write one image (see `to_uint8`) to `path`; the format follows the suffix."""
    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(to_uint8(image)).save(tmp)
    return path


def frame_names(T: int, prefix: str = "frame_", suffix: str = ".png") -> list[str]:
    """frame_01.png ... frame_TT.png: numbered from 1, at least two digits, so names sort."""
    width = max(2, len(str(T)))
    return [f"{prefix}{i:0{width}d}{suffix}" for i in range(1, T + 1)]


def save_frames(frames: torch.Tensor | Sequence, folder: str | os.PathLike, prefix: str = "frame_") -> list[Path]:
    """Write a sequence (T, 3, H, W) as folder/frame_01.png ...; the folder is created."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return [save_image(f, folder / name) for f, name in zip(frames, frame_names(len(frames), prefix))]


def save_gif(frames: torch.Tensor | Sequence, path: str | os.PathLike, fps: float = 7.0, loop: int = 0) -> Path:
    """Write frames ((T, 3, H, W) tensor, or a list of images) as an animated GIF.

    fps: frames per second (GIF stores delays in 10 ms units). loop: 0 = forever.
    Written with PIL (a dependency of scikit-image), each frame with its own palette. PIL
    merges identical consecutive frames into one longer frame, so a GIF of a static sequence
    plays for the same time with fewer stored frames.
    """
    images = [Image.fromarray(to_uint8(f)) for f in frames]
    if not images:
        raise ValueError(f"{path}: no frames to write")
    path = Path(path)
    with atomic_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=int(round(1000.0 / fps)), loop=loop)
    return path


def ping_pong(frames: Sequence) -> list:
    """frames 1..T then T-1..2: played in a loop, the motion goes back and forth without a jump."""
    frames = list(frames)
    return frames + frames[-2:0:-1]


def mp4_available() -> bool:
    """True when imageio-ffmpeg (the `video` extra, which ships its own ffmpeg) is installed."""
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        return False
    return True


def save_mp4(frames: torch.Tensor | Sequence, path: str | os.PathLike, fps: float = 7.0, crf: int = 10) -> Path:
    """Write frames ((T, 3, H, W) tensor, or a list of images) as an H.264 MP4 (yuv420p,
    which every player and browser plays) with the ffmpeg binary of imageio-ffmpeg.

    yuv420p needs even sides: an odd width or height is padded by repeating the last
    column or row, never resampled. crf: x264's constant rate factor (0 = lossless,
    23 = x264's default; 10 keeps the frames visually identical to the PNGs).
    """
    import imageio_ffmpeg

    images = [to_uint8(f) for f in frames]
    if not images:
        raise ValueError(f"{path}: no frames to write")
    H, W = images[0].shape[:2]
    pad = ((0, H % 2), (0, W % 2), (0, 0))
    path = Path(path)
    with atomic_path(path) as tmp:
        writer = imageio_ffmpeg.write_frames(str(tmp), (W + W % 2, H + H % 2), fps=fps, codec="libx264",
                                             pix_fmt_out="yuv420p", quality=None, macro_block_size=1,
                                             output_params=["-crf", str(crf), "-f", "mp4"],
                                             ffmpeg_log_level="error")
        writer.send(None)  # start ffmpeg
        try:
            for image in images:
                writer.send(np.ascontiguousarray(np.pad(image, pad, mode="edge")))
        finally:
            writer.close()
    return path


def side_by_side(*columns: torch.Tensor, gap: int = 2) -> list[np.ndarray]:
    """Panels for a comparison GIF: each column is a (3, H, W) image (repeated in every
    frame, e.g. the blurry input) or a (T, 3, H, W) sequence; returns T HWC uint8 frames of
    the columns placed left to right with `gap` white pixels between them."""
    T = max(c.shape[0] if c.ndim == 4 else 1 for c in columns)
    frames = []
    for t in range(T):
        tiles = [to_uint8(c[t] if c.ndim == 4 else c) for c in columns]
        sep = np.full((tiles[0].shape[0], gap, 3), 255, np.uint8)
        parts = []
        for i, tile in enumerate(tiles):
            parts += [sep, tile] if i else [tile]
        frames.append(np.concatenate(parts, axis=1))
    return frames


def comparison_grid(blurry: torch.Tensor, predicted: torch.Tensor, truth: torch.Tensor, gap: int = 2) -> np.ndarray:
    """A still figure of one clip: top row the blurry input (3, H, W) then the predicted
    frames (T, 3, H, W); bottom row an empty cell then the true frames. HWC uint8, `gap`
    white pixels between cells. Pass the prediction in the direction that matches the truth."""
    top = side_by_side(blurry, *predicted, gap=gap)[0]
    bottom = side_by_side(torch.ones_like(blurry), *truth, gap=gap)[0]
    return np.concatenate([top, np.full((gap, top.shape[1], 3), 255, np.uint8), bottom], axis=0)


# A 3 x 5 bitmap font: each glyph is five rows of three pixels, '#' = ink.
_GLYPHS = {
    "0": "###|#.#|#.#|#.#|###", "1": ".#.|##.|.#.|.#.|###", "2": "###|..#|###|#..|###", "3": "###|..#|###|..#|###",
    "4": "#.#|#.#|###|..#|..#", "5": "###|#..|###|..#|###", "6": "###|#..|###|#.#|###", "7": "###|..#|..#|..#|..#",
    "8": "###|#.#|###|#.#|###", "9": "###|#.#|###|..#|###", ".": "...|...|...|...|.#.", "-": "...|...|###|...|...", ",": "...|...|...|.#.|#..",
    " ": "...|...|...|...|...", "(": ".#.|#..|#..|#..|.#.", ")": ".#.|..#|..#|..#|.#.", "/": "..#|..#|.#.|#..|#..",
    ":": "...|.#.|...|.#.|...", "=": "...|###|...|###|...", "_": "...|...|...|...|###", "%": "#.#|..#|.#.|#..|#.#",
    "A": ".#.|#.#|###|#.#|#.#", "B": "##.|#.#|##.|#.#|##.", "C": ".##|#..|#..|#..|.##", "D": "##.|#.#|#.#|#.#|##.",
    "E": "###|#..|###|#..|###", "F": "###|#..|###|#..|#..", "G": ".##|#..|#.#|#.#|.##", "H": "#.#|#.#|###|#.#|#.#",
    "I": "###|.#.|.#.|.#.|###", "J": "..#|..#|..#|#.#|.#.", "K": "#.#|#.#|##.|#.#|#.#", "L": "#..|#..|#..|#..|###",
    "M": "#.#|###|###|#.#|#.#", "N": "##.|#.#|#.#|#.#|#.#", "O": ".#.|#.#|#.#|#.#|.#.", "P": "##.|#.#|##.|#..|#..",
    "Q": ".#.|#.#|#.#|##.|.##", "R": "##.|#.#|##.|#.#|#.#", "S": ".##|#..|.#.|..#|##.", "T": "###|.#.|.#.|.#.|.#.",
    "U": "#.#|#.#|#.#|#.#|###", "V": "#.#|#.#|#.#|#.#|.#.", "W": "#.#|#.#|###|###|#.#", "X": "#.#|#.#|.#.|#.#|#.#",
    "Y": "#.#|#.#|.#.|.#.|.#.", "Z": "###|..#|.#.|#..|###",
}


def _text(canvas: np.ndarray, text: str, x: int, y: int, scale: int = 2, color=(0, 0, 0), anchor: str = "left") -> None:
    """Draw `text` (upper-cased; unknown characters become spaces) with its top at row y;
    anchor 'left', 'center' or 'right' places x."""
    text = text.upper()
    width = len(text) * 4 * scale - scale
    if anchor == "center":
        x -= width // 2
    elif anchor == "right":
        x -= width
    for i, ch in enumerate(text):
        glyph = np.array([[c == "#" for c in row] for row in _GLYPHS.get(ch, _GLYPHS[" "]).split("|")])
        glyph = np.kron(glyph, np.ones((scale, scale), bool))
        gx = x + i * 4 * scale
        h, w = glyph.shape
        y0, x0 = max(y, 0), max(gx, 0)
        y1, x1 = min(y + h, canvas.shape[0]), min(gx + w, canvas.shape[1])
        if y1 > y0 and x1 > x0:
            region = canvas[y0:y1, x0:x1]
            region[glyph[y0 - y:y1 - y, x0 - gx:x1 - gx]] = color


def _thick_line(canvas: np.ndarray, r0: float, c0: float, r1: float, c1: float, color, width: int = 2) -> None:
    for dr in range(width):
        for dc in range(width):
            rr, cc = line(int(round(r0)) + dr, int(round(c0)) + dc, int(round(r1)) + dr, int(round(c1)) + dc)
            keep = (rr >= 0) & (rr < canvas.shape[0]) & (cc >= 0) & (cc < canvas.shape[1])
            canvas[rr[keep], cc[keep]] = color


def _nice_ticks(lo: float, hi: float, count: int = 5) -> np.ndarray:
    """Round tick values (1, 2 or 5 times a power of ten) covering [lo, hi]."""
    raw = (hi - lo) / max(count, 1)
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 5, 10) if m * step >= raw)
    return np.arange(math.floor(lo / step) * step, hi + 0.5 * step, step)


_COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14), (23, 190, 207)]


def plot_psnr_per_frame(values: Sequence[float] | Mapping[str, Sequence[float]], path: str | os.PathLike,
                        title: str = "PSNR PER FRAME", size: tuple[int, int] = (640, 400)) -> Path:
    """Line plot of PSNR (dB) against frame index 1..T, saved as a PNG.

    values: one sequence of per-frame values, or {label: values} for several series
    (e.g. prediction and the blurry baseline), each drawn in its own colour with markers
    and listed in a legend. Non-finite values are left out. size: (width, height).
    """
    series = dict(values) if isinstance(values, Mapping) else {"": values}
    series = {k: np.asarray(v, dtype=np.float64) for k, v in series.items()}
    if not series or all(v.size == 0 for v in series.values()):
        raise ValueError(f"{path}: nothing to plot")
    W, H = size
    left, right, top, bottom = 70, 20, 40, 50
    canvas = np.full((H, W, 3), 255, np.uint8)
    finite = np.concatenate([v[np.isfinite(v)] for v in series.values()])
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if hi - lo < 1e-6:
        lo, hi = lo - 1.0, hi + 1.0
    pad = 0.08 * (hi - lo)
    ticks = _nice_ticks(lo - pad, hi + pad)
    lo, hi = float(ticks[0]), float(ticks[-1])
    T = max(v.size for v in series.values())

    def to_px(i: float, v: float) -> tuple[float, float]:
        x = left + (i / max(T - 1, 1)) * (W - left - right - 20) + 10
        y = top + (hi - v) / (hi - lo) * (H - top - bottom)
        return y, x

    grey, black = (225, 225, 225), (0, 0, 0)
    decimals = max(0, -math.floor(math.log10(ticks[1] - ticks[0]))) if len(ticks) > 1 else 1
    for t in ticks:
        r, _ = to_px(0, t)
        _thick_line(canvas, r, left, r, W - right, grey, 1)
        _text(canvas, f"{t:.{decimals}f}", left - 6, int(r) - 5, anchor="right")
    for i in range(T):
        r, c = to_px(i, lo)
        _thick_line(canvas, r, c, r + 5, c, black, 1)
        _text(canvas, str(i + 1), int(c), int(r) + 9, anchor="center")
    _thick_line(canvas, top, left, H - bottom, left, black, 1)
    _thick_line(canvas, H - bottom, left, H - bottom, W - right, black, 1)
    _text(canvas, title, W // 2, 12, anchor="center")
    _text(canvas, "FRAME", W // 2, H - 18, anchor="center")
    _text(canvas, "DB", 8, top - 14)

    for n, (label, v) in enumerate(series.items()):
        colour = _COLOURS[n % len(_COLOURS)]
        points = [to_px(i, x) for i, x in enumerate(v) if np.isfinite(x)]
        for (r0, c0), (r1, c1) in zip(points, points[1:]):
            _thick_line(canvas, r0, c0, r1, c1, colour)
        for r, c in points:
            rr, cc = disk((r + 0.5, c + 0.5), 4, shape=canvas.shape[:2])
            canvas[rr, cc] = colour
        if label:
            y = top + 8 + 16 * n
            canvas[y:y + 10, W - right - 150:W - right - 138] = colour
            _text(canvas, label[:16], W - right - 132, y)
    path = Path(path)
    return save_image(canvas, path)
