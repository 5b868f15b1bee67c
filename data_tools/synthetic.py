"""Synthetic high-frame-rate scenes -> b2v HDF5 file (docs/design.md §5).

    python -m data_tools.synthetic --out synth_train.h5 --n 512 --T 7 --size 96 --seed 0
    python -m data_tools.synthetic --out synth_test.h5 --n 64 --seed 2 --preset held_out
    python -m data_tools.synthetic --out real_motion.h5 --n 512 --preset real_motion --motion-scale 0.5
    python -m data_tools.synthetic --out families.h5 --n 1024 --mix default --photos ~/photos

--mix draws every sample from one of the named scene families of `b2v_rnn.data.families`
(sharp, still, shake, pan, zoom, mixed, tremor): "default" is their training mix, or give
shares as "sharp=0.2,still=0.5,pan=0.3". Family blur extents are pixels at the rendered
size. --photos takes the photographs of a folder (JPEG/PNG/WebP, searched recursively)
instead of the embedded scikit-image ones, for the presets and for --mix alike.

The renderer is `b2v_rnn.data.synthetic` (also used by `b2v_rnn.data.default_dataset`);
this tool only exposes its settings. Speeds are pixels over the exposure at 320 px and
scale with --size.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from b2v_rnn.cli import run_main
from b2v_rnn.data import families
from b2v_rnn.data.convert import check_output_file
from b2v_rnn.data.photos import PhotoFolder
from b2v_rnn.data.synthetic import BROAD, HELD_OUT, REAL_MOTION, REAL_MOTION_HELD_OUT, generate, scale_motion
from b2v_rnn.errors import check_T

PRESETS = {"broad": BROAD, "held_out": HELD_OUT, "real_motion": REAL_MOTION,
           "real_motion_held_out": REAL_MOTION_HELD_OUT}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m data_tools.synthetic", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="output .h5 file")
    parser.add_argument("--n", type=int, required=True, help="number of samples")
    parser.add_argument("--T", type=int, default=7, help="sharp frames per sample (odd)")
    parser.add_argument("--size", type=int, default=96, help="image side in pixels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="broad",
                        help="broad: training textures, small motion; held_out: unseen textures, faster "
                             "motion; real_motion(_held_out): 1-6 px per frame at 96 px, mostly photographs")
    parser.add_argument("--textures", nargs="+", help="texture families (overrides the preset)")
    parser.add_argument("--objects", type=int, nargs=2, metavar=("MIN", "MAX"))
    parser.add_argument("--camera-speed", type=float, nargs=2, metavar=("LO", "HI"))
    parser.add_argument("--object-speed", type=float, nargs=2, metavar=("LO", "HI"))
    parser.add_argument("--object-rotation", type=float, help="largest rotation over the exposure, radians")
    parser.add_argument("--acceleration", type=float, help="largest velocity change, fraction of speed")
    parser.add_argument("--subframes", type=int, help="instants averaged per sharp frame")
    parser.add_argument("--photo-background", type=float, help="share of scenes with a photograph as background")
    parser.add_argument("--motion-scale", type=float, default=1.0,
                        help="multiply camera and object speeds (a curriculum stage), applied last")
    parser.add_argument("--mix", help="draw samples from scene families: 'default' (the training mix) or "
                                      "shares such as 'sharp=0.2,still=0.5,pan=0.3' (the preset options are "
                                      "then not used)")
    parser.add_argument("--photos", help="folder of photographs (JPEG/PNG/WebP) to draw textures from")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    check_T(args.T, "--T")
    check_output_file(Path(args.out), args.overwrite)  # before minutes of rendering

    if args.mix is not None:
        mix = families.TRAINING_MIX if args.mix == "default" else families.parse_mix(args.mix)
        photos = families.PhotoSource(PhotoFolder(args.photos)) if args.photos else families.EMBEDDED_TRAIN
        families.generate_mix(args.out, args.n, args.T, args.size, args.seed, mix, photos, args.overwrite,
                              progress=not args.quiet)
        print(f"wrote {args.n} samples of T={args.T} at {args.size}px from families {sorted(mix)} to {args.out}")
        return

    overrides = {name: getattr(args, name) for name in
                 ("textures", "objects", "camera_speed", "object_speed", "object_rotation",
                  "acceleration", "subframes", "photo_background") if getattr(args, name) is not None}
    for name in ("textures", "objects", "camera_speed", "object_speed"):
        if name in overrides:
            overrides[name] = tuple(overrides[name])
    if args.photos:
        overrides["photos"] = str(PhotoFolder(args.photos).folder)  # checked before any work
    settings = scale_motion(dataclasses.replace(PRESETS[args.preset], **overrides), args.motion_scale)
    generate(args.out, args.n, args.T, args.size, args.seed, settings, args.overwrite, progress=not args.quiet)
    print(f"wrote {args.n} samples of T={args.T} at {args.size}px to {args.out}")


if __name__ == "__main__":
    run_main(main)
