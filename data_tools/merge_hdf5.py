"""Concatenate b2v HDF5 files (same T and frame size) into one, e.g. a training mixture.

    python -m data_tools.merge_hdf5 broad.h5 real_motion.h5 --out mix.h5

Samples are copied in order, file after file, each with the blurry image its file stores
(the frames' mean, or a camera's record of it: `b2v_rnn.data.camera`, which recomputing it
from the frames would silently replace) and its checksum. The files must
share T, frame size and gamma (averaging in linear light or not), else a one-line error
names the file that differs. Still masks are kept when every input has them, else dropped
(a mask for some samples only would say nothing about the rest). The output appears only
when complete.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import h5py

from b2v_rnn.cli import run_main
from b2v_rnn.data import H5Writer, read_info
from b2v_rnn.data.convert import check_output_file
from b2v_rnn.data.h5format import sample_error
from b2v_rnn.errors import UserError


def merge(inputs: list[Path], out: Path, overwrite: bool = False, progress: bool = True) -> int:
    """Writes the samples of every input file to `out`; returns how many."""
    check_output_file(out, overwrite, inputs)
    infos = [read_info(path) for path in inputs]
    first = infos[0]
    for info in infos[1:]:
        mine, theirs = (info.T, info.H, info.W, info.attrs.get("gamma")), (first.T, first.H, first.W,
                                                                         first.attrs.get("gamma"))
        if mine != theirs:
            raise UserError(f"{info.path}: T, H, W, gamma = {mine} differ from {theirs} of {first.path}; "
                            "only files of one shape can be merged")
    source = "merged: " + ", ".join(f"{info.path.name} ({info.attrs.get('source', '?')})" for info in infos)
    keep_still = all(info.has_still for info in infos)
    with H5Writer(out, first.T, source=source, gamma=first.attrs.get("gamma", 1.0), overwrite=overwrite,
                  total=sum(info.N for info in infos), progress=progress) as writer:
        for info in infos:
            with h5py.File(info.path, "r") as f:
                for i in range(info.N):
                    try:
                        sharp, blurry = f["sharp"][i], f["blurry"][i]
                        still = f["still"][i] if keep_still else None
                    except (OSError, RuntimeError, KeyError) as e:  # a failed checksum, or damage
                        raise sample_error(info.path, i, e, info.checksummed) from None
                    writer.append(sharp, still, blurry)
    return sum(info.N for info in infos)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m data_tools.merge_hdf5", description=__doc__.split("\n\n")[0])
    p.add_argument("inputs", type=Path, nargs="+", help="b2v HDF5 files, in the order their samples go in")
    p.add_argument("--out", type=Path, required=True, help="the merged file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    n = merge(args.inputs, args.out, args.overwrite, progress=not args.quiet)
    print(f"wrote {n} samples from {len(args.inputs)} files to {args.out}")


if __name__ == "__main__":
    run_main(main)
