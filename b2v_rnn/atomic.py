"""Writing files so that a reader never sees half of one."""
from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary name in `path`'s folder (same suffix, so format sniffing by suffix
    still works); when the block completes it is renamed to `path`, and if the block fails
    it is removed. `path` is therefore only ever absent, the old file, or the complete new one."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
