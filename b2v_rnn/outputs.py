"""Where the commands write: one discipline for predict, evaluate (and train).

A command that writes into an output folder does it in four steps:

1. `check_writable(folder)` before any work: one clear line (`UserError`) for a folder
   that cannot be created or written, or a disk without the room the run needs, instead
   of a `PermissionError` traceback after minutes of computing.
2. `locked_output(folder)`: creates the folder and takes an exclusive lock on it, so two
   runs on the same folder cannot mix their files; the second gets "in use by PID N" at
   once instead of waiting or clobbering. With the lock held, temporaries that a killed
   earlier run left behind (`atomic.temporary_name`'s `.NAME.PID.xxxxxxxx.tmp*`, `.staging-*`
   folders from 3.) are removed: nobody else can be writing them.
3. `OutputFolder.stage()`: results are written into a private hidden folder inside the
   output folder and moved into place only when the block completes, so a reader sees the
   previous result or the complete new one, never a mix, and an interruption leaves no
   half result (the staging folder is deleted, or removed by the next run's 2.).
4. On leaving `locked_output` the lock is released, and a folder that this run created
   and left empty is removed again, so a failed start leaves nothing behind.

The lock (`exclusive_lock`, also the dataset cache's) is `fcntl.flock` on `folder/.b2v.lock`
(the holder's PID written inside, for the message). The kernel releases it when the holder
dies, SIGKILL included, so a lock is never stale. Without `fcntl` (Windows) there is no lock;
staging still keeps each result whole.
"""
from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from .atomic import TEMPORARY
from .errors import UserError

LOCK_NAME = ".b2v.lock"
STAGING_PREFIX = ".staging-"
WRITE_TEST_PREFIX = ".b2v-write-test-"
"""`check_writable`'s probe: a file that lives for an instant in the folder it tests."""


def internal_names() -> tuple[str, ...]:
    """Name prefixes of the files this module keeps in an output folder; a command that
    asks "is this folder empty?" should ignore entries starting with these (another
    process's write probe may be there at any moment)."""
    return (LOCK_NAME, STAGING_PREFIX, WRITE_TEST_PREFIX)


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(".")


