"""Folders of high-frame-rate frames -> b2v HDF5 file (format: `b2v_rnn.data.h5format`).

    python -m data_tools.frames_to_hdf5 GOPRO_Large_all/train --out gopro_train.h5 \
        --T 7 --downsample 0.45 --crop 320 --seed 0

ROOT may be one folder of frames, or a folder of scenes laid out as the GoPro dataset
(<scene>/sharp/*.png) or flat (<scene>/*.png). Frames are taken in natural name order.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from b2v_rnn.cli import run_main
from b2v_rnn.data.convert import Scene, add_arguments, convert, to_rgb
from b2v_rnn.errors import UserError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


def _natural(path: Path) -> list:
    """Sort key putting frame 10 after frame 9 even without zero padding."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", path.name)]


def images_in(folder: Path) -> list[Path]:
    """Image files directly inside `folder`, in natural order."""
    return sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
                  key=_natural)


def read_frame(path: Path) -> np.ndarray:
    """uint8 (H, W, 3) pixels of one image file; an unreadable file raises UserError."""
    try:
        image = iio.imread(path, plugin="pillow")
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: cannot read image ({e})") from None
    return to_rgb(image, str(path), scene=str(path.parent))


def find_scenes(root: Path) -> list[Scene]:
    """Scenes under root: root itself if it holds images, else each sub-folder (its
    `sharp/` sub-folder when present). Raises for a missing root or an empty scene."""
    if root.is_file():
        raise UserError(f"{root}: is a file; pass the folder that holds the frames (or scene folders)")
    if not root.is_dir():
        raise UserError(f"{root}: no such folder")
    if images_in(root):
        folders = [root]
    else:
        subdirs = sorted((d for d in root.iterdir() if d.is_dir()), key=_natural)
        if not subdirs:
            raise UserError(f"{root}: holds neither images nor scene folders "
                             "(expected ROOT/*.png, ROOT/<scene>/*.png or ROOT/<scene>/sharp/*.png)")
        folders = [d / "sharp" if (d / "sharp").is_dir() else d for d in subdirs]
    scenes = []
    for folder in folders:
        files = images_in(folder)
        if not files:
            raise UserError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in this scene folder")
        scenes.append(Scene(str(folder), (read_frame(f) for f in files), len(files), tuple(files)))
    return scenes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m data_tools.frames_to_hdf5", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path, help="folder of frames or of scene folders")
    add_arguments(parser)
    args = parser.parse_args(argv)
    convert(args, find_scenes(args.root), source=f"frames:{args.root}")


if __name__ == "__main__":
    run_main(main)
