"""Extract T sharp frames from motion-blurred photos.

    python -m b2v_rnn.predict b2v_rnn/samples/blurry.png --T 7 --out results   # the sample photo
    python -m b2v_rnn.predict photos/*.jpg --out results --tile 512    # large images, in tiles

For each input IMG writes OUT/<stem>/frame_01.png ... frame_TT.png, OUT/<stem>.gif and,
when imageio-ffmpeg is installed (the `video` extra), OUT/<stem>.mp4 (H.264); `--playback
pingpong` makes the GIF and MP4 play forward then back. Any image size: the model pads to
its size multiple and crops back. With --tile N the image is processed in overlapping
N x N tiles blended with feathered (linear ramp) weights, so memory stays bounded; each
tile's temporal direction is aligned with the tiles already placed (the direction is
ambiguous per tile, paper Sec. 4), so neighbouring tiles never blend a forward with a
backward sequence. The sequence as a whole comes out in one of its two directions; which
one is arbitrary. Without --tile, an image whose estimated memory exceeds what the device
has free is tiled automatically, with a note saying so.

Without --checkpoint the default weights shipped with the package are used when this
installation has them (b2v_rnn/weights/default.pt, SHA-256 verified).

Outputs follow `b2v_rnn.outputs`: OUT is checked for writability before any work, locked
against a concurrent run, and each image's results appear complete or not at all.
Existing outputs are never replaced unless --overwrite is given.
"""
from __future__ import annotations

import argparse
import math
import sys
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm import tqdm

from . import visualize
from .checkpoint import CheckpointError, default_checkpoint, load_model
from .cli import (CliError, HelpFormatter, add_device_arguments, check_amp_precision, check_T, resolve_device,
                  run_main, set_threads)
from .inference import InferenceSettings, settings_for
from .outputs import check_writable, locked_output, refuse_inputs_among_outputs

VIDEO_FORMATS = ("gif", "mp4")
GIF_MAX_FPS = 100
"""GIF frame delays are whole hundredths of a second: above 100 fps the delay would be 0."""
PIL_MAX_PIXELS = 2 * Image.MAX_IMAGE_PIXELS
"""PIL warns above MAX_IMAGE_PIXELS and refuses above twice that (~179 MP); --max-pixels
makes that refusal the only limit, with one line instead of a warning or a traceback."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m b2v_rnn.predict", allow_abbrev=False,
                                description="Extract T sharp frames, a GIF and an MP4 from each motion-blurred image.",
                                formatter_class=HelpFormatter)
    p.add_argument("images", nargs="+", type=Path, metavar="IMG", help="blurry input images (PNG, JPEG, ...)")
    p.add_argument("--T", type=int, default=7, help="frames to extract (odd, >= 3)")
    p.add_argument("--out", type=Path, default=Path("results"), help="output folder")
    p.add_argument("--checkpoint", type=Path, help="model checkpoint (default: the weights shipped with the package)")
    p.add_argument("--tile", type=int, default=0,
                   help="process in N x N tiles (default 0: the whole image, tiled automatically when it would "
                        "not fit in memory)")
    p.add_argument("--tile-overlap", type=int, default=32, help="overlap of neighbouring tiles, in pixels")
    add_device_arguments(p, precision=True)
    p.add_argument("--video", default="gif,mp4",
                   help="animations to write besides the PNG frames: gif, mp4, both (gif,mp4) or none; "
                        "mp4 needs imageio-ffmpeg and is skipped with a note when it is missing")
    p.add_argument("--playback", choices=("forward", "pingpong"), default="forward",
                   help="GIF/MP4 order: frames 1..T, or 1..T..2 so that a loop goes back and forth")
    p.add_argument("--fps", type=float, default=7.0, help="GIF and MP4 frame rate")
    p.add_argument("--max-pixels", type=int, default=PIL_MAX_PIXELS,
                   help="refuse larger images (PIL's guard against decompression bombs)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    return p


def note(message: str) -> None:
    """One line on stderr, through tqdm so that it does not break a progress bar."""
    tqdm.write(f"note: {message}", file=sys.stderr)


def parse_video(value: str, explicit: bool) -> tuple[str, ...]:
    """--video -> the formats to write; mp4 without imageio-ffmpeg is an error when asked
    for explicitly and a note when it is only the default."""
    names = {"both": "gif,mp4", "none": ""}.get(value, value)
    formats = tuple(dict.fromkeys(n.strip() for n in names.split(",") if n.strip()))
    unknown = [f for f in formats if f not in VIDEO_FORMATS]
    if unknown:
        raise CliError(f"--video {value}: unknown format {unknown[0]!r}; expected gif, mp4, both or none")
    if "mp4" in formats and not visualize.mp4_available():
        if explicit:
            raise CliError("--video mp4 needs imageio-ffmpeg: pip install imageio-ffmpeg (or b2v_rnn[video])")
        note("no MP4 written: imageio-ffmpeg is not installed (pip install imageio-ffmpeg)")
        formats = tuple(f for f in formats if f != "mp4")
    return formats


@dataclass(frozen=True)
class ImageHeader:
    """What an input image's header says, read before any work: size and what is lost."""

    path: Path
    width: int
    height: int
    alpha: bool
    deep: bool  # more than 8 bits per channel