def check_writable(folder: str | os.PathLike, option: str = "--out", need_bytes: int = 0,
                   remedy: str | None = None) -> None:
    """Raise UserError (one line naming `option` and the folder) unless `folder` exists
    as a writable folder or can be created, with at least `need_bytes` free on its disk.

    option: how the user gave the folder ("--out", or "B2V_DATA_DIR=" for a variable).
    remedy: the advice that ends the message (default: choose another `option`).
    Writability is tested by creating and removing a file, not with `os.access`, which
    says yes to root on a read-only mount and no on some network file systems that allow it.
    """
    folder = Path(folder)
    label = f"{option}{folder}" if option.endswith("=") else f"{option} {folder}"
    remedy = remedy or f"choose another {option.rstrip('=')}"
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{label}: exists and is not a folder; {remedy}")
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        raise UserError(f"{label}: {existing} is a file, so the folder cannot be created; {remedy}")
    try:
        fd, probe = tempfile.mkstemp(prefix=WRITE_TEST_PREFIX, dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UserError(f"{label}: cannot write in {existing} ({e.strerror or e}); {remedy}") from None
    if need_bytes > 0:
        free = shutil.disk_usage(existing).free
        if free < need_bytes:
            raise UserError(f"{label}: {free / 2**20:.0f} MiB free on its disk, this run needs "
                              f"about {need_bytes / 2**20:.0f} MiB; {remedy}")


def _same_or_inside(path: Path, output: Path) -> bool:
    """Whether `path` is `output` (a symlink or hard link to it included) or lies inside it."""
    path, output = Path(path), Path(output)
    if output.resolve() == path.resolve() or output.resolve() in path.resolve().parents:
        return True
    try:
        return os.path.samefile(path, output)
    except OSError:  # one of them does not exist (yet)
        return False


def refuse_inputs_among_outputs(outputs, inputs, option: str = "--out") -> None:
    """UserError when writing `outputs` (files, or folders replaced whole) would replace or
    delete one of `inputs`: an input that is an output, or lies inside an output folder.
    Checked before any work, so that `--overwrite` never turns a typo into lost data."""
    for output in outputs:
        for given in inputs:
            if given is None or not _same_or_inside(Path(given), Path(output)):
                continue
            if Path(output).resolve() in Path(given).resolve().parents:
                raise UserError(f"{option}: writing {output} would replace the folder that holds the input "
                                  f"{given}; choose another {option}")
            raise UserError(f"{option} {output}: is the input {given}; writing it would destroy that input, "
                              f"choose another {option}")


def remove_stale_temporaries(folder: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Delete the temporaries that killed runs left in `folder` and its direct sub-folders:
    staging folders and write-then-rename files. With `name`, only the temporaries of that
    one target file (`.NAME.*.tmp*`) in `folder` itself, for a folder that other writers
    share (the dataset cache). Call it only while holding the lock that makes the caller the
    folder's (or the target's) only writer. Returns what was removed."""
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    if name is not None:
        candidates = [p for p in folder.glob(f".{name}.*") if (writer := _writer(p)) is not None and writer[0] == name]
    else:
        candidates = [p for p in folder.iterdir() if p.name.startswith(STAGING_PREFIX) and p.is_dir()]
        for sub in [folder, *(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))]:
            candidates += [p for p in sub.iterdir() if TEMPORARY.match(p.name) and p.is_file()]
    for path in candidates:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _writer(temporary: Path) -> tuple[str, int] | None:
    """(target name, writer's PID) of a `temporary_name`, None for any other name."""
    match = TEMPORARY.match(temporary.name)
    return (match["name"], int(match["pid"])) if match else None


def remove_orphaned_writes(path: str | os.PathLike) -> list[Path]:
    """Delete the temporaries left for `path` (`temporary_name`s beside it) whose writing
    process no longer runs: safe without a lock, since a live writer's file is never touched.
    For outputs that are single files (the converters' .h5)."""
    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    for candidate in path.parent.glob(f".{path.name}.*"):
        writer = _writer(candidate)
        if writer is not None and writer[0] == path.name and not _alive(writer[1]) and candidate.is_file():
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


class OutputFolder:
    """An output folder whose lock this process holds (see `locked_output`)."""

    def __init__(self, path: Path):
        self.path = path

    @contextmanager
    def stage(self) -> Iterator[Path]:
        """Yields an empty private folder inside the output folder; write the results there
        under their final names (files or folders). When the block completes, each entry is
        moved into the output folder, replacing what has its name (a replaced folder is
        swapped out whole, so no file of the old one survives beside the new ones); if the
        block fails, the staging folder is deleted and the output folder is unchanged."""
        staging = self.path / f"{STAGING_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        staging.mkdir()
        try:
            yield staging
            for entry in sorted(staging.iterdir()):
                _move_into_place(entry, self.path / entry.name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _move_into_place(source: Path, target: Path) -> None:
    if source.is_dir() and target.is_dir():
        # os.replace cannot replace a non-empty folder: swap the old one out first.
        old = target.with_name(f"{STAGING_PREFIX}old-{uuid.uuid4().hex[:8]}")
        os.replace(target, old)
        os.replace(source, target)
        shutil.rmtree(old, ignore_errors=True)
    elif target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
        os.replace(source, target)
    else:
        os.replace(source, target)


def _holder(lock_path: Path) -> str:
    try:
        pid = lock_path.read_text().split()[0]
    except (OSError, IndexError):
        return "another process"
    return f"PID {pid}"


@contextmanager
def locked_output(folder: str | os.PathLike, option: str = "--out") -> Iterator[OutputFolder]:
    """Create `folder` if needed, lock it for this process, remove stale temporaries, and
    yield an `OutputFolder`. UserError (naming `option` and the PID of the holder) if
    another run holds the lock. On exit the lock is released and, if this call created the
    folder and nothing was written, the folder is removed."""
    folder = Path(folder)
    check_writable(folder, option)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    busy = (lambda holder: f"{option} {folder}: in use by {holder} (another run is writing there); wait for it "
            f"to finish or choose another {option}")
    try:
        with exclusive_lock(folder / LOCK_NAME, busy=busy) as locked:
            if locked:  # unlocked (no fcntl), another run's temporaries may be live: staging alone keeps results whole
                remove_stale_temporaries(folder)
            yield OutputFolder(folder)
    finally:
        _remove_if_empty(folder, created)


@contextmanager
def exclusive_lock(lock_path: Path, busy: Callable[[str], str] | None = None) -> Iterator[bool]:
    """Hold an exclusive `fcntl.flock` on `lock_path` (created, the holder's PID written in
    it, removed on release); yields whether it is held. `busy(holder)`: the message of the
    UserError raised at once when another process holds it ("PID N"); None waits for the
    holder instead. Without `fcntl` (Windows) nothing is locked (yields False)."""
    try:
        import fcntl
    except ImportError:
        yield False
        return
    handle = _acquire(lock_path, fcntl, busy)
    try:
        yield True
    finally:
        lock_path.unlink(missing_ok=True)
        handle.close()  # releases the flock


def _acquire(lock_path: Path, fcntl, busy: Callable[[str], str] | None):
    """An open handle of lock_path holding an exclusive flock, with our PID written in it."""
    while True:
        handle = open(lock_path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (fcntl.LOCK_NB if busy is not None else 0))
        except OSError as e:
            handle.close()
            if e.errno not in (errno.EAGAIN, errno.EACCES) or busy is None:
                raise
            raise UserError(busy(_holder(lock_path))) from None
        # The holder we waited behind may have unlinked the file before we locked it: a lock
        # on a deleted file protects nothing, so start again on the current file.
        try:
            same = os.path.samestat(os.fstat(handle.fileno()), os.stat(lock_path))
        except FileNotFoundError:
            same = False
        if same:
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            return handle
        handle.close()


def _remove_if_empty(folder: Path, created: bool) -> None:
    if created:
        try:
            folder.rmdir()
        except OSError:  # not empty (results were written) or already gone
            pass
