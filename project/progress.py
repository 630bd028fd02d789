"""One progress line for the long jobs (the cache's fill, each epoch, the gates, tagging a catalog): done/total,
rate, time left, and the errors so far where a job counts them.

A line at most every `every_s` seconds and one when the stage ends, so a log of a two-hour run stays a page
long and a person glancing at the terminal always sees how far it is and how long is left.
"""

import logging
import time
from collections.abc import Callable


def duration(seconds: float) -> str:
    """'42 s', '3 min 05 s', '1 h 02 min': what a person reads at a glance."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class Progress:
    def __init__(
        self,
        log: logging.Logger,
        what: str,
        total: int,
        unit: str,
        every_s: float = 20.0,
        clock: Callable[[], float] = time.perf_counter,
    ):
        self.log, self.what, self.total, self.unit, self.every_s, self.clock = log, what, total, unit, every_s, clock
        self.done = self.errors = 0
        self.started = self.shown = clock()

    def advance(self, n: int = 1, errors: int = 0) -> None:
        self.done += n
        self.errors += errors
        now = self.clock()
        if now - self.shown >= self.every_s or self.done >= self.total:
            self.shown = now
            self.log.info("%s", self.line(now))

    def line(self, now: float) -> str:
        elapsed = now - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = f"{duration((self.total - self.done) / rate)} left" if rate else "time left not known yet"
        if self.done >= self.total:
            left = "done"
        counted = f", {self.errors:,} errors" if self.errors else ""
        return (
            f"{self.what}: {self.done:,}/{self.total:,} {self.unit} ({rate:.2f}/s, {duration(elapsed)} so far, {left})"
            + counted
        )
