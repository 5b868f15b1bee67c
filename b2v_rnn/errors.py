"""The one error type for mistakes a user can fix, the one check of T, and of a gate option.

`UserError` is bad input: a missing or unreadable file, a damaged checkpoint or sample, a value
out of range, an output that would be overwritten or is in use. It is raised where the bad
value enters, with the file or option and the value in its message, so nothing above it needs
to catch and re-word it; the commands print it as one ``error: ...`` line and exit with status
2 (`b2v_rnn.cli.run_main`). It is a ValueError, so library callers may catch either. Any other
exception is a bug and keeps its traceback.
"""
from __future__ import annotations

import math
import numbers


class UserError(ValueError):
    """Bad input a user can fix; the message names the file or option and the value."""


def check_T(T, option: str | None = None) -> int:
    """T as an int if it is a valid number of frames, an odd integer >= 3 (a middle frame and
    symmetric pairs around it), else UserError. `option`: where T came from (e.g. ``--T``)."""
    if isinstance(T, bool) or not isinstance(T, numbers.Integral) or T < 3 or T % 2 == 0:
        where = f"{option} {T}" if option else f"T={T!r}"
        raise UserError(f"{where}: the number of frames must be an odd integer >= 3")
    return int(T)


def check_gate(tau: float | None, option: str) -> None:
    """UserError unless a gate's τ given as `option` (``--middle-gate``, ``--still-gate``,
    ``--frame-gate``, ``--sharp-gate``) is absent (None) or a finite number >= 0 (0 = off)."""
    if tau is not None and not (math.isfinite(tau) and tau >= 0):
        raise UserError(f"{option} {tau}: must be a finite number >= 0 (0 = off)")
