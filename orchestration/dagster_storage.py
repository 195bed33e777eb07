"""Dagster's SQLite event log, keeping its database connections open between events.

Dagster's ``SqliteEventLogStorage`` creates a SQLAlchemy engine, opens a connection and disposes of
both for every event it stores (two or three times for an asset or check event: the run's database
and the cross-run index). A refresh stores ~700 events (the dbt build alone: a materialization or a
check result for each of its 231 nodes); on the tiny tier that was 8-9 s of the refresh's 55-60 s,
measured by running the same refresh with and without this class. Here each database (a run's shard
or the index) keeps one engine and one connection, used under the storage's own lock, as before.

The database files, their layout and schema are Dagster's own (the class only overrides how it
connects), so history written by either class reads with the other, and ``crm-warehouse ui`` (the
Dagster webserver, another process) reads and writes them as before: SQLite locks each transaction,
and an idle connection holds no lock.

``ensure_instance_config`` writes the ``dagster.yaml`` that selects this class in a Dagster home the
project made; a ``dagster.yaml`` someone else wrote is left as it is.
"""

from __future__ import annotations

import collections
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

MAX_OPEN_SHARDS = 8  # runs' databases kept open at once (a long-lived webserver reads many runs)
MARKER = "# written by crm-warehouse"


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """``SqliteEventLogStorage`` with one open connection per database file, least recently used
    closed beyond ``MAX_OPEN_SHARDS``."""

    def __init__(self, base_dir: str, inst_data=None) -> None:
        self._engines: collections.OrderedDict[str, Engine] = collections.OrderedDict()
        super().__init__(base_dir, inst_data)

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> "PooledSqliteEventLogStorage":
        return cls(inst_data=inst_data, **config_value)

    def _engine(self, shard: str) -> Engine:  # called holding self._db_lock
        engine = self._engines.get(shard)
        if engine is None:
            # one connection, shared by the threads that take the lock in turn (the event log watcher)
            engine = create_engine(self.conn_string_for_shard(shard), poolclass=StaticPool,
                                   connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS,
                                                 "check_same_thread": False})
            self._engines[shard] = engine
        else:
            self._engines.move_to_end(shard)
        while len(self._engines) > MAX_OPEN_SHARDS:
            self._engines.popitem(last=False)[1].dispose()
        return engine

    def _forget(self, shard: str | None = None) -> None:
        """Close the open connection to ``shard`` (every one if None): files about to go, or the end."""
        with self._db_lock:
            for name in [shard] if shard is not None else list(self._engines):
                engine = self._engines.pop(name, None)
                if engine is not None:
                    engine.dispose()
                self._initialized_dbs.discard(name)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn:
                with conn.begin():
                    yield conn

    def wipe(self) -> None:
        self._forget()
        super().wipe()
        self._forget()

    def dispose(self) -> None:
        self._forget()
        super().dispose()


def instance_config(home: Path) -> str:
    """The ``dagster.yaml`` of a Dagster home the project made: Dagster's default SQLite storage in
    ``home``, its event log through ``PooledSqliteEventLogStorage`` (same files as the default's)."""
    return (f"{MARKER}: Dagster's default SQLite storage, its event log keeping connections open\n"
            "event_log_storage:\n"
            "  module: orchestration.dagster_storage\n"
            "  class: PooledSqliteEventLogStorage\n"
            "  config:\n"
            f"    base_dir: {str(home / 'history' / 'runs')!r}\n"
            "telemetry:\n"
            "  enabled: false\n"
            "nux:\n"  # the UI's "join the community" pop-up, on every page until dismissed per browser
            "  enabled: false\n")


def ensure_instance_config(home: Path) -> None:
    """Write ``home/dagster.yaml`` unless one not written by the project is there."""
    path = home / "dagster.yaml"
    text = instance_config(home)
    if path.exists():
        current = path.read_text()
        if current == text or not current.startswith(MARKER):
            return
    home.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".dagster.yaml.{os.getpid()}")
    tmp.write_text(text)
    tmp.replace(path)  # two processes starting together each write it whole
