"""A dependency-free progress bar for long loops, drawn on stderr when it is a terminal."""

from __future__ import annotations

import sys
import time


class Progress:
    """`with Progress(total, "train") as bar: ... bar.update(loss=0.5)`.

    Draws `label [#####.....] 12/40 3.1 it/s loss 0.5` in place on a terminal and
    stays silent otherwise (logs and CI get the per-step lines instead). Call
    `clear()` before printing a line of your own while the bar is up.
    """

    def __init__(self, total: int, label: str = "", stream=None, enabled: bool | None = None, width: int = 24):
        self.total, self.label, self.width = max(int(total), 0), label, width
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.done, self.start, self.fields = 0, time.perf_counter(), {}
        self.drawn = False  # whether the bar is on the current line

    def update(self, n: int = 1, **fields) -> None:
        self.done += n
        self.fields.update(fields)
        if self.enabled:
            self._draw()

    def _draw(self):
        filled = int(self.width * self.done / self.total) if self.total else self.width
        rate = self.done / max(time.perf_counter() - self.start, 1e-9)
        extra = " ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in self.fields.items())
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {self.done}/{self.total} {rate:.1f} it/s {extra}\033[K")
        self.stream.flush()
        self.drawn = True

    def clear(self) -> None:
        """Erase the bar from its line, so a line printed next starts at column 0; the
        next `update` draws it again below that line."""
        if self.drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.drawn = False

    def close(self):
        """Leave the finished bar on screen and move to the next line."""
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
