"""Reading the webhook landing zone incrementally: only complete lines, each exactly once, in chunks.

A landing file may still be appended to while it is read: only bytes up to the last newline are
taken, and the (byte offset, line count) reached per file is returned so the next read starts
there. The caller stores those offsets in the same transaction as the events they produced.

``new_line_chunks`` reads at most ``max_bytes`` of lines at a time (one line longer than that is
read whole), so memory is bounded by the chunk, not by the backlog: a first load of gigabytes, or a
week of deliveries after downtime, goes through in as many chunks as it takes, each committed with
its offsets.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import polars as pl

from ingest.config import DEFAULT_CHUNK_BYTES

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




def _frame(names: list[str], numbers: list[int], texts: list[str]) -> pl.DataFrame:
    return pl.DataFrame({"source_file": names, "source_line": numbers, "line": texts},
                        schema={"source_file": pl.String, "source_line": pl.Int64, "line": pl.String})


def _complete_lines(fh, start: int, size: int, max_bytes: int) -> bytes:
    """Up to ``max_bytes`` from ``start`` cut after the last newline; a longer line is read whole.
    Empty when only a line still being written is there."""
    fh.seek(start)
    data = fh.read(min(max_bytes, size - start))
    end = data.rfind(b"\n")
    while end < 0 and start + len(data) < size:  # one line longer than the chunk
        more = fh.read(min(max_bytes, size - start - len(data)))
        cut = more.find(b"\n")
        if cut >= 0:
            return data + more[: cut + 1]
        data += more
    return data[: end + 1] if end >= 0 else b""


def new_line_chunks(root: Path, marks: dict[str, FileMark], max_bytes: int = DEFAULT_CHUNK_BYTES
                    ) -> Iterator[tuple[pl.DataFrame, dict[str, FileMark]]]:
    """New complete lines of every landing file since ``marks`` (keyed by path relative to root), in
    chunks of about ``max_bytes``: (lines, the marks reached in the files the chunk read)."""
    names: list[str] = []
    numbers: list[int] = []
    texts: list[str] = []
    chunk_marks: dict[str, FileMark] = {}
    held = 0
    for path in landing_files(root):
        rel = path.relative_to(root).as_posix()
        mark = marks.get(rel, FileMark(0, 0))
        size = path.stat().st_size
        if size < mark.offset:
            raise RuntimeError(f"landing file {path} shrank from {mark.offset} to {size} bytes: "
                               "landing files are append-only; restore it or run a full refresh")
        with open(path, "rb") as fh:
            while mark.offset < size:
                data = _complete_lines(fh, mark.offset, size, max(1, max_bytes - held))
                if not data:
                    break  # a line still being written
                lines = data.decode("utf-8", errors="replace").split("\n")[:-1]
                names += [rel] * len(lines)
                numbers += range(mark.lines + 1, mark.lines + len(lines) + 1)
                texts += lines
                mark = FileMark(mark.offset + len(data), mark.lines + len(lines))
                chunk_marks[rel] = mark
                held += len(data)
                if held >= max_bytes:
                    yield _frame(names, numbers, texts), chunk_marks
                    names, numbers, texts, chunk_marks, held = [], [], [], {}, 0
    if chunk_marks:
        yield _frame(names, numbers, texts), chunk_marks


def read_new_lines(root: Path, marks: dict[str, FileMark]) -> tuple[pl.DataFrame, dict[str, FileMark]]:
    """Every new complete line at once (tests and benchmarks; the loader reads ``new_line_chunks``)."""
    frames, new_marks = [], {}
    for lines, chunk_marks in new_line_chunks(root, marks, max_bytes=1 << 62):
        frames.append(lines)
        new_marks.update(chunk_marks)
    return (pl.concat(frames) if frames else _frame([], [], [])), new_marks
