"""Reading the webhook landing zone incrementally: only complete lines, each exactly once.

A landing file may still be appended to while it is read: only bytes up to the last newline are
taken, and the (byte offset, line count) reached per file is returned so the next read starts
there. The caller stores those offsets in the same transaction as the events they produced.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

PROVIDER_DIRS = ("sendgrid", "postmark", "resend")


@dataclass(frozen=True)
class FileMark:
    offset: int  # bytes consumed
    lines: int   # complete lines consumed


def landing_files(root: Path) -> list[Path]:
    files: list[Path] = []
    for provider in PROVIDER_DIRS:
        folder = root / provider
        if folder.is_dir():
            files += sorted(folder.glob("dt=*/*.ndjson"))
    return files


def read_new_lines(root: Path, marks: dict[str, FileMark]) -> tuple[pl.DataFrame, dict[str, FileMark]]:
    """New complete lines of every landing file since ``marks`` (keyed by path relative to root)."""
    names: list[str] = []
    numbers: list[int] = []
    texts: list[str] = []
    new_marks: dict[str, FileMark] = {}
    for path in landing_files(root):
        rel = path.relative_to(root).as_posix()
        mark = marks.get(rel, FileMark(0, 0))
        size = path.stat().st_size
        if size < mark.offset:
            raise RuntimeError(f"landing file {path} shrank from {mark.offset} to {size} bytes: "
                               "landing files are append-only; restore it or run a full refresh")
        if size == mark.offset:
            continue
        with open(path, "rb") as fh:
            fh.seek(mark.offset)
            data = fh.read(size - mark.offset)
        end = data.rfind(b"\n")
        if end < 0:
            continue  # a line still being written
        chunk = data[: end + 1].decode("utf-8", errors="replace").split("\n")[:-1]
        n = len(chunk)
        names += [rel] * n
        numbers += range(mark.lines + 1, mark.lines + n + 1)
        texts += chunk
        new_marks[rel] = FileMark(mark.offset + end + 1, mark.lines + n)
    lines = pl.DataFrame({"source_file": names, "source_line": numbers, "line": texts},
                         schema={"source_file": pl.String, "source_line": pl.Int64, "line": pl.String})
    return lines, new_marks
