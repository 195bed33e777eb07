"""Progress of a refresh as the person running it sees it.

The Dagster steps run in the CLI's process (``execute_in_process``); what they report here reaches
the terminal's status line (or, when the output is a log, one timestamped line each) through the
callback the refresh installs with ``reporting``. Outside a refresh (the Dagster UI, the schedule) a
report goes nowhere but the step's own Dagster log.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

_sink: Callable[[str], None] | None = None


def rate(n: int, seconds: float, unit: str = "rows") -> str:
    """``12,345 rows/s`` (``– rows/s`` before any time has passed): how progress lines give a speed."""
    return f"{n / seconds:,.0f} {unit}/s" if seconds > 0 else f"– {unit}/s"


def report(message: str) -> None:
    if _sink is not None:
        _sink(message)


@contextlib.contextmanager
def reporting(callback: Callable[[str], None] | None) -> Iterator[None]:
    global _sink
    previous, _sink = _sink, callback
    try:
        yield
    finally:
        _sink = previous
