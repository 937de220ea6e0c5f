"""Progress reporting for long stages: one line per stage, a bar on a terminal."""

import sys
import time


class ProgressBar:
    """Callable ``bar(fraction)`` that draws ``[label] what  ####----  42%``.

    On a terminal the line is redrawn in place; otherwise (logs, CI) a line
    is printed at each quarter, so logs stay short.

    Parameters
    ----------
    label : str
        Stage name.
    what : str
        What the stage is doing, in a few words.
    stream : file, optional
        Defaults to stderr.
    """

    width = 24

    def __init__(self, label, what, stream=None):
        self.label, self.what = label, what
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.start = time.monotonic()
        self._last_quarter = -1
        self._last_draw = 0.0

    def __call__(self, fraction):
        fraction = min(max(float(fraction), 0.0), 1.0)
        if self.tty:
            now = time.monotonic()
            if fraction < 1.0 and now - self._last_draw < 0.1:
                return
            self._last_draw = now
            filled = int(round(fraction * self.width))
            bar = "#" * filled + "-" * (self.width - filled)
            self.stream.write(f"\r[{self.label}] {self.what}  {bar} {fraction:4.0%}")
            self.stream.flush()
        else:
            quarter = int(fraction * 4)
            if quarter > self._last_quarter:
                self._last_quarter = quarter
                self.stream.write(f"[{self.label}] {self.what} {quarter * 25}%\n")
                self.stream.flush()

    def done(self, note=""):
        """Finish the line with the elapsed time."""
        elapsed = time.monotonic() - self.start
        if self.tty:
            self.stream.write("\r\033[K")
        self.stream.write(f"[{self.label}] {self.what}: done in {elapsed:.1f} s{note}\n")
        self.stream.flush()

    def sub(self, lo, hi):
        """A progress callable mapping [0, 1] onto [lo, hi] of this bar."""
        return lambda f: self(lo + (hi - lo) * min(max(f, 0.0), 1.0))
