"""High-frame-rate video file -> b2v HDF5 file (DESIGN §5).

    python -m data_tools.video_to_hdf5 clip_240fps.mp4 --out clip.h5 --T 7 --crop 320

Decoding uses imageio's ffmpeg plugin, whose ffmpeg binary ships inside the
imageio-ffmpeg wheel: no system ffmpeg is needed.
"""
from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from b2v_rnn.data.convert import Scene, add_arguments, convert, run_cli, to_rgb
from b2v_rnn.data.errors import DataError


def video_frames(path: Path) -> Iterator[np.ndarray]:
    """Decoded uint8 (H, W, 3) frames of `path`; an undecodable file raises ValueError."""
    try:
        for i, frame in enumerate(iio.imiter(path, plugin="FFMPEG")):
            yield to_rgb(frame, f"{path} frame {i}")
    except (OSError, RuntimeError) as e:
        raise DataError(f"{path}: cannot decode video ({e})") from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m data_tools.video_to_hdf5", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video", type=Path, help="video file (anything ffmpeg reads)")
    add_arguments(parser)
    args = parser.parse_args(argv)
    if not args.video.is_file():
        raise FileNotFoundError(f"{args.video}: no such video file")
    convert(args, [Scene(str(args.video), video_frames(args.video))], source=f"video:{args.video}")


if __name__ == "__main__":
    run_cli(main)