def check_input(path: Path) -> None:
    """A missing path, a folder and an unreadable file are three different mistakes."""
    if path.is_dir():
        raise CliError(f"{path}: is a folder, not an image (pass the images inside it, e.g. {path}/*.png)")
    if not path.exists():
        raise CliError(f"{path}: no such file")


@contextmanager
def _pil_limit(max_pixels: int):
    """PIL's decompression-bomb guard set to max_pixels, its warning made an error."""
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def _open_error(path: Path, error: Exception, max_pixels: int) -> CliError:
    if isinstance(error, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return CliError(f"{path}: more pixels than --max-pixels {max_pixels} allows (PIL's guard against "
                        "decompression bombs); pass a larger --max-pixels if you trust the file")
    if isinstance(error, FileNotFoundError):
        return CliError(f"{path}: no such file")
    if isinstance(error, IsADirectoryError):
        return CliError(f"{path}: is a folder, not an image")
    return CliError(f"{path}: not a readable image ({error})")


def read_header(path: Path, max_pixels: int = PIL_MAX_PIXELS) -> ImageHeader:
    """Size, alpha and bit depth of an image file without decoding its pixels; CliError for
    a missing, unreadable or too large file."""
    check_input(path)
    try:
        with _pil_limit(max_pixels), Image.open(path) as im:
            rawmodes = " ".join(str(tile.args) for tile in im.tile)
            deep = im.mode in ("I;16", "I;16B", "I;16L", "I", "F") or ";16" in rawmodes
            width, height = im.size
            if (im.getexif().get(0x0112) or 1) in (5, 6, 7, 8):  # EXIF orientation swaps the sides
                width, height = height, width
            return ImageHeader(path, width, height, im.has_transparency_data, deep)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as e:
        raise _open_error(path, e, max_pixels) from None


def read_image(path: Path, max_pixels: int = PIL_MAX_PIXELS) -> torch.Tensor:
    """An image file -> float (3, H, W) in [0, 1]. EXIF orientation is applied; grey and
    palette images become RGB, alpha is dropped; 16-bit grey is scaled by 65535 (PIL
    reads 16-bit colour as 8 bits per channel)."""
    check_input(path)
    try:
        with _pil_limit(max_pixels), Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                grey = np.asarray(im, dtype=np.float32) / 65535.0
                array = np.repeat(grey[..., None], 3, axis=-1)
            else:
                array = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as e:
        raise _open_error(path, e, max_pixels) from None
    return torch.from_numpy(np.ascontiguousarray(array.clip(0, 1))).permute(2, 0, 1)


def describe_losses(header: ImageHeader) -> None:
    """Say in one line what of the input the frames will not keep."""
    lost = []
    if header.alpha:
        lost.append("its alpha channel (transparency) is ignored")
    if header.deep:
        lost.append("it has more than 8 bits per channel; the frames are written with 8")
    if lost:
        note(f"{header.path}: {' and '.join(lost)}")


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


def automatic_tile(model, header: ImageHeader, T: int, overlap: int, free: int | None) -> int:
    """0 if the whole image fits in `free` bytes (or free is unknown), else the largest tile
    side (a multiple of 64) that does; CliError if not even the smallest tile fits."""
    budget = None if free is None else free * _MEMORY_HEADROOM
    whole = estimated_bytes(model, header.height, header.width, T)
    if budget is None or whole <= budget:
        return 0
    per_pixel = estimated_bytes(model, 1, 1, T)
    # the blended result and its weights, and the decoded input (uint8, then float) held throughout
    frames = (4 * (3 * T + 1) + 3 + 4 * 3) * header.height * header.width
    side = math.isqrt(max(int(budget - frames), 0) // per_pixel) // 64 * 64
    smallest = max(64, (2 * overlap // 64 + 1) * 64)
    if side < smallest:
        raise CliError(f"{header.path} ({header.width}x{header.height}): needs about {_size(whole)}, "
                       f"only {_size(free)} free, and even {smallest}x{smallest} tiles do not fit; "
                       "free some memory or use a smaller image")
    note(f"{header.path} ({header.width}x{header.height}) needs about {_size(whole)} whole, "
         f"{_size(free)} free: processing it in {side}x{side} tiles (choose with --tile)")
    return side


def output_bytes(header: ImageHeader, T: int, formats: Sequence[str]) -> int:
    """A generous bound on the disk space of one image's results: T frames as PNG (at most
    about the raw 3 bytes per pixel), one byte per pixel and frame for a GIF, a little for
    an MP4, and twice T frames for ping-pong animations."""
    pixels = header.width * header.height
    return pixels * (3 * T + 2 * T * len(formats))


def _is_out_of_memory(error: BaseException) -> bool:
    text = str(error)
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in text or "can't allocate memory" in text


FRAMES_PER_CALL = {"middle": 1, "generator": 1, "center": 1, "frames35": 2, "frames26": 2, "frames17": 2}
"""Frames each call of a sub-network makes: `BlurToVideo`'s two, `Jin2018`'s four."""


@contextmanager
def frame_progress(model, T: int, description: str, enabled: bool, mininterval: float = 0.1):
    """A progress bar over the T frames of one whole-image extraction, advanced by forward
    hooks on the middle network (1 frame) and the generator (1 frame per call), or on the
    authors' four networks (frame 4, then 2 frames per network); yields the bar (None when
    disabled). `mininterval` is tqdm's redraw interval in seconds."""
    parts = [(getattr(model, name, None), frames) for name, frames in FRAMES_PER_CALL.items()]
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


@torch.inference_mode()
def extract_tiled(model, y: torch.Tensor, T: int, tile: int = 0, overlap: int = 32, progress: bool = False) -> torch.Tensor:
    """model.extract on y (1, 3, H, W), whole or in overlapping tiles -> (1, T, 3, H, W).

    Tiles are placed in raster order; a tile whose reversed sequence agrees better with
    the blended result in its overlap is flipped before blending, so the whole image keeps
    one temporal direction. Blending weights ramp linearly over the overlap.
    """
    _, _, H, W = y.shape
    if tile <= 0 or (H <= tile and W <= tile):
        return model.extract(y, T).float()
    if tile <= 2 * overlap:
        raise CliError(f"--tile {tile} must be larger than twice --tile-overlap {overlap}")
    acc = torch.zeros(1, T, 3, H, W, device=y.device)
    weight = torch.zeros(1, 1, 1, H, W, device=y.device)
    boxes = [(top, left) for top in _starts(H, tile, overlap) for left in _starts(W, tile, overlap)]
    for top, left in tqdm(boxes, desc="tiles", unit="tile", leave=False, disable=not progress):
        h, w = min(tile, H), min(tile, W)
        frames = model.extract(y[:, :, top:top + h, left:left + w], T).float()
        region = (slice(None), slice(None), slice(None), slice(top, top + h), slice(left, left + w))
        seen = weight[region] > 0
        if seen.any():
            blended = acc[region] / weight[region].clamp(min=1e-8)
            forward = ((frames - blended) ** 2 * seen).sum()
            backward = ((frames.flip(1) - blended) ** 2 * seen).sum()
            if backward < forward:
                frames = frames.flip(1)
        ramp = (_ramp(h, overlap, y.device)[:, None] * _ramp(w, overlap, y.device)[None, :])[None, None, None]
        acc[region] += frames * ramp
        weight[region] += ramp
    return acc / weight


@dataclass(frozen=True)
class Plan:
    """One input and the outputs it writes: OUT/<stem>/ (frames) and OUT/<stem>.<format>."""

    image: Path
    folder: Path
    videos: tuple[Path, ...]

    @property
    def stem(self) -> str:
        return self.folder.name


def plan_outputs(images: Sequence[Path], out: Path, formats: Sequence[str] = ("gif",)) -> list[Plan]:
    """One Plan per image; refuses two inputs that would write the same outputs."""
    plans, stems = [], {}
    for image in images:
        if image.stem in stems:
            raise CliError(f"{image} and {stems[image.stem]} would both write {out / image.stem}; "
                           "rename one or run them separately")
        stems[image.stem] = image
        plans.append(Plan(image, out / image.stem, tuple(out / f"{image.stem}.{f}" for f in formats)))
    return plans


def refuse_existing(plans: Sequence[Plan], overwrite: bool) -> None:
    """Without --overwrite, any output of any plan that exists already stops the run before
    anything is computed. Earlier animations of another format count too: they would be
    left beside the new frames."""
    if overwrite:
        return
    existing = [str(p) for plan in plans
                for p in (plan.folder, *(plan.folder.with_name(f"{plan.stem}.{f}") for f in VIDEO_FORMATS))
                if p.exists()]
    if existing:
        raise CliError(f"outputs exist already: {', '.join(existing[:5])}"
                       f"{' ...' if len(existing) > 5 else ''} (pass --overwrite to replace them)")


def load_for_inference(checkpoint: Path | None, T: int, device, T_from: str | None = None):
    """(model, checkpoint path) for --checkpoint (a file, or a folder of the authors' four
    pretrained files) or the shipped default weights; notes when T differs from the T the
    model was trained on (G then unrolls fewer or more steps); the authors' networks refuse it.
    ``T_from``: where T came from, for that refusal (default: the option, ``--T T``)."""
    try:
        path = checkpoint if checkpoint is not None else default_checkpoint()
        model, state = load_model(path, device)
    except CheckpointError as e:
        raise CliError(str(e)) from None
    if model.config["kind"] == "Jin2018" and T != state["T"]:
        fix = f"pass --T {state['T']}" if T_from is None else f"use clips of {state['T']} frames"
        raise CliError(f"{T_from or f'--T {T}'}: {path} holds the authors' pretrained networks, which extract "
                       f"exactly {state['T']} frames; {fix}")
    if state["T"] != T:
        note(f"{path} was trained with T={state['T']}; extracting T={T} frames "
             f"{'extrapolates beyond' if T > state['T'] else 'uses fewer steps than'} training")
    return model, path


def write_results(frames: torch.Tensor, stage: Path, stem: str, formats: Sequence[str], fps: float,
                  playback: str) -> None:
    """frames (T, 3, H, W) -> stage/<stem>/frame_*.png and stage/<stem>.<format>."""
    visualize.save_frames(frames, stage / stem)
    sequence = visualize.ping_pong(frames) if playback == "pingpong" else frames
    if "gif" in formats:
        visualize.save_gif(sequence, stage / f"{stem}.gif", fps=fps)
    if "mp4" in formats:
        visualize.save_mp4(sequence, stage / f"{stem}.mp4", fps=fps)


def predict_one(model, header: ImageHeader, args, settings: InferenceSettings) -> torch.Tensor:
    """The T frames (T, 3, H, W) on the CPU of one image: whole, or tiled by --tile or when
    the whole image would not fit in free memory; out of memory becomes a --tile hint."""
    device = settings.device
    # before decoding: an image too large for memory even in tiles is refused, not decoded to float
    tile = args.tile or automatic_tile(model, header, args.T, args.tile_overlap, available_bytes(device))
    try:
        y = settings.input(read_image(header.path, args.max_pixels)[None])
    except MemoryError:  # numpy's _ArrayMemoryError: the estimate above could not see other processes
        raise CliError(f"{header.path} ({header.width}x{header.height}): not enough memory to decode it; "
                       "free some memory or use a smaller image") from None
    whole = tile <= 0 or (header.height <= tile and header.width <= tile)
    pixels = header.width * header.height
    large = pixels >= 512 * 512 or pixels * args.T >= 512 * 512 * 7  # a large image, or many frames
    try:
        with settings.autocast(), frame_progress(model, args.T, header.path.name, enabled=whole and large):
            return extract_tiled(model, y, args.T, tile, args.tile_overlap, progress=True)[0].float().cpu()
    except RuntimeError as e:
        if not _is_out_of_memory(e):
            raise
        hint = f"--tile {max(128, (tile or max(header.width, header.height)) // 2 // 64 * 64)}"
        raise CliError(f"{header.path} ({header.width}x{header.height}): out of memory on {device}"
                       f"{f' with --tile {tile}' if tile else ''}; pass {hint} (or smaller)") from None


def main(argv: Sequence[str] | None = None) -> list[Path]:
    """Run prediction; returns the frame folders written."""
    raw = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(raw)
    set_threads(args.threads)
    check_T(args.T)
    if args.tile < 0 or args.tile_overlap < 0:
        raise CliError(f"--tile {args.tile} and --tile-overlap {args.tile_overlap} must be >= 0")
    if args.tile and args.tile <= 2 * args.tile_overlap:
        raise CliError(f"--tile {args.tile} must be larger than twice --tile-overlap {args.tile_overlap}")
    if not math.isfinite(args.fps) or args.fps <= 0:  # found before the inference, not after it
        raise CliError(f"--fps {args.fps}: must be a finite number > 0")
    check_amp_precision(raw, args.amp, args.precision)
    if args.max_pixels < 1:
        raise CliError(f"--max-pixels {args.max_pixels}: must be >= 1")
    formats = parse_video(args.video, explicit=any(a == "--video" or a.startswith("--video=") for a in raw))
    if "gif" in formats and args.fps > GIF_MAX_FPS:
        raise CliError(f"--fps {args.fps:g}: a GIF's frame delay is a whole number of 1/100 s, so at most "
                       f"--fps {GIF_MAX_FPS} (or pass --video mp4)")
    device = resolve_device(args.device)
    for image in args.images:
        check_input(image)
    plans = plan_outputs(args.images, args.out, formats)
    refuse_inputs_among_outputs([p for plan in plans for p in (plan.folder, *(
        plan.folder.with_name(f"{plan.stem}.{f}") for f in VIDEO_FORMATS))], [*args.images, args.checkpoint])
    headers = [read_header(image, args.max_pixels) for image in args.images]  # every input, before any work
    check_writable(args.out, need_bytes=sum(output_bytes(h, args.T, formats) for h in headers))
    with locked_output(args.out) as out:
        refuse_existing(plans, args.overwrite)
        model, _ = load_for_inference(args.checkpoint, args.T, device)
        settings = settings_for(device, args.precision, args.amp, model)
        model = settings.prepare(model)
        written: list[Path] = []
        for plan, header in tqdm(list(zip(plans, headers)), desc="predict", unit="image", disable=len(plans) < 2):
            describe_losses(header)
            try:
                frames = predict_one(model, header, args, settings)
            except CliError as e:
                if written:
                    raise CliError(f"{e} [the {len(written)} image(s) before it were written completely to "
                                   f"{args.out}; nothing of {plan.image}]") from None
                raise
            with out.stage() as stage:
                write_results(frames, stage, plan.stem, formats, args.fps, args.playback)
            for earlier in VIDEO_FORMATS:  # an --overwrite run without a format drops its old file
                if earlier not in formats:
                    (out.path / f"{plan.stem}.{earlier}").unlink(missing_ok=True)
            if not written:  # once: which implementation computed the frames
                from . import ops

                tqdm.write(f"{settings.describe()} | ops: {ops.describe()}")
            written.append(plan.folder)
            made = ", ".join(str(p) for p in plan.videos)
            tqdm.write(f"{plan.image} ({header.width}x{header.height}) -> {plan.folder}/ ({args.T} frames)"
                       f"{', ' + made if made else ''}")
    return written


if __name__ == "__main__":
    run_main(main)
