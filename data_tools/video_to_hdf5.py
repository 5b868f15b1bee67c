"""High-frame-rate video file -> b2v HDF5 file (format: `b2v_rnn.data.h5format`).

    python -m data_tools.video_to_hdf5 clip_240fps.mp4 --out clip.h5 --T 7 --crop 320

Decoding uses imageio's ffmpeg plugin, whose ffmpeg binary ships inside the
imageio-ffmpeg wheel: no system ffmpeg is needed.
"""
from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from b2v_rnn.cli import run_main
from b2v_rnn.data.convert import Scene, add_arguments, convert, note_once, to_rgb
from b2v_rnn.errors import UserError


_BANNER = ("ffmpeg version", "built with", "configuration:", "lib", "===", "Could not load meta information")


def ffmpeg_reason(message: str) -> str:
    """ffmpeg's reason for a failure, from the message imageio wraps around its whole stderr
    (a 17-line version and build banner first): the last two distinct lines that are not
    the banner, without their "[in#0 @ 0x...]" prefixes."""
    lines = []
    for line in message.splitlines():
        line = re.sub(r"^\[[^\]]*@ 0x[0-9a-f]+\]\s*", "", line.strip())
        if line and not line.startswith(_BANNER) and not line.startswith("Error opening input file"):
            lines.append(line.rstrip(")"))
    reason = list(dict.fromkeys(lines))[-2:]
    return "; ".join(reason) if reason else message.strip().splitlines()[0] if message.strip() else "unknown error"


def video_frames(path: Path) -> Iterator[np.ndarray]:
    """Decoded uint8 (H, W, 3) frames of `path`; an undecodable file raises UserError with
    ffmpeg's reason in one line, and a note says when fewer frames decode than the header's
    duration promises (a file truncated mid-stream decodes up to the damage without an error)."""
    count = 0
    try:
        for count, frame in enumerate(iio.imiter(path, plugin="FFMPEG"), start=1):
            yield to_rgb(frame, f"{path} frame {count - 1}", scene=str(path))
    except (OSError, RuntimeError) as e:
        raise UserError(f"{path}: cannot decode video ({ffmpeg_reason(str(e))})") from None
    expected = expected_frames(path)
    if expected is not None and count < 0.9 * expected - 1:
        note_once(f"{path}: decoded {count} frames, but its header promises about {expected}: the file is "
                  f"probably truncated; the samples cover the first {count} frames only")


def expected_frames(path: Path) -> int | None:
    """Frames the header's duration and frame rate promise, or None if it does not say."""
    try:
        meta = iio.immeta(path, plugin="FFMPEG")
        return int(round(float(meta["duration"]) * float(meta["fps"])))
    except (OSError, RuntimeError, KeyError, TypeError, ValueError, OverflowError):
        return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m data_tools.video_to_hdf5", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video", type=Path, help="video file (anything ffmpeg reads)")
    add_arguments(parser)
    args = parser.parse_args(argv)
    if args.video.is_dir():
        raise UserError(f"{args.video}: is a folder, not a video file (frame folders: data_tools.frames_to_hdf5)")
    if not args.video.is_file():
        raise UserError(f"{args.video}: no such video file")
    convert(args, [Scene(str(args.video), video_frames(args.video), files=(args.video,))],
            source=f"video:{args.video}")


if __name__ == "__main__":
    run_main(main)
