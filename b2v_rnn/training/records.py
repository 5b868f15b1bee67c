"""What a run writes as it goes: CSV logs (resumable) and TensorBoard when installed."""
from __future__ import annotations

import csv
from pathlib import Path

from ..atomic import atomic_path


class CsvLog:
    """Append rows to a CSV; on resume, rows past the checkpoint's step are dropped first
    (they belong to the part of the interrupted run that is being redone)."""

    def __init__(self, path: Path, resume_step: int | None):
        self.path, self.fields = path, None
        if resume_step is not None and path.is_file():
            with open(path, newline="") as f:
                rows = list(csv.DictReader(f))
            kept = [r for r in rows if int(r["step"]) <= resume_step]
            if rows:
                self.fields = list(rows[0].keys())
                with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
                    w = csv.DictWriter(f, self.fields)
                    w.writeheader()
                    w.writerows(kept)

    def write(self, row: dict) -> None:
        if self.fields is None:
            self.fields = list(row.keys())
            with open(self.path, "w", newline="") as f:
                csv.DictWriter(f, self.fields).writeheader()
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.fields, extrasaction="ignore").writerow(row)


def tensorboard_writer(out: Path):
    """A TensorBoard SummaryWriter if the tensorboard package is installed, else None."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(out / "tensorboard"))
