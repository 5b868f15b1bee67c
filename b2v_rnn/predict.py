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
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from tqdm import tqdm

from . import ops, visualize
from .cli import (HelpFormatter, add_device_arguments, check_amp_precision, note, resolve_device, run_main, set_threads)
from .errors import UserError, check_T
from .images import PIL_MAX_PIXELS, ImageHeader, check_input, read_header, read_image
from .inference import Extractor, load, settings_for
from .inference.memory import automatic_tile, available_bytes
from .inference.tiling import check_tiling
from .outputs import check_writable, locked_output, refuse_inputs_among_outputs

VIDEO_FORMATS = ("gif", "mp4")
GIF_MAX_FPS = 100
"""GIF frame delays are whole hundredths of a second: above 100 fps the delay would be 0."""


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


def parse_video(value: str, explicit: bool) -> tuple[str, ...]:
    """--video -> the formats to write; mp4 without imageio-ffmpeg is an error when asked
    for explicitly and a note when it is only the default."""
    names = {"both": "gif,mp4", "none": ""}.get(value, value)
    formats = tuple(dict.fromkeys(n.strip() for n in names.split(",") if n.strip()))
    unknown = [f for f in formats if f not in VIDEO_FORMATS]
    if unknown:
        raise UserError(f"--video {value}: unknown format {unknown[0]!r}; expected gif, mp4, both or none")
    if "mp4" in formats and not visualize.mp4_available():
        if explicit:
            raise UserError("--video mp4 needs imageio-ffmpeg: pip install imageio-ffmpeg (or b2v_rnn[video])")
        note("no MP4 written: imageio-ffmpeg is not installed (pip install imageio-ffmpeg)")
        formats = tuple(f for f in formats if f != "mp4")
    return formats


def describe_losses(header: ImageHeader) -> None:
    """Say in one line what of the input the frames will not keep."""
    lost = []
    if header.alpha:
        lost.append("its alpha channel (transparency) is ignored")
    if header.deep:
        lost.append("it has more than 8 bits per channel; the frames are written with 8")
    if lost:
        note(f"{header.path}: {' and '.join(lost)}")


def output_bytes(header: ImageHeader, T: int, formats: Sequence[str]) -> int:
    """A generous bound on the disk space of one image's results: T frames as PNG (at most
    about the raw 3 bytes per pixel), one byte per pixel and frame for a GIF, a little for
    an MP4, and twice T frames for ping-pong animations."""
    pixels = header.width * header.height
    return pixels * (3 * T + 2 * T * len(formats))


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
            raise UserError(f"{image} and {stems[image.stem]} would both write {out / image.stem}; "
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
        raise UserError(f"outputs exist already: {', '.join(existing[:5])}"
                       f"{' ...' if len(existing) > 5 else ''} (pass --overwrite to replace them)")


def write_results(frames: torch.Tensor, stage: Path, stem: str, formats: Sequence[str], fps: float,
                  playback: str) -> None:
    """frames (T, 3, H, W) -> stage/<stem>/frame_*.png and stage/<stem>.<format>."""
    visualize.save_frames(frames, stage / stem)
    sequence = visualize.ping_pong(frames) if playback == "pingpong" else frames
    if "gif" in formats:
        visualize.save_gif(sequence, stage / f"{stem}.gif", fps=fps)
    if "mp4" in formats:
        visualize.save_mp4(sequence, stage / f"{stem}.mp4", fps=fps)


def predict_one(extractor: Extractor, header: ImageHeader, args) -> torch.Tensor:
    """The T frames (T, 3, H, W) on the CPU of one image: whole, or tiled by --tile or when
    the whole image would not fit in free memory."""
    # before decoding: an image too large for memory even in tiles is refused, not decoded to float
    tile = args.tile or automatic_tile(extractor.module, header.height, header.width, args.T, args.tile_overlap,
                                       available_bytes(extractor.settings.device), str(header.path))
    try:
        y = read_image(header.path, args.max_pixels)
    except MemoryError:  # numpy's _ArrayMemoryError: the estimate above could not see other processes
        raise UserError(f"{header.path} ({header.width}x{header.height}): not enough memory to decode it; "
                       "free some memory or use a smaller image") from None
    return extractor.frames_tensor(y, args.T, tile, args.tile_overlap, progress=True, name=str(header.path))


def check_options(args, raw: Sequence[str]) -> tuple[str, ...]:
    """Every option checked before any input is read; returns the animation formats."""
    set_threads(args.threads)
    check_T(args.T, "--T")
    check_tiling(args.tile, args.tile_overlap)
    if not math.isfinite(args.fps) or args.fps <= 0:  # found before the inference, not after it
        raise UserError(f"--fps {args.fps}: must be a finite number > 0")
    check_amp_precision(raw, args.amp, args.precision)
    if args.max_pixels < 1:
        raise UserError(f"--max-pixels {args.max_pixels}: must be >= 1")
    formats = parse_video(args.video, explicit=any(a == "--video" or a.startswith("--video=") for a in raw))
    if "gif" in formats and args.fps > GIF_MAX_FPS:
        raise UserError(f"--fps {args.fps:g}: a GIF's frame delay is a whole number of 1/100 s, so at most "
                       f"--fps {GIF_MAX_FPS} (or pass --video mp4)")
    return formats


def predict_all(extractor: Extractor, plans: Sequence[Plan], headers: Sequence[ImageHeader], args, out,
                formats: Sequence[str]) -> list[Path]:
    """Each image's results, staged and moved into `out` whole, one image after another."""
    written: list[Path] = []
    for plan, header in tqdm(list(zip(plans, headers)), desc="predict", unit="image", disable=len(plans) < 2):
        describe_losses(header)
        try:
            frames = predict_one(extractor, header, args)
        except UserError as e:
            if written:
                raise UserError(f"{e} [the {len(written)} image(s) before it were written completely to "
                               f"{args.out}; nothing of {plan.image}]") from None
            raise
        with out.stage() as stage:
            write_results(frames, stage, plan.stem, formats, args.fps, args.playback)
        for earlier in VIDEO_FORMATS:  # an --overwrite run without a format drops its old file
            if earlier not in formats:
                (out.path / f"{plan.stem}.{earlier}").unlink(missing_ok=True)
        if not written:  # once: which implementation computed the frames
            tqdm.write(f"{extractor.settings.describe()} | ops: {ops.describe()}")
        written.append(plan.folder)
        made = ", ".join(str(p) for p in plan.videos)
        tqdm.write(f"{plan.image} ({header.width}x{header.height}) -> {plan.folder}/ ({args.T} frames)"
                   f"{', ' + made if made else ''}")
    return written


def main(argv: Sequence[str] | None = None) -> list[Path]:
    """Run prediction; returns the frame folders written."""
    raw = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(raw)
    formats = check_options(args, raw)
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
        loaded = load(args.checkpoint, device)
        loaded.check_frames(args.T)
        extractor = Extractor(loaded, settings_for(device, args.precision, args.amp, loaded.module))
        return predict_all(extractor, plans, headers, args, out, formats)


if __name__ == "__main__":
    run_main(main)
