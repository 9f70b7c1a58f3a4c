"""Ctrl-C and SIGTERM during training: finish the step, save, say where, exit 130 / 143.

`saving_on_interrupt()` (used by the CLI around a training command) replaces the
SIGINT and SIGTERM handlers: the first signal only records itself, and the
training loop asks `requested()` after each step, writes a checkpoint and raises
`RunInterrupted`. A second signal ends the process at once (`os._exit`), since the
user has said twice that they do not want to wait; a write cut short that way
leaves a temporary file that the next run removes. Outside the context the
handlers are the ones that were there before, so library callers see Python's
usual KeyboardInterrupt.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}
_received = []


class RunInterrupted(Exception):
    """Training stopped at a signal after finishing a step. `checkpoint`: the folder saved
    (None when nothing could be saved, e.g. during the SFT warm-up); `exit_code`: 130 / 143."""

    def __init__(self, signum, step, checkpoint=None, phase="DPO"):
        self.signum, self.step, self.checkpoint, self.phase = signum, step, checkpoint, phase
        self.exit_code = EXIT_CODES.get(signum, 128 + int(signum))
        name = signal.Signals(signum).name
        if checkpoint:
            text = f"interrupted by {name} after {phase} step {step}: saved {checkpoint}"
        else:
            text = f"interrupted by {name} after {phase} step {step}: nothing saved ({phase} is not checkpointed)"
        super().__init__(text)


def requested():
    """The first signal received inside `saving_on_interrupt`, or None."""
    return _received[0] if _received else None


def _handler(signum, frame):
    if _received:
        print(f"\n{signal.Signals(signum).name} again: stopping at once", file=sys.stderr, flush=True)
        os._exit(EXIT_CODES.get(signum, 128 + signum))
    _received.append(signum)
    print(f"\n{signal.Signals(signum).name}: finishing the current step, then saving a checkpoint "
          "(send it again to stop at once)", file=sys.stderr, flush=True)


@contextlib.contextmanager
def saving_on_interrupt():
    """Within: SIGINT / SIGTERM are recorded for the training loop (see the module docstring)."""
    if threading.current_thread() is not threading.main_thread():  # signal handlers live in the main thread
        yield
        return
    previous = {sig: signal.signal(sig, _handler) for sig in EXIT_CODES}
    _received.clear()
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _received.clear()
