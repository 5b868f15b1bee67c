"""Gather the photographs under some folders into one folder of textures for `--photos`.

    apt-get download gnome-backgrounds mate-backgrounds ukui-wallpapers ...   # .deb files
    for d in *.deb; do dpkg-deb -x "$d" "pkgs/${d%%_*}"; done
    python -m data_tools.collect_photos pkgs/* --out photos --max-side 1024
    python -m data_tools.collect_photos pkgs/* --out train_photos \
        --manifest b2v_rnn/weights/photos_manifest.tsv --split train      # exactly the listed files

Every JPEG, PNG and WebP under the sources (recursively) is read; a wallpaper shipped at
several resolutions (a `contents/images*/WxH.ext` folder, as KDE packages lay them out)
counts once, at its largest; images with a short side under --min-side, cut-outs (more than
1 % transparent; a manifest's rows are kept) and preview screenshots are skipped. A Qt resource
bundle (``.rcc``, as GCompris ships its photographs) is searched like a folder: its member
``a/b.jpg`` is the path ``x.rcc/a/b.jpg`` (`data_tools.qt_resources`). Each is written as
`<source>__<name>.jpg` (quality 95) with its longer side shrunk to --max-side, so the folder is
small and quick to decode, and the name says where the photograph came from (its licence is in
that package's copyright file).
With --manifest, exactly the rows of that split are written instead (a tab-separated file:
split, name, Debian package, path inside the package; the sources are then the extracted
packages, each a folder named after its package).
"""
from __future__ import annotations

import argparse
import collections
import io
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from b2v_rnn.atomic import atomic_path
from b2v_rnn.cli import run_main
from b2v_rnn.data.photos import PHOTO_SUFFIXES
from b2v_rnn.errors import UserError
from b2v_rnn.outputs import check_writable
from data_tools.qt_resources import BadBundle, bundle_of, read_bundle


def bundle_members(source: Path) -> list[Path]:
    """The images inside the Qt resource bundles under `source`, as paths through the bundle
    (`data_tools.qt_resources`); a bundle that cannot be read is skipped with a note."""
    members = []
    for bundle in sorted(source.rglob("*.rcc")):
        try:
            names = read_bundle(bundle)
        except (OSError, BadBundle) as e:
            tqdm.write(f"note: skipped {bundle} ({e})")
            continue
        members += [bundle / name for name in sorted(names) if Path(name).suffix.lower() in PHOTO_SUFFIXES]
    return members


def candidates(source: Path) -> list[Path]:
    """The photographs under `source`, one per wallpaper (its largest file), then those inside its
    Qt resource bundles."""
    groups = collections.defaultdict(list)
    for path in sorted(source.rglob("*")):
        if path.suffix.lower() not in PHOTO_SUFFIXES or not path.is_file() or "screenshot" in path.name:
            continue
        key = path.parent.parent if path.parent.name.startswith("images") else path
        groups[key].append(path)
    files = [max(paths, key=lambda p: p.stat().st_size) for _, paths in sorted(groups.items())]
    return files + bundle_members(source)


def output_name(source: Path, path: Path) -> str:
    """`<source>__<name>.jpg`: a KDE wallpaper is named by its folder and its file, a bundle's
    member by its bundle and its file."""
    inside = bundle_of(path)
    if inside is not None:
        return f"{source.name}__{inside[0].stem}_{path.stem}.jpg".replace(" ", "_")
    if path.parent.name.startswith("images"):
        return f"{source.name}__{path.parent.parent.parent.name}_{path.stem}.jpg".replace(" ", "_")
    return f"{source.name}__{path.stem}.jpg".replace(" ", "_")


def open_photo(path: Path) -> Image.Image:
    """The image at `path`, a file or a member of a Qt resource bundle (``x.rcc/a/b.jpg``)."""
    inside = bundle_of(path)
    if inside is None:
        return Image.open(path)
    bundle, member = inside
    try:
        return Image.open(io.BytesIO(read_bundle(bundle)[member]))
    except KeyError:
        raise FileNotFoundError(f"{bundle} holds no {member}") from None


def photo_exists(path: Path) -> bool:
    """Whether `path`, a file or a bundle's member, is there (a manifest row's check)."""
    inside = bundle_of(path)
    return path.is_file() if inside is None else inside[1] in read_bundle(inside[0])


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
        if not photo_exists(path):
            raise UserError(f"--manifest {manifest}, line {number}: {path} does not exist")
        todo.append((by_name[package], path, name))
    if not todo:
        raise UserError(f"--manifest {manifest}: no row of split {split!r}")
    return todo


CUT_OUT_SHARE = 0.01
"""Share of transparent pixels above which an image is a cut-out (an animal on nothing), not a
photograph: flattened, its transparent part would be a flat colour with a hard outline."""


def transparent_share(img: Image.Image) -> float:
    """The share of `img`'s pixels that are not fully opaque (0 for an image without alpha)."""
    if img.mode not in ("RGBA", "LA", "PA") and "transparency" not in img.info:
        return 0.0
    with warnings.catch_warnings():  # Pillow asks that a palette image with transparency be converted: it is
        warnings.simplefilter("ignore")
        alpha = img.convert("RGBA").getchannel("A")
    return 1.0 - alpha.histogram()[255] / (img.width * img.height)


def collect(todo: list[tuple[Path, Path, str]], out: Path, max_side: int, min_side: int,
            skip_cut_outs: bool = True) -> int:
    """Writes each (source, path, name) of `todo` as out/name; returns how many. A manifest's rows
    are written whatever they are (``skip_cut_outs=False``): they are the record of what some
    weights were trained on."""
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    for _, path, name in tqdm(todo, desc="photos", unit="image"):
        try:
            with open_photo(path) as img:
                cut_out = transparent_share(img) > CUT_OUT_SHARE
                img = img.convert("RGB")
        except (OSError, UnidentifiedImageError) as e:
            tqdm.write(f"note: skipped {path} ({e})")
            continue
        if min(img.size) < min_side or (cut_out and skip_cut_outs):
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
    n = collect(todo, args.out, args.max_side, args.min_side, skip_cut_outs=args.manifest is None)
    print(f"wrote {n} photographs to {args.out}")


if __name__ == "__main__":
    run_main(main)
