"""One writer at a time: a refresh (or a raw reset) holds an exclusive lock on its warehouse for the
whole run, so two runs on one warehouse never interleave their ingest, build and publish.

Runs launched by Dagster (the schedule, the UI) take it step by step: each of the ingest steps and
the dbt step (copy, build, publish) holds it, waiting its turn, so no other run's ingest can land
between a build's copy and its publish. Inside a refresh, which holds it already, the steps take it
again re-entrantly.

The lock is ``flock`` on a file beside the warehouse (``<CRM_DUCKDB_PATH>.lock``; for the PostgreSQL
target ``$CRM_HOME/warehouse-postgres.lock``). The kernel releases it when the process ends, however it
ends (``kill -9`` included), so a killed run never leaves a stale lock. The file says who holds it.

``source advance`` does not take it: it writes the simulated CRM and the landing zone, never the
warehouse, and a refresh is built to read a source that moves under it (each table's extraction is
one snapshot, and the landing zone is read up to complete lines) as BuildDesk's live CRM does all
day (tested: the source advanced a day while a refresh was paused mid-dbt).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
from pathlib import Path
from typing import Callable, Iterator

from ingest.config import Settings
from ingest.postgres_server import SourceError

_HELD: dict[str, int] = {}  # lock files this process holds, and how deep (a refresh's own Dagster steps)


class WarehouseLocked(SourceError):
    """Another run holds the warehouse's writer lock."""


def lock_path(cfg: Settings) -> Path:
    if cfg.warehouse == "duckdb":
        return Path(f"{cfg.duckdb_path}.lock")
    return cfg.home / "warehouse-postgres.lock"


def _holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        h = json.loads(os.read(fd, 4096) or b"{}")
        return f"{h['what']} (pid {h['pid']}, started {h['started']})"
    except (ValueError, KeyError, OSError):
        return "another run"


@contextlib.contextmanager
def writer_lock(cfg: Settings, what: str, *, wait: bool = False,
                progress: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the warehouse's writer lock for the block. Busy: raise ``WarehouseLocked`` naming the holder,
    or with ``wait`` say so and wait for it."""
    path = lock_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = str(path.resolve())
    if key in _HELD:  # re-entrant: a refresh holds it, and its Dagster steps ask again in the same process
        _HELD[key] += 1
        try:
            yield
        finally:
            _HELD[key] -= 1
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            if not wait:
                raise WarehouseLocked(f"the {cfg.warehouse} warehouse is being written by {holder}: run again when it "
                                    f"ends, or add --wait to queue behind it (lock {path})") from None
            if progress:
                progress(f"waiting for {holder} to finish with the {cfg.warehouse} warehouse…")
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps({"what": what, "pid": os.getpid(),
                                 "started": f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M:%S} UTC"}).encode())
        _HELD[key] = 1
        try:
            yield
        finally:
            del _HELD[key]
    finally:
        os.close(fd)  # releases the lock
