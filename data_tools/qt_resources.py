"""The files inside Qt resource bundles (``.rcc``), for `collect_photos`.

Some Debian packages ship their photographs inside Qt's binary resource format rather than as
files (GCompris: photographs of animals and monuments, content the wallpaper packages barely
have). `collect_photos` treats a bundle as a folder: the member ``a/b.jpg`` of ``x.rcc`` is the
path ``x.rcc/a/b.jpg``, in its search and in a manifest's rows.

The format (Qt's ``rcc``, versions 1-3): a 20-byte header, "qres" and four big-endian uint32 (format
version, offsets of the tree, the data and the names; version 3 adds a uint32 of flags); the tree
is an array of nodes, 14 bytes each (22 from version 2, which adds a modification time): name
offset (uint32), flags (uint16: 1 zlib-compressed, 2 directory, 4 zstd-compressed), then for a
directory its child count and first child's index (uint32 each), for a file its locale (2 x uint16)
and data offset (uint32). A name is a uint16 length, a uint32 hash and UTF-16BE characters; a data
entry a uint32 size and its bytes, a zlib one starting with the uncompressed size (qCompress).
"""
from __future__ import annotations

import functools
import struct
import zlib
from pathlib import Path, PurePosixPath

from b2v_rnn.errors import UserError

MAGIC = b"qres"
COMPRESSED, DIRECTORY, ZSTD = 1, 2, 4


class BadBundle(UserError):
    """A file that is not a Qt resource bundle this reader understands."""


@functools.lru_cache(maxsize=4)  # a bundle's members are read one after another
def read_bundle(path: Path) -> dict[str, bytes]:
    """{path inside the bundle: the file's bytes} of every file in the ``.rcc`` at `path`."""
    blob = path.read_bytes()
    if len(blob) < 20 or blob[:4] != MAGIC:
        raise BadBundle(f"{path}: not a Qt resource bundle (no 'qres' header)")
    version, tree, data, names = struct.unpack_from(">IIII", blob, 4)
    if version not in (1, 2, 3):
        raise BadBundle(f"{path}: Qt resource format version {version} (this reader knows 1-3)")
    node_size = 14 if version == 1 else 22

    def name(offset: int) -> str:
        length, = struct.unpack_from(">H", blob, names + offset)
        start = names + offset + 6  # past the length and the hash
        return blob[start:start + 2 * length].decode("utf-16-be")

    def content(offset: int, flags: int, where: str) -> bytes:
        size, = struct.unpack_from(">I", blob, data + offset)
        raw = blob[data + offset + 4:data + offset + 4 + size]
        if flags & ZSTD:
            raise BadBundle(f"{path}: {where} is zstd-compressed, which this reader does not decode")
        return zlib.decompress(raw[4:]) if flags & COMPRESSED else raw

    files: dict[str, bytes] = {}
    pending = [(0, PurePosixPath())]  # node 0 is the root directory
    try:
        while pending:
            index, folder = pending.pop()
            base = tree + index * node_size
            name_offset, flags = struct.unpack_from(">IH", blob, base)
            here = folder / name(name_offset) if index else folder
            if flags & DIRECTORY:
                count, first = struct.unpack_from(">II", blob, base + 6)
                pending += [(child, here) for child in range(first, first + count)]
            else:
                offset, = struct.unpack_from(">I", blob, base + 10)
                files[str(here)] = content(offset, flags, str(here))
    except (struct.error, UnicodeDecodeError, zlib.error) as e:
        raise BadBundle(f"{path}: damaged Qt resource bundle ({e})") from None
    return files


def bundle_of(path: Path) -> tuple[Path, str] | None:
    """(bundle, member) when `path` goes through a ``.rcc`` file (``x.rcc/a/b.jpg``), else None."""
    for parent in path.parents:
        if parent.suffix == ".rcc" and parent.is_file():
            return parent, path.relative_to(parent).as_posix()
    return None
