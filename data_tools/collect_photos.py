"""Gather the photographs under some folders into one folder of textures for `--photos`.

    apt-get download gnome-backgrounds mate-backgrounds ukui-wallpapers ...   # .deb files
    for d in *.deb; do dpkg-deb -x "$d" "pkgs/${d%%_*}"; done
    python -m data_tools.collect_photos pkgs/* --out photos --max-side 1024
    python -m data_tools.collect_photos pkgs/* --out train_photos \
        --manifest b2v_rnn/weights/photos_manifest.tsv --split train      # exactly the listed files

Every JPEG, PNG and WebP under the sources (recursively) is read; a wallpaper shipped at
several resolutions (a `contents/images*/WxH.ext` folder, as KDE packages lay them out)
counts once, at its largest; images with a short side under --min-side, and preview
screenshots, are skipped. Each is written as `<source>__<name>.jpg` (quality 95) with its
longer side shrunk to --max-side, so the folder is small and quick to decode, and the name
says where the photograph came from (its licence is in that package's copyright file).
With --manifest, exactly the rows of that split are written instead (a tab-separated file:
split, name, Debian package, path inside the package; the sources are then the extracted
packages, each a folder named after its package).
"""
from __future__ import annotations

import argparse
import collections
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from b2v_rnn.atomic import atomic_path
from b2v_rnn.cli import run_main
from b2v_rnn.data.photos import PHOTO_SUFFIXES
from b2v_rnn.errors import UserError
from b2v_rnn.outputs import check_writable


def candidates(source: Path) -> list[Path]:
    """The photographs under `source`, one per wallpaper (its largest file)."""
    groups = collections.defaultdict(list)
    for path in sorted(source.rglob("*")):
        if path.suffix.lower() not in PHOTO_SUFFIXES or not path.is_file() or "screenshot" in path.name:
            continue
        key = path.parent.parent if path.parent.name.startswith("images") else path
        groups[key].append(path)
    return [max(paths, key=lambda p: p.stat().st_size) for _, paths in sorted(groups.items())]


def output_name(source: Path, path: Path) -> str:
    """`<source>__<name>.jpg`: a KDE wallpaper is named by its folder and its file."""
    if path.parent.name.startswith("images"):
        return f"{source.name}__{path.parent.parent.parent.name}_{path.stem}.jpg".replace(" ", "_")
    return f"{source.name}__{path.stem}.jpg".replace(" ", "_")


def from_manifest(sources: list[Path], manifest: Path, split: str) -> list[tuple[Path, Path, str]]:
    """(source, path, name) of the manifest's rows of `split`."""
    by_name = {s.name: s for s in sources}
    todo = []
    try:
        rows = [line.split("\t") for line in manifest.read_text().splitlines()[1:] if line.strip()]
    except OSError as e:
        raise UserError(f"--manifest {manifest}: cannot be read ({e.strerror})") from None
    for number, row in enumerate(rows, start=2):
        if len(row) != 4:
            raise UserError(f"--manifest {manifest}, line {number}: expected 4 tab-separated fields, got {len(row)}")
        row_split, name, package, relative = row
        if row_split != split:
            continue
        if package not in by_name:
            raise UserError(f"--manifest {manifest}, line {number}: package {package!r} is not among the sources")
        path = by_name[package] / relative
        if not path.is_file():
            raise UserError(f"--manifest {manifest}, line {number}: {path} does not exist")
        todo.append((by_name[package], path, name))
    if not todo:
        raise UserError(f"--manifest {manifest}: no row of split {split!r}")
    return todo


def collect(todo: list[tuple[Path, Path, str]], out: Path, max_side: int, min_side: int) -> int:
    """Writes each (source, path, name) of `todo` as out/name; returns how many."""
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    for _, path, name in tqdm(todo, desc="photos", unit="image"):
        try:
            with Image.open(path) as img:
                img = img.convert("RGB")
        except (OSError, UnidentifiedImageError) as e:
            tqdm.write(f"note: skipped {path} ({e})")
            continue
        if min(img.size) < min_side:
            continue
        scale = max_side / max(img.size)
        if scale < 1:
            img = img.resize((round(img.width * scale), round(img.height * scale)), Image.LANCZOS)
        with atomic_path(out / name) as tmp:
            img.save(tmp, format="JPEG", quality=95)
        written += 1
    return written


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m data_tools.collect_photos", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sources", nargs="+", type=Path, help="folders to search for photographs")
    p.add_argument("--out", type=Path, required=True, help="folder to write the photographs to")
    p.add_argument("--max-side", type=int, default=1024, help="shrink longer sides to this many pixels")
    p.add_argument("--min-side", type=int, default=256, help="skip images whose short side is smaller")
    p.add_argument("--manifest", type=Path, help="write exactly the rows of --split of this manifest")
    p.add_argument("--split", default="train", help="the manifest's split to write")
    args = p.parse_args(argv)
    if args.max_side < 16 or args.min_side < 1:
        raise UserError(f"--max-side {args.max_side} must be >= 16 and --min-side {args.min_side} >= 1")
    for source in args.sources:
        if not source.is_dir():
            raise UserError(f"{source}: not a folder")
    if args.out.resolve() in [s.resolve() for s in args.sources]:
        raise UserError(f"--out {args.out} is one of the source folders")
    check_writable(args.out, "--out")  # before reading any photograph
    if args.manifest is not None:
        todo = from_manifest(args.sources, args.manifest, args.split)
    else:
        todo = [(source, path, output_name(source, path)) for source in args.sources for path in candidates(source)]
    n = collect(todo, args.out, args.max_side, args.min_side)
    print(f"wrote {n} photographs to {args.out}")


if __name__ == "__main__":
    run_main(main)
