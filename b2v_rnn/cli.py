"""What the command-line entry points (train, predict, evaluate) share: expected errors
become one line on stderr and exit status 2, devices are parsed in one place.

An *expected* error is bad input from the user (a missing or unreadable file, a value out
of range, outputs that would be overwritten). Each is raised as `UserError` where the bad
value enters, with the file and the value in the message. Anything else is a bug and
keeps its traceback.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from typing import Callable, Sequence

import torch

from .errors import UserError

EXIT_USAGE = 2
"""Exit status of an expected error, as argparse uses for a bad argument."""


def note(message: str) -> None:
    """One "note: ..." line on stderr, through tqdm so that it does not break a progress bar."""
    from tqdm import tqdm

    tqdm.write(f"note: {message}", file=sys.stderr)


def one_line_warning(message, category, filename, lineno, line=None) -> str:
    """`warnings.formatwarning` for the commands: "warning: MESSAGE", without the file, line
    number and source line Python adds, which mean nothing to someone running a command."""
    return f"warning: {message}\n"


def run_main(main: Callable[[Sequence[str] | None], object], argv: Sequence[str] | None = None) -> None:
    """Run `main(argv)`, the one runner of every command; print expected errors (`UserError`)
    as `error: ...` and exit with status 2, warnings as one `warning: ...` line each, and
    Ctrl-C as the line "interrupted" (exit status 130; every command writes through temporary
    names or staging folders, so an interruption leaves no half output)."""
    warnings.formatwarning = one_line_warning
    try:
        main(argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows "(default: X)" only where there is a default worth showing."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


PRECISIONS = ("auto", "fp32", "bf16")
"""--precision of the inference commands (resolved by :func:`b2v_rnn.inference.resolve_precision`)."""


def add_device_arguments(p: argparse.ArgumentParser, precision: bool = False) -> None:
    """--device, --amp and --threads, spelled the same in every command; with ``precision``
    also --precision (the inference commands, see :mod:`b2v_rnn.inference`)."""
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--amp", action="store_true",
                   help="bfloat16 autocast (CUDA; on a CPU it can pay where oneDNN has AMX or AVX-512-BF16, "
                        "not on every such CPU)"
                        + ("; the same as --precision bf16" if precision else ""))
    if precision:
        p.add_argument("--precision", choices=PRECISIONS, default="auto",
                       help="auto: on a CPU with native bf16 (AVX-512-BF16 or AMX), bf16 where a short probe of "
                            "the model's layers measures it faster than fp32 (once per machine, cached; "
                            "$B2V_PRECISION_CACHE=off measures every run), fp32 elsewhere")
    p.add_argument("--threads", type=int, help="CPU threads for PyTorch (default: one per core)")


def typed(argv: Sequence[str], option: str) -> bool:
    """Whether `option` was typed in `argv` (as `--opt value` or `--opt=value`)."""
    return any(a == option or a.startswith(option + "=") for a in argv)


def check_amp_precision(argv: Sequence[str], amp: bool, precision: str) -> None:
    """--amp means bf16: with a typed --precision other than bf16 the two disagree, and one of
    them would be ignored without a word."""
    if amp and typed(argv, "--precision") and precision != "bf16":
        raise UserError(f"--amp (bf16) contradicts --precision {precision}; pass only one of them")


def resolve_device(name: str) -> torch.device:
    """'auto' (CUDA if available, else CPU), 'cpu', 'cuda' or 'cuda:N' -> torch.device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {name}: CUDA is not available in this PyTorch build or machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) visible")
    elif device.type != "cpu":
        raise UserError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N")
    return device


def autocast_for(device: torch.device, enabled: bool):
    """The context of --amp: bfloat16 autocast on the device's type (CUDA or CPU), else a no-op.

    bf16 keeps fp32's exponent range, so no gradient scaler is needed. On CPU the convolutions
    run through oneDNN in bf16 (AMX or AVX-512-BF16 where the CPU has them).
    """
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def set_threads(n: int | None) -> None:
    """torch.set_num_threads(n) for --threads (None: PyTorch's default, one per core).

    On a machine shared with other busy processes, OpenMP threads that spin while waiting
    can make every op many times slower; fewer threads, or OMP_WAIT_POLICY=PASSIVE in the
    environment, avoids it.
    """
    if n is None:
        return
    if n < 1:
        raise UserError(f"--threads {n}: must be >= 1")
    torch.set_num_threads(n)
