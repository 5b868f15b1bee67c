"""Stopping a training run cleanly: SIGINT/SIGTERM finish the step, then the loop saves."""
from __future__ import annotations

import signal
import threading

from tqdm import tqdm


class StopSignal:
    """Context manager: once :meth:`defer` is called (when the training loop starts), SIGINT
    or SIGTERM sets ``received`` (the signal's number) instead of killing the process
    mid-step, so the loop can save a consistent checkpoint and stop; a second signal raises
    KeyboardInterrupt at once. Before that, during the set-up (first-use data generation can
    take minutes), there is nothing to save and a signal raises KeyboardInterrupt at once.
    Previous handlers are restored on exit. Signal handlers can only be set from the main
    thread; elsewhere this does nothing."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: int | None = None
        self.deferring = False
        self._previous: dict = {}

    def defer(self) -> None:
        """From now on a first signal only asks the loop to stop after its step."""
        self.deferring = True

    def _handle(self, signum, frame) -> None:
        if self.received is not None or not self.deferring:
            raise KeyboardInterrupt
        self.received = signum
        tqdm.write(f"{signal.Signals(signum).name}: stopping after this step (again to stop at once)")

    def __enter__(self) -> "StopSignal":
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def leave_stop_signals_to_main(worker_id: int) -> None:
    """DataLoader workers ignore SIGINT/SIGTERM: a Ctrl-C or a scheduler signals the whole
    process group, and a worker killed by it would take the step in flight down with it
    ("DataLoader worker exited unexpectedly") before :class:`StopSignal` could save."""
    for sig in StopSignal.SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
