"""A progress bar on the terminal for the long command-line runs (KPIs, the assessment); silent when not a terminal."""

from __future__ import annotations

import sys
from typing import TextIO

# Characters of the bar itself.
WIDTH = 30


class Bar:
    """Called as progress(stage, done, total); redraws one line of stderr when it is a terminal."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stderr
        self.shown = self.out.isatty()
        self._drawn = False

    def __call__(self, stage: str, done: int, total: int) -> None:
        """Show `stage` at done of total."""
        if not self.shown:
            return
        filled = WIDTH * done // total if total else WIDTH
        self.out.write(f"\r{stage:<28} [{'#' * filled}{'.' * (WIDTH - filled)}] {done}/{total} ")
        self.out.flush()
        self._drawn = True

    def close(self) -> None:
        """End the bar's line."""
        if self._drawn:
            self.out.write("\n")
            self.out.flush()
