"""Writing files so that a reader never sees half of one, and the one name their temporaries
have.

Every write-then-rename in the package goes through `temporary_name`:
``.NAME.PID.xxxxxxxx.tmp.SUFFIX`` beside the target ``NAME`` (``SUFFIX`` its own, so that
writers choosing a format by suffix still work). The name says which file it becomes and which
process writes it, so cleaning up after a killed run (`b2v_rnn.outputs`) can tell a dead
writer's leftovers from a live writer's file without any lock.
"""
from __future__ import annotations

import os
import re
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp(\.[A-Za-z0-9]+)?$")
"""The names `temporary_name` makes: group ``name`` is the target's, ``pid`` the writer's."""


def temporary_name(path: str | os.PathLike) -> Path:
    """A fresh temporary name for writing `path` in its own folder (so that the final rename
    stays on one file system, hence atomic); unique, so concurrent writers never share one."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a `temporary_name` of `path`; when the block completes it is renamed to `path`,
    and if the block fails it is removed. `path` is therefore only ever absent, the old file,
    or the complete new one."""
    path = Path(path)
    tmp = temporary_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
