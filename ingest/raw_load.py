"""Source tables → ``raw.<table>`` on either warehouse target, incrementally and idempotently.

Per table, one transaction holds everything: schema drift handling, the extracted rows merged on
the primary key, deletions flagged, the cursor and the batch row in ``ops``. A run killed at
any moment leaves the table and its state as the previous run left them.

Schema drift: a new source column is added to raw; a dropped one stays (null on rows written
since); a type change raw can absorb (to text, to a wider integer) alters the raw column; any
other type change fails that table, naming table, column, old and new type.

Merge: an extracted row is written only when it is new, differs from the stored row, or revives
a deleted key; so re-running with no source change changes nothing (not even ``_ingested_at``).
Hard deletes: keys present in ``raw`` but no longer in the source get ``_deleted_at``; a key
that comes back is revived by the merge.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Collection, Iterator

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from ingest.ops import BATCH_COLUMNS, new_batch_id
from ingest.progress import rate
from ingest.postgres_source import (Column, PostgresSource, SnapshotCount, SourceTable, SourceTableMissing,
                                     pg_target_type)
from ingest.tables import CASCADE_PARENTS, TableSpec, read_mode
from ingest.warehouse import Warehouse, create_table, insert_row

META_COLUMNS = (("_ingested_at", "TIMESTAMPTZ"), ("_batch_id", "VARCHAR"), ("_deleted_at", "TIMESTAMPTZ"))
STATE_COLUMNS = (
    ("table_name", "VARCHAR"), ("kind", "VARCHAR"), ("cursor_column", "VARCHAR"), ("cursor_value", "TIMESTAMPTZ"),
    ("columns_json", "VARCHAR"), ("last_batch_id", "VARCHAR"), ("rows_live", "BIGINT"), ("rows_deleted", "BIGINT"),
    ("updated_at", "TIMESTAMPTZ"),
)
Progress = Callable[[str], None]
log = logging.getLogger(__name__)


class IngestError(RuntimeError):
    """A table could not be ingested; the message names the table and what to do."""


class IngestBlocked(IngestError):
    """The ingest gate blocked a table: too many of its extracted rows broke the contract."""

    def __init__(self, message: str, result: "TableResult") -> None:
        super().__init__(message)
        self.result = result


class _Blocked(Exception):
    pass


def missing_contract_columns(table: str, columns: frozenset[str]) -> list[str]:
    """The contract's columns of ``table`` the source has under no name (``contract.renames``)."""
    from contract.columns import COLUMNS
    from contract.renames import RENAMES

    return [c for c in COLUMNS.get(table, {}) if c not in columns
            and not any(r in columns for r in RENAMES.get((table, c), ()))]


_MASS_DELETE_ALLOWED = False  # set for one run by mass_delete_allowed() (the ingest step's run config)


def allow_mass_delete() -> bool:
    """``refresh --allow-mass-delete`` (the ingest step's ``allow_mass_delete`` run config, or
    CRM_ALLOW_MASS_DELETE=1): accept a run that flags more than half of a table's live rows deleted."""
    return _MASS_DELETE_ALLOWED or os.environ.get("CRM_ALLOW_MASS_DELETE", "").lower() in ("1", "true", "yes")


@contextlib.contextmanager
def mass_delete_allowed(allowed: bool = True):
    """``allow_mass_delete()`` is true for the duration (in every thread: the ingest's lanes read it)."""
    global _MASS_DELETE_ALLOWED
    saved, _MASS_DELETE_ALLOWED = _MASS_DELETE_ALLOWED, _MASS_DELETE_ALLOWED or allowed
    try:
        yield
    finally:
        _MASS_DELETE_ALLOWED = saved


def lookback() -> dt.timedelta:
    return dt.timedelta(hours=float(os.environ.get("CRM_INGEST_LOOKBACK_HOURS", "24")))


@dataclass
class TableResult:
    table: str
    batch_id: str
    mode: str = "incremental"
    rows_extracted: int = 0
    rows_written: int = 0
    rows_deleted: int = 0
    rows_live: int = 0
    cursor_value: dt.datetime | None = None
    columns_added: list[str] = field(default_factory=list)
    seconds: float = 0.0
    extract_seconds: float = 0.0
    gate_seconds: float = 0.0
    rows_quarantined: int = 0
    rows_retried_failing: int = 0   # of those, rows read again from quarantine that still fail
    rule_failures: dict[str, int] = field(default_factory=dict)
    gate_skipped: list[tuple[str, str]] = field(default_factory=list)
    rules_checked: list[str] = field(default_factory=list)
    gate_enforced: list[str] = field(default_factory=list)
    threshold: float = 0.0
    min_rows: int = 0                          # failing rows a batch must also reach to block
    status: str = "success"
    source_clock: dt.datetime | None = None   # the source's own clock, or the wall clock if it has none
    source_rows: int | None = None            # the source's row count as the extraction began
    quarantined_absent: int = 0               # keys held back in quarantine that raw does not have live
    cursor_indexed: bool | None = None        # the source has an index leading with the cursor (None: no cursor)
    source_bytes: int = 0                     # the table's size in the source
    # documented values the source does not enforce: rule → (rows, up to 5 values); recorded, not quarantined
    warnings: dict[str, tuple[int, list[str]]] = field(default_factory=dict)
    # contract columns the source lacks (staging yields them null): recorded as a warning
    missing_columns: list[str] = field(default_factory=list)
    kind: str | None = None                   # the read mode the source's columns allowed (ingest.tables.read_mode)
    cursor_column: str | None = None


def ensure_ops(wh: Warehouse) -> None:
    if getattr(wh, "_ops_ready", False):
        return
    from quality.check_results import CHECK_COLUMNS

    have: dict[str, dict[str, str]] = {}
    for table, column, dtype in wh.rows(
            "SELECT table_name, column_name, data_type FROM duckdb_columns() WHERE database_name = current_database() "
            "AND schema_name = 'ops'" if wh.kind == "duckdb" else
            "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = 'ops'"):
        have.setdefault(table, {})[column] = dtype  # one catalogue query, not one per table
    with wh.transaction():  # committed on its own: state tables exist even if the load fails
        create_table(wh, "ops.ingest_state", STATE_COLUMNS, ("table_name",), have=have.get("ingest_state"))
        create_table(wh, "ops.ingest_batches", BATCH_COLUMNS, ("batch_id",), have=have.get("ingest_batches"))
        # here too, not in the table's transaction that records the first check rows (it may roll back)
        create_table(wh, "ops.check_results", CHECK_COLUMNS, (), have=have.get("check_results"))
    wh._ops_ready = wh._check_results_ready = True


def _target_type(wh: Warehouse, col: Column) -> str:
    return col.duck_type if wh.kind == "duckdb" else pg_target_type(col.pg_type)


def _create_raw(wh: Warehouse, spec: TableSpec, st: SourceTable) -> None:
    cols = [f'"{c.name}" {_target_type(wh, c)}' for c in st.columns]
    cols += [f"{n} {wh.sql_type(t)}" for n, t in META_COLUMNS]
    pk = f", PRIMARY KEY ({', '.join(st.primary_key)})" if wh.kind == "postgres" else ""
    wh.execute(f"CREATE TABLE raw.{spec.raw} ({', '.join(cols)}{pk})")


def _drift(wh: Warehouse, spec: TableSpec, st: SourceTable, previous: dict[str, str] | None,
           existing: dict[str, str]) -> list[str]:
    """Add new source columns to raw; fail on an incompatible type change. Returns added columns."""
    added = []
    for c in st.columns:
        if c.name not in existing:
            wh.execute(f'ALTER TABLE raw.{spec.raw} ADD COLUMN "{c.name}" {_target_type(wh, c)}')
            added.append(c.name)
        elif previous and c.name in previous and previous[c.name] != c.pg_type:
            old = Column(c.name, previous[c.name])
            if _target_type(wh, old) == _target_type(wh, c):
                continue
            if _widening(old, c):
                using = f' USING "{c.name}"::{_target_type(wh, c)}' if wh.kind == "postgres" else ""
                wh.execute(f'ALTER TABLE raw.{spec.raw} ALTER COLUMN "{c.name}" TYPE {_target_type(wh, c)}{using}')
            else:
                raise IngestError(
                    f"raw.{spec.raw}: column {c.name} changed type in the source from {previous[c.name]} to "
                    f"{c.pg_type}, which raw.{spec.raw} cannot hold; run `crm-warehouse refresh --full-refresh` "
                    "to rebuild the table, or revert the source change")
    return added


def _widening(old: Column, new: Column) -> bool:
    """Type changes raw absorbs by altering its column: to text, or to a wider integer."""
    if new.duck_type == "VARCHAR" and not old.duck_type.endswith("[]"):
        return True
    order = ["SMALLINT", "INTEGER", "BIGINT"]
    return old.duck_type in order and new.duck_type in order and order.index(new.duck_type) > order.index(old.duck_type)


def _cast_select(wh: Warehouse, st: SourceTable, alias: str = "s", arrives: pa.Schema | None = None) -> str:
    """The batch's columns cast to their raw types. ``arrives``: the batch's Arrow schema (DuckDB): a
    column that already arrives as its raw type is selected as it is. A no-op cast is not free: DuckDB
    binds and plans each one, and an incremental run's statements over a few rows are mostly
    planning (a 30-column merge DELETE: 7.6 ms planned with its casts, 4.9 ms without)."""
    def one(c: Column) -> str:
        target = _target_type(wh, c)
        if arrives is not None and wh.kind == "duckdb" and c.name in arrives.names \
                and _duck_type_of(arrives.field(c.name).type) == target:
            return f'{alias}."{c.name}"'
        return f'CAST({alias}."{c.name}" AS {target}) AS "{c.name}"'
    return ", ".join(one(c) for c in st.columns)


_ARROW_DUCK = ((pa.string(), "VARCHAR"), (pa.large_string(), "VARCHAR"), (pa.int16(), "SMALLINT"),
               (pa.int32(), "INTEGER"), (pa.int64(), "BIGINT"), (pa.bool_(), "BOOLEAN"), (pa.float64(), "DOUBLE"),
               (pa.float32(), "FLOAT"), (pa.date32(), "DATE"), (pa.time64("us"), "TIME"),
               (pa.timestamp("us", tz="UTC"), "TIMESTAMPTZ"), (pa.timestamp("us"), "TIMESTAMP"),
               (pa.uuid(), "UUID"), (pa.json_(), "JSON"))


def _duck_type_of(t: pa.DataType) -> str | None:
    """The DuckDB type an Arrow column is read as (in ``duck_type``'s spelling), for the types the
    extraction delivers; None for any other (it is cast)."""
    if pa.types.is_list(t):
        inner = _duck_type_of(t.value_type)
        return inner + "[]" if inner else None
    return next((d for a, d in _ARROW_DUCK if t == a), None)


def _stage(wh: Warehouse, name: str, batch: pa.RecordBatch | pa.Table) -> str:
    table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
    return wh.stage(name, table if wh.kind == "duckdb" else pl.from_arrow(table))  # DuckDB reads Arrow as is


def _counts(wh: Warehouse, table: str) -> tuple[int, int]:
    """(live rows, rows flagged deleted) of ``raw.<table>``."""
    # count(*) is the table's cardinality and count(_deleted_at) reads validity masks: 1.3 ms against
    # 3.1 ms for two FILTERed counts over 3.5 M rows
    row = wh.rows(f"SELECT count(*) - count(_deleted_at), count(_deleted_at) FROM raw.{table}")[0]
    return int(row[0]), int(row[1])


def _deletions(wh: Warehouse, src: PostgresSource, spec: TableSpec, st: SourceTable, now, batch_id: str,
               source_rows: int, raw_tables: set[str], loaded_at=None,
               raw_columns: dict[tuple[str, str], dict[str, str]] | None = None) -> tuple[int, int, int]:
    """Flag raw rows deleted in the source; returns (flagged now, live rows, deleted rows) of raw.

    ``source_rows`` is the source's row count taken as the extraction began (on another
    connection, so the scan overlaps the extraction). After the merge raw's live keys include
    every key extracted, so equal live counts mean nothing was deleted. A row inserted in the
    source after the count makes the counts differ, which only sends the table to the key
    comparison below (against the source as it is then, so nothing is flagged wrongly); a row
    deleted between the count and the extraction is flagged by the next run. Rows removed by an
    ``ON DELETE CASCADE`` from a parent already flagged (parents are ingested first) are flagged
    from raw alone; only if the counts still differ are keys compared with the source
    (``_flag_deletes``). ``raw_tables``: the raw tables present (a parent not loaded is skipped);
    ``loaded_at``: when the table's last load ran (its state row), and ``raw_columns`` raw's tables'
    columns, both to narrow the cascades (``_cascade``).
    """
    live, deleted = _counts(wh, spec.raw)
    if live == source_rows:
        return 0, live, deleted
    if source_rows * 2 < live and not allow_mass_delete():
        raise IngestError(
            f"raw.{spec.raw}: the source table {st.name} holds {source_rows:,} rows where raw holds {live:,} live: "
            "more than half would be flagged deleted in one run, so none is. Check that CRM_SOURCE_URL names "
            "BuildDesk's database and that the table was not truncated; if the deletions are real, run "
            "`crm-warehouse refresh --allow-mass-delete` once")
    flagged = 0
    raw_columns = raw_columns or {}
    for column, parent, parent_column in st.cascades_from:
        parent_raw = parent.rpartition(".")[2]
        if parent_raw not in raw_tables:
            continue
        flagged += _cascade(wh, spec, column, parent_raw, parent_column, now, batch_id, loaded_at,
                            raw_columns.get(("raw", parent_raw), {}), raw_columns.get(("raw", spec.raw), {}))
    if live - flagged != source_rows:
        flagged += _flag_deletes(wh, src, spec, st, now, batch_id, source_rows)
    return flagged, live - flagged, deleted + flagged


def _cascade(wh: Warehouse, spec: TableSpec, column: str, parent_raw: str, parent_column: str, now, batch_id: str,
             loaded_at, parent_columns: dict[str, str], columns: dict[str, str]) -> int:
    """Flag the live rows of ``raw.<spec.raw>`` whose parent (``column`` → ``parent_raw``) is flagged
    deleted, as the source's ``ON DELETE CASCADE`` removed them; returns how many.

    Narrowed twice, neither needed for a right result: whatever a cascade leaves unflagged keeps the
    live count above the source's and goes to the key comparison (``_flag_deletes``), which is exact.
    - Parents flagged before this table's last load (``loaded_at``, less the lookback window) had
      their children flagged then, by this or by the key comparison: only the others are joined.
    - A child is not older than its parent: its cursor (an event time, or ``updated_at``) not before
      the earliest ``created_at`` among those parents. A constant filter, so DuckDB's zone maps skip
      the row groups written before it: the day's few deleted leads were recent spam, and
      lead_activities' 3 M ``lead_id`` values need not be read (medium tier, a day's run: the
      cascade's UPDATE took 80-105 ms reading them all).
    """
    parents, params = f"raw.{parent_raw} WHERE _deleted_at IS NOT NULL", ()
    if loaded_at is not None:
        parents, params = f"raw.{parent_raw} WHERE _deleted_at >= ?", (loaded_at - lookback(),)
    restrict, restrict_params = "", ()
    if spec.cursor and spec.cursor in columns and "created_at" in parent_columns and loaded_at is not None:
        n, oldest = wh.rows(f"SELECT count(*), min(created_at) FROM {parents}", params)[0]
        if not n:
            return 0
        if oldest is not None:
            restrict, restrict_params = f' AND "{spec.cursor}" >= ?', (oldest,)
    update = (f'UPDATE raw.{spec.raw} SET _deleted_at = ?, _batch_id = ? WHERE _deleted_at IS NULL{restrict} AND "{column}" '
              f'IN (SELECT "{parent_column}" FROM {parents})')
    if wh.kind != "postgres":
        return wh.execute_count(update, (now, batch_id, *restrict_params, *params))
    # PostgreSQL plans the parents flagged since the last load from statistics that predate the
    # flagging (their _deleted_at lies beyond the histogram): one row expected, so a nested loop that
    # scans the child table once per parent (raw has no index on the reference column) — 71 parents,
    # 7.7 M rows compared, 60-75 s on the medium tier's lead_activities, 10x that at large. A hash join
    # reads the child once whatever the parents' number.
    # SET LOCAL: a failed UPDATE aborts the transaction, whose rollback undoes the setting too
    wh.execute("SET LOCAL enable_nestloop = off")
    flagged = wh.execute_count(update, (now, batch_id, *restrict_params, *params))
    wh.execute("RESET enable_nestloop")  # the rest of the table's transaction plans as usual
    return flagged


RETRY_MAX = 10_000  # quarantined keys re-read by key each run (more: they wait for a change in the source)
BUCKET_CHARS = 4  # 65,536 buckets of a UUID key's leading hex digits
# Below this many source rows every key is read (100k UUIDs: ~20 ms); above it the per-bucket counts
# (a GROUP BY over the key's text, ~0.4 s per million rows on the server) narrow the keys to read.
BUCKET_MIN_ROWS = 1_000_000
# From this many rows a parent table is read through the batch's keys by the gate's reference rules
# on an incremental run (``Gate.flagged``): measured on the medium tier, 0.6 M rows of email_sends
# 20-60 ms to hash as a whole, 5-7 ms narrowed; 100 k rows of leads about even.
NARROW_PARENT_ROWS = 200_000


def _flag_deletes(wh: Warehouse, src: PostgresSource, spec: TableSpec, st: SourceTable, now, batch_id: str,
                  source_rows: int) -> int:
    """Set ``_deleted_at`` on raw's live rows whose key is gone from the source; returns how many.

    For a UUID key of a table of ``BUCKET_MIN_ROWS`` or more, live-row counts per key prefix are
    compared first (one GROUP BY on each side) and only the keys of buckets whose counts differ
    are read, by index range scans: a few thousand keys instead of every key of a multi-million-row
    table. Otherwise all keys are compared.
    """
    k = st.primary_key[0]
    text_key = f'left(CAST({spec.raw}."{k}" AS VARCHAR), {BUCKET_CHARS})'
    restrict = ""
    uuid_key = (len(st.primary_key) == 1 and next(c for c in st.columns if c.name == k).pg_type == "uuid"
                and source_rows >= BUCKET_MIN_ROWS)
    if uuid_key:
        src_counts = src.key_buckets(st, BUCKET_CHARS)
        raw_counts = wh.query(f"SELECT {text_key} AS b, count(*) AS n FROM raw.{spec.raw} "
                              f"WHERE _deleted_at IS NULL GROUP BY 1")
        buckets = sorted(b for b, n in raw_counts.iter_rows() if src_counts.get(b, 0) != n)
        if not buckets:
            return 0
        keys_tbl = src.uuid_keys_in_buckets(st, buckets)
        staged_b = _stage(wh, "raw_key_buckets", pa.table({"b": pa.array(buckets, pa.string())}))
        restrict = f" AND {text_key} IN (SELECT b FROM {staged_b})"
    # DuckDB reads uuid keys as UUIDs: half the bytes from the source, and a join on 16-byte values
    native = (not uuid_key and wh.kind == "duckdb"
              and all(c.pg_type == "uuid" for c in st.columns if c.name in st.primary_key))
    if not uuid_key:
        keys_tbl = src.keys(st, as_text=not native)
    staged = _stage(wh, "raw_keys", keys_tbl)
    match = " AND ".join(f'{spec.raw}."{c}" = k."{c}"' if native else f'CAST({spec.raw}."{c}" AS VARCHAR) = k."{c}"'
                         for c in st.primary_key)
    flagged = wh.execute_count(
        f"UPDATE raw.{spec.raw} SET _deleted_at = ?, _batch_id = ? WHERE _deleted_at IS NULL{restrict} "
        f"AND NOT EXISTS (SELECT 1 FROM {staged} k WHERE {match})", (now, batch_id))
    wh.unstage(staged)
    if uuid_key:
        wh.unstage("raw_key_buckets")
    return flagged


def _batch_low(batch: pa.RecordBatch, spec: TableSpec):
    """The batch's earliest cursor value, or None (no cursor, or rows without one)."""
    if not spec.cursor or spec.cursor not in batch.schema.names or batch.column(spec.cursor).null_count:
        return None
    return pc.min(batch.column(spec.cursor)).as_py()


def _changed_rows(spec: TableSpec, st: SourceTable, typed_all: str, lo, watermark) -> tuple[str, tuple]:
    """(SQL, parameters) of the batch's rows whose version raw does not hold live: new keys, new
    versions, keys flagged deleted that are back, rows held in quarantine. ``lo``: the batch's
    earliest cursor value; ``watermark``: the cursor the table's last load stored.

    A row's version is its key and cursor value (``updated_at``, stamped by the source's triggers, or
    an append-only row's event time). Most of an incremental batch is rows raw holds already: the
    lookback window reads a day again (a simulated day on the medium tier: 45 k rows read, 13 k new
    or changed). Those passed the gate when they were written; they are neither judged nor written
    again, and a batch that brings nothing new costs this one statement instead of the gate's count,
    a merge DELETE comparing every column and an INSERT (on a few rows a DuckDB statement's cost is
    mostly binding and planning, which grows with the expressions it holds).

    Two versions can share a cursor value only at the watermark: a trigger stamps its transaction's
    start (or the simulator's clock, which stands still between ``source advance`` calls), so a row
    changed again after the last load carries a stamp at least the watermark. Stored copies at or
    after it are compared column by column; the ones before it by version alone. Raw is read only
    where its cursor is not before ``lo`` (zone maps skip the rest): a stored copy of the same
    version has the same cursor value."""
    def same_version(a: str) -> str:
        return " AND ".join(f'{a}."{k}" = s."{k}"' for k in (*st.primary_key, spec.cursor))

    c = f'"{spec.cursor}"'
    kc = ", ".join(f'"{k}"' for k in (*st.primary_key, spec.cursor))
    same = " AND ".join(f'w."{col.name}" IS NOT DISTINCT FROM s."{col.name}"' for col in st.columns
                        if col.name not in st.primary_key and col.name != spec.cursor) or "true"
    # two anti joins: before the watermark only raw's key and cursor columns are read; from it on every
    # column, but of the few rows there (a scan fetches the other columns only where its filter matched)
    return (f"SELECT s.* FROM {typed_all} s "
            f"ANTI JOIN (SELECT {kc} FROM raw.{spec.raw} WHERE _deleted_at IS NULL AND {c} >= ? AND {c} < ?) r "
            f"ON {same_version('r')} "
            f"ANTI JOIN (SELECT * FROM raw.{spec.raw} WHERE _deleted_at IS NULL AND {c} >= ?) w "
            f"ON {same_version('w')} AND {same}", (lo, watermark, watermark))


def _write_changed(wh: Warehouse, spec: TableSpec, st: SourceTable, n: int, typed: str, lo, now,
                   batch_id: str) -> int:
    """Merge the ``n`` rows of ``typed`` (the changed rows the gate passed): every stored copy of their
    keys leaves raw, then they go in. Returns the rows written.

    An append-only row keeps its event time, so its stored copies lie where the cursor is not before
    ``lo``, the batch's earliest: the DELETE reads only that part of raw. A mutable row's older copy
    may lie anywhere: its DELETE reads raw's key column whole (one column, nothing compared)."""
    if n <= 0:
        return 0
    cols = ", ".join(f'"{c.name}"' for c in st.columns)
    keys = ", ".join(f'"{k}"' for k in st.primary_key)
    where, params = "", ()
    if spec.kind == "append":
        where, params = f' AND "{spec.cursor}" >= ?', (lo,)
    wh.execute(f"DELETE FROM raw.{spec.raw} WHERE ({keys}) IN (SELECT {keys} FROM {typed} x){where}", params)
    return wh.execute_count(f"INSERT INTO raw.{spec.raw} ({cols}, _ingested_at, _batch_id) SELECT {cols}, ?, ? "
                            f"FROM {typed} x", (now, batch_id))


class Skipped(IngestError):
    """A table not ingested because a table it references (a Dagster dependency) failed."""


@functools.cache  # fixed by the code (the source schema's foreign keys); ordering 26 tables asks ~700 times
def _resyncs(resync: "bool | Collection[str]", spec: TableSpec) -> bool:
    """Whether ``spec``'s table is re-read whole this run (``refresh --resync [TABLE…]``)."""
    return resync if isinstance(resync, bool) else (spec.raw in resync or spec.source in resync)


def raw_holdings(wh: Warehouse, tables: "Collection[str] | None" = None) -> dict[str, tuple[int, int]]:
    """Raw table (all, or those of ``tables`` raw has) → (live rows, rows flagged deleted)."""
    have = {t for sch, t in _catalog_all(wh)[0] if sch == "raw"}
    return {t: _counts(wh, t) for t in sorted(have if tables is None else have & set(tables))}


def reset_raw(wh: Warehouse, tables: "Collection[str]") -> None:
    """Drop raw tables with their ingest state and quarantine: the only operation that forgets rows (the
    deleted ones cannot be read again from the source). ``crm-warehouse raw reset`` asks before calling it."""
    ensure_ops(wh)
    catalogue = _catalog_all(wh)[0]
    with wh.transaction():
        for t in tables:
            if ("raw", t) in catalogue:
                wh.execute(f"DROP TABLE raw.{t}")
            wh.execute("DELETE FROM ops.ingest_state WHERE table_name = ?", (t,))
            if ("quarantine", t) in catalogue:
                wh.execute(f"DROP TABLE quarantine.{t}")


def table_deps(table: str) -> tuple[str, ...]:
    """Raw tables ``table`` reads while it is ingested: cascade parents (deletes are flagged from
    them) and the parents of its reference rules. They are ingested first."""
    from quality.contract import reference_parents

    return tuple(dict.fromkeys(CASCADE_PARENTS.get(table, ()) + reference_parents(table)))


# From this many live rows (after its last load) a table's source count starts as an incremental run
# begins, on a connection of its own, in a snapshot its extraction reads in later (``SnapshotCount``).
# Medium tier: lead_activities' 3.6 M rows take 0.27 s to count (an index-only scan); started when
# the table's turn came near, the run waited ~0.1 s for it (1.28 s against 1.39 s, medians of 7).
EARLY_COUNT_ROWS = 1_000_000

# Tables whose extraction runs while a table merges: the next two. In an incremental run a source
# query that scans a table for its cursor (~0.1 s for 0.6 M rows of email_sends) then starts two
# merges early. In a first load, while a large table's last row groups are compressed and committed
# on one core, the next ones' decoding fills the other: medium tier, full ingest 13.5 s against
# 14.05 s reading one ahead (medians of 5, interleaved). Each extraction ahead holds at most its
# queue (two batches of <= 64 MB) and the one decoding. A table planned before a table it reads was
# loaded reads the catalogue again at its turn (``_ingest``), so its gate checks every reference rule.
READ_AHEAD = 2


def ingest_tables(wh: Warehouse, src: PostgresSource, specs: list[TableSpec] | tuple[TableSpec, ...], *,
                  resync: "bool | Collection[str]" = False, progress: Progress = lambda _: None,
                  run_id: str | None = None
                  ) -> Iterator[tuple[TableSpec, TableResult | Exception]]:
    """Ingest ``specs`` (parents before children) as ``ingest_table`` does, one table after another,
    each in its own transaction; yields (spec, result) or (spec, the error) per table.

    A table's failure does not stop the others, except the tables that depend on it (``table_deps``),
    which yield ``Skipped``. While a table's rows are merged, the next table's extraction is already
    running: its plan (cursor, retry keys; read-only) is made and its query started as soon as the
    current table's extraction has been read to its end, so the source's query time (a sequential
    scan where the cursor column has no index, the ADBC round trips) overlaps the warehouse's work;
    the table after it starts then too (``READ_AHEAD``). A table whose count
    starts as the run begins (``EARLY_COUNT_ROWS``) comes as late as the tables reading it allow.

    On DuckDB the tables load in ``LANES`` threads instead (``_in_lanes``), yielded in the order
    they finish; the read-ahead above is then the PostgreSQL warehouse's.
    """
    order = _parents_first(list(specs))
    src.prepare_counts()  # incremental tables count the source; the connection opens meanwhile
    from quality.contract import contract_tables

    keys = {s.source: contract_tables().get(s.raw, {}).get("key", ()) for s in order}
    # the source's clock (one run, one time: what "not after the run time" compares with) and table
    # descriptions, its connection's round trips (~17 ms on the medium tier), on a thread while the
    # warehouse's catalogue and state are read (~14 ms); a warehouse error is raised once both are done
    with ThreadPoolExecutor(1, thread_name_prefix="describe") as pool:
        described = pool.submit(lambda: (src.business_clock(), src.describe_many([s.source for s in order], keys)))
        ensure_ops(wh)
        snap = _snapshot(wh)
    clock, snap.source_tables = described.result()
    early: dict[str, SnapshotCount] = {}
    if not resync:  # the largest tables' counts start now (EARLY_COUNT_ROWS)
        for s in order:
            st = snap.source_tables.get(s.source)
            if (isinstance(st, SourceTable) and snap.covers(s.raw) and s.raw in snap.states
                    and snap.live.get(s.raw, 0) >= EARLY_COUNT_ROWS):
                early[s.raw] = src.count_in_snapshot(st)
        # ... and those tables go as late as the tables that read them allow, so the count (0.27 s
        # for lead_activities on the medium tier) is done before their turn
        order = _parents_first([s for s in order if s.raw not in early] + [s for s in order if s.raw in early])

    # the ops rows of tables whose load changed nothing, written in one transaction as the run ends
    deferred: list[_Bookkeeping] = []
    ended = False
    try:
        yield from _tables(wh, src, order, snap, early, deferred, resync=resync, progress=progress,
                           run_id=run_id, clock=clock)
        ended = True
    finally:
        try:
            _write_bookkeeping(wh, deferred)
        except Exception:
            if ended:
                raise
            log.exception("the ops rows of %d unchanged tables were not written", len(deferred))


def _tables(wh: Warehouse, src: PostgresSource, order: list[TableSpec], snap: "_Snapshot",
            early: dict[str, SnapshotCount], deferred: "list[_Bookkeeping]", *, resync: "bool | Collection[str]",
            progress: Progress, run_id: str | None, clock) -> Iterator[tuple[TableSpec, TableResult | Exception]]:
    """``ingest_tables``' loads: in lanes (DuckDB), or one table after another reading ahead."""
    if LANES > 1 and wh.kind == "duckdb" and len(order) > 1:
        yield from _in_lanes(wh, src, order, snap, resync=resync, progress=progress, run_id=run_id,
                             clock=clock, early=early, defer=deferred)
        return
    failed: set[str] = set()
    ahead_plans: dict[str, _Plan | Exception] = {}

    def start(spec: TableSpec) -> _Plan | Exception:
        return _start_table(wh, src, spec, snap, resync=_resyncs(resync, spec), counted=early.pop(spec.raw, None))

    try:
        for i, spec in enumerate(order):
            plan = ahead_plans.pop(spec.raw, None)
            if plan is None and not any(p in failed for p in table_deps(spec.raw)):
                plan = start(spec)
            broken = [p for p in table_deps(spec.raw) if p in failed]
            if broken:
                if isinstance(plan, _Plan):
                    plan.close()
                failed.add(spec.raw)
                yield spec, _skipped(spec, broken[0])
                continue
            if isinstance(plan, Exception):
                failed.add(spec.raw)
                yield spec, plan
                continue
            if isinstance(plan, TableResult):  # absent from the source
                yield spec, plan
                continue

            def ahead(i: int = i) -> None:
                for j in range(i + 1, min(i + 1 + READ_AHEAD, len(order))):
                    nxt = order[j].raw
                    if nxt not in ahead_plans and not any(p in failed for p in table_deps(nxt)):
                        ahead_plans[nxt] = start(order[j])

            try:
                res = ingest_table(wh, src, spec, resync=_resyncs(resync, spec), progress=progress, run_id=run_id,
                                   plan=plan, ahead=ahead, source_clock=clock, defer=deferred)
            except Exception as err:
                failed.add(spec.raw)
                yield spec, err
                continue
            yield spec, res
    finally:
        for plan in ahead_plans.values():
            if isinstance(plan, _Plan):
                plan.close()
        for counted in early.values():  # tables not started (a parent failed)
            counted.release()


def _start_table(wh: Warehouse, src: PostgresSource, spec: TableSpec, snap: "_Snapshot", *, resync: bool,
                 counted: SnapshotCount | None) -> _Plan | TableResult | Exception:
    """``spec``'s plan with its extraction started, or the error (reported at the table's turn; its
    early count released)."""
    try:
        return _start(_plan(wh, src, spec, resync=resync, snapshot=snap), wh, src, counted=counted)
    except SourceTableMissing:
        # reported, skipped, failing nothing; staging yields the table empty with the contract's columns
        if counted is not None:
            counted.release()
        return TableResult(spec.raw, "", mode="absent", status="absent")
    except Exception as err:
        if counted is not None:
            counted.release()
        return err


def _skipped(spec: TableSpec, parent: str) -> Skipped:
    return Skipped(f"raw.{spec.raw}: not ingested because raw.{parent}, which it reads, failed in this run; it "
                   "is ingested once that table is")


LANES = 2


def _in_lanes(wh: Warehouse, src: PostgresSource, order: list[TableSpec], snap: "_Snapshot", *,
              resync: "bool | Collection[str]", progress: Progress, run_id: str | None, clock,
              early: dict[str, SnapshotCount] | None = None, defer: "list[_Bookkeeping] | None" = None
              ) -> Iterator[tuple[TableSpec, TableResult | Exception]]:
    """The run's tables in ``LANES`` threads, each with its own DuckDB connection
    (``DuckDBWarehouse.lane``), its own transactions and its own extraction.

    One table after another left cores idle where a table ends and the next begins, and the largest
    table (lead_activities, two thirds of the rows) ran alone on the critical path of a first load
    (medium tier, 24 tables: 12.35 s against 13.4 s). An incremental run overlaps one table's DuckDB
    statements with another's source queries (a day: 1.19 s against 1.35 s). A lane takes the
    ready table (its parents committed: the gate's reference rules and cascades read them) that
    weighs most: its size on the source plus the sizes of the tables waiting on it. Ties keep the
    given order. Results come back on this thread, in the order tables finish; so do progress
    messages (Dagster's logger is called from the thread that runs the step). A table counted early
    (``early``: its count began with the run) reads its rows in that count's snapshot, as in one lane."""
    import queue
    import threading

    names = {s.raw for s in order}
    size = {s.raw: getattr(snap.source_tables.get(s.source), "bytes", 0) for s in order}

    @functools.cache
    def weight(table: str) -> int:
        return size.get(table, 0) + sum(weight(s.raw) for s in order if s.raw != table and table in table_deps(s.raw))

    cond = threading.Condition()
    taken: set[str] = set()
    done: set[str] = set()
    failed: set[str] = set()
    stop = threading.Event()
    out: "queue.Queue[tuple]" = queue.Queue()

    def ready() -> TableSpec | None:  # called holding cond
        while not stop.is_set():
            pending = [s for s in order if s.raw not in taken]
            if not pending:
                return None
            can = [s for s in pending if all(p in done or p not in names or p == s.raw for p in table_deps(s.raw))]
            if can:
                return max(can, key=lambda s: weight(s.raw))  # the first of equals: the given order
            cond.wait()
        return None

    def lane(lw) -> None:
        try:
            while True:
                with cond:
                    spec = ready()
                    if spec is None:
                        return
                    taken.add(spec.raw)
                    broken = [p for p in table_deps(spec.raw) if p in failed]
                    counted = early.pop(spec.raw, None) if early else None
                result: TableResult | Exception
                if broken:
                    if counted is not None:
                        counted.release()
                    result = _skipped(spec, broken[0])
                else:
                    result = _start_table(lw, src, spec, snap, resync=_resyncs(resync, spec), counted=counted)
                    if isinstance(result, _Plan):
                        try:
                            result = ingest_table(lw, src, spec, resync=_resyncs(resync, spec), run_id=run_id,
                                                  plan=result, progress=lambda m: out.put(("progress", m)),
                                                  source_clock=clock, defer=defer)
                        except Exception as err:
                            result = err
                with cond:
                    done.add(spec.raw)
                    if isinstance(result, Exception):
                        failed.add(spec.raw)
                    cond.notify_all()
                out.put(("result", spec, result))
        except BaseException as err:  # a bug, not a table's failure: raised on the caller's thread
            out.put(("crash", err))
        finally:
            lw.close()
            out.put(("end",))

    wh.execute("SET threads = 1")  # as ``_one_warehouse_thread``: the other core decodes
    threads = [threading.Thread(target=lane, args=(wh.lane(),), name=f"ingest-lane-{i}", daemon=True)
               for i in range(LANES)]
    for t in threads:
        t.start()
    try:
        ended = 0
        while ended < len(threads):
            item = out.get()
            if item[0] == "end":
                ended += 1
            elif item[0] == "progress":
                progress(item[1])
            elif item[0] == "crash":
                raise item[1]
            else:
                yield item[1], item[2]
    finally:
        stop.set()  # a caller that stops early: the lanes finish the tables they hold, start no other
        with cond:
            cond.notify_all()
        for t in threads:
            t.join()
        for counted in (early or {}).values():  # tables not started (a parent failed, the caller stopped)
            counted.release()
        wh.execute("RESET threads")


def _parents_first(specs: list[TableSpec]) -> list[TableSpec]:
    """``specs`` in their order, moved only where a table would come before a table it reads."""
    names = {s.raw for s in specs}
    done: set[str] = set()
    out: list[TableSpec] = []
    pending = list(specs)
    while pending:
        for s in pending:
            if all(p in done or p not in names or p == s.raw for p in table_deps(s.raw)):
                break
        else:  # a cycle: keep the given order
            s = pending[0]
        pending.remove(s)
        done.add(s.raw)
        out.append(s)
    return out


def ingest_table(wh: Warehouse, src: PostgresSource, spec: TableSpec, *, resync: bool = False,
                 progress: Progress = lambda _: None, run_id: str | None = None, plan: "_Plan | None" = None,
                 ahead: Callable[[], None] = lambda: None, source_clock: dt.datetime | None = None,
                 defer: "list[_Bookkeeping] | None" = None) -> TableResult:
    """Ingest one table through the gate (``quality.gate``); raises IngestBlocked when it blocks.

    Check results (one row per rule of the table's suite) are appended to ``ops.check_results`` in
    the table's transaction. ``defer``: where a run (``ingest_tables``) collects the bookkeeping of
    tables whose load changed nothing, written later in one transaction (``_write_bookkeeping``).
    """
    res = _ingest(wh, src, spec, resync=resync, progress=progress, plan=plan, ahead=ahead, run_id=run_id,
                  source_clock=source_clock, defer=defer)
    if res.status == "blocked":
        # the table's transaction was rolled back; extract again and keep only the quarantined rows
        res = _ingest(wh, src, spec, resync=resync, progress=progress, blocked=res, run_id=run_id,
                      source_clock=source_clock)
    if res.status == "blocked":
        top = ", ".join(f"{n} ({c:,})" for n, c in sorted(res.rule_failures.items(), key=lambda x: -x[1])[:3])
        raise IngestBlocked(
            f"raw.{spec.raw}: blocked by the ingest gate: {res.rows_quarantined:,} of {res.rows_extracted:,} "
            f"extracted rows ({res.rows_quarantined / max(res.rows_extracted, 1):.1%}) broke the contract, over the "
            f"threshold of {res.threshold:.1%} (and at least {res.min_rows:,} rows); nothing of raw.{spec.raw} was merged. Failing rules: {top}. "
            f"The rows are in quarantine.{spec.raw} (batch {res.batch_id}); fix them in the source or raise "
            f"CRM_QUARANTINE_THRESHOLD (e.g. {spec.raw}=0.5) or CRM_QUARANTINE_MIN_ROWS", res)
    return res


@contextlib.contextmanager
def _one_warehouse_thread(wh: Warehouse):
    """DuckDB bulk-loads a table with one thread: the source's server process and the extraction
    thread (ADBC decoding COPY binary) need the machine's other cores. Measured on the medium tier
    on 2 cores: a full ingest 12.8 s with one DuckDB thread against 13.7 s with two. Incremental
    merges are small: they keep DuckDB's default (SET and RESET would cost more than they save)."""
    if wh.kind != "duckdb" or getattr(wh, "in_lane", False):  # lanes: set once for all of them
        yield
        return
    wh.execute("SET threads = 1")
    try:
        yield
    finally:
        wh.execute("RESET threads")


@dataclass
class _Bookkeeping:
    """What a table's load that changed nothing writes to ``ops``, held for ``_write_bookkeeping``."""
    table: str
    state: dict        # ops.ingest_state's columns but table_name (the row exists: it is updated)
    checks: list[dict]  # ops.check_results rows
    batch: dict        # the ops.ingest_batches row


def _write_bookkeeping(wh: Warehouse, items: list[_Bookkeeping]) -> None:
    """The deferred ``ops`` rows of ``items`` in one transaction: each table's state row updated, its
    check rows and batch row appended. On DuckDB each set goes in as one Arrow table and statement."""
    if not items:
        return
    from quality.check_results import record

    states = [dict(table_name=i.table, **i.state) for i in items]
    batches = [i.batch for i in items]
    with wh.transaction():
        if wh.kind == "duckdb":
            staged = _stage(wh, "deferred_state", pa.Table.from_pylist(states))
            try:
                wh.execute("UPDATE ops.ingest_state AS s SET " + ", ".join(
                    f"{c} = CAST(d.{c} AS {t})" for c, t in STATE_COLUMNS if c != "table_name")
                    + f" FROM {staged} AS d WHERE s.table_name = d.table_name")
            finally:
                wh.unstage(staged)
            staged = _stage(wh, "deferred_batches", pa.Table.from_pylist(batches))
            try:
                wh.execute("INSERT INTO ops.ingest_batches (" + ", ".join(c for c, _ in BATCH_COLUMNS) + ") SELECT "
                           + ", ".join(f"CAST({c} AS {t})" for c, t in BATCH_COLUMNS) + f" FROM {staged}")
            finally:
                wh.unstage(staged)
        else:  # one UPDATE from arrays, one per column
            wh.execute("UPDATE ops.ingest_state AS s SET " + ", ".join(
                f"{c} = d.{c}" for c, _ in STATE_COLUMNS if c != "table_name") + " FROM unnest("
                + ", ".join(f"?::{wh.sql_type(t)}[]" for _, t in STATE_COLUMNS) + ") AS d("
                + ", ".join(c for c, _ in STATE_COLUMNS) + ") WHERE s.table_name = d.table_name",
                [[row[c] for row in states] for c, _ in STATE_COLUMNS])
            for row in batches:
                insert_row(wh, "ops.ingest_batches", row)
        record(wh, [c for i in items for c in i.checks], in_transaction=True)


def gate_check_rows(wh: Warehouse, res: TableResult, run_id: str | None) -> list[dict]:
    """One ops.check_results row per rule of the table's suite for this batch (+ row count, freshness)."""
    from quality.check_results import check_row

    now = dt.datetime.now(dt.timezone.utc)
    samples: dict[str, list[str]] = {}
    if res.rows_quarantined:
        q = wh.query(f"SELECT _rules, _key FROM quarantine.{res.table} WHERE _batch_id = ? LIMIT 1000",
                     (res.batch_id,))
        for rules, key in q.iter_rows():
            for r in rules.split(","):
                if len(samples.setdefault(r, [])) < 5:
                    samples[r].append(key)
    def row(name: str, kind: str, passed: bool, message: str, failing: int = 0, sample: str | None = None) -> dict:
        return check_row(asset=f"raw/{res.table}", name=name, kind=kind, passed=passed, message=message,
                         failing_count=failing, failing_sample=sample, run_id=run_id, now=now)

    blocked = " - batch blocked" if res.status == "blocked" else ""
    rows = [row(name, "ingest_gate", not n, (f"{n:,} rows quarantined (batch {res.batch_id})" if n else "ok") + blocked,
                n, json.dumps(samples.get(name, [])) if n else None)
            for name in res.rules_checked for n in [res.rule_failures.get(name, 0)]]
    if res.source_rows is not None:
        held = f" + {res.quarantined_absent:,} held in quarantine" if res.quarantined_absent else ""
        same = res.rows_live + res.quarantined_absent == res.source_rows
        rows.append(row("row_count", "row_count", same,
                        f"raw {res.rows_live:,} live{held} vs the source's {res.source_rows:,} rows (counted as the "
                        "extraction began" + ("" if same else "; rows written to the source during the run also "
                                              "differ it") + ")",
                        abs(res.source_rows - res.rows_live - res.quarantined_absent)))
    if (fresh := freshness(res)) is not None:
        rows.append(row("freshness", "freshness", fresh[0], fresh[1], 0 if fresh[0] else 1))
    rows += [row(name, "ingest_warning", False, f"{n:,} rows hold values the contract does not document "
                 f"({', '.join(values)}); the source does not enforce them, so they were loaded as they are",
                 n, json.dumps(values)) for name, (n, values) in sorted(res.warnings.items())]
    if res.missing_columns:
        rows.append(row("contract_columns", "contract_columns", False,
                        f"the source has no column {', '.join(res.missing_columns)} (nor a known rename): staging "
                        "yields them null", len(res.missing_columns), json.dumps(res.missing_columns)))
    rows += [row(name, "ingest_gate", True, "held by the source's own constraint (its primary key, a CHECK or an "
                 "enum type)") for name in res.gate_enforced]
    rows += [row(name, "ingest_gate", True, f"not evaluated: {why}") for name, why in res.gate_skipped]
    return rows


def freshness(res: TableResult) -> tuple[bool, str] | None:
    """(passed, message) for a table the application writes daily (``FRESHNESS_TABLES``), else None:
    its newest row (the watermark) must be at most CRM_FRESHNESS_HOURS behind the source's clock."""
    from quality.contract import FRESHNESS_TABLES

    if res.table not in FRESHNESS_TABLES or res.status == "blocked" or res.source_clock is None:
        return None
    hours = float(os.environ.get("CRM_FRESHNESS_HOURS", "48"))
    if res.cursor_value is None:
        return False, f"raw.{res.table} has no rows: the source has written nothing"
    lag = res.source_clock - res.cursor_value
    lag_h = lag.total_seconds() / 3600
    if lag_h > hours:
        return False, (f"the newest row of {res.table} is {lag_h:,.0f} hours older than the source's clock "
                       f"({res.cursor_value:%Y-%m-%d %H:%M} vs {res.source_clock:%Y-%m-%d %H:%M} UTC), over "
                       f"CRM_FRESHNESS_HOURS={hours:g}: has the source stopped changing?")
    return True, f"newest row {lag_h:,.1f} hours behind the source's clock (limit {hours:g})"


def _json_row(wh: Warehouse, columns: list[str], n_flags: int) -> str:
    if wh.kind == "duckdb":
        return "CAST(to_json(struct_pack(" + ", ".join(f'"{c}" := x."{c}"' for c in columns) + ")) AS VARCHAR)"
    flags = ", ".join(f"'_f{i}'" for i in range(n_flags))
    return f"CAST(to_jsonb(x) - ARRAY[{flags}]::text[] AS TEXT)"


@dataclass
class _Plan:
    """What a table's load needs before its extraction can start, read without writing anything (so
    the next table's plan can be made, and its extraction started, inside the current table's
    transaction: ``ingest_tables``). The extraction and the source's row count run from ``start``."""
    spec: TableSpec
    st: SourceTable
    state: list[tuple]
    tables: set[tuple[str, str]]
    existing_columns: dict[str, str]
    quarantine_columns: dict[str, str]
    exists: bool                  # raw.<table> exists and is kept (not a --full-refresh)
    cursor: object                # the stored watermark the extraction starts from (lookback aside), or None
    unresolved: bool
    where: str
    params: tuple
    sizes: dict[str, int]         # raw tables' estimated row counts (DuckDB)
    columns: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)  # of raw's tables, as planned
    batches: object = None        # the started extraction (Prefetch)
    source_count: object = None   # Future of the source's row count, or None

    def close(self) -> None:
        """Stop a started extraction that will not be loaded."""
        if self.batches is not None:
            self.batches.close()
        if self.source_count is not None:
            self.source_count.cancel()


def _plan(wh: Warehouse, src: PostgresSource, spec: TableSpec, *, resync: bool,
          only_quarantine: bool = False, snapshot: "_Snapshot | None" = None) -> _Plan:
    from quality.contract import contract_tables

    st = snapshot.source_tables.get(spec.source) if snapshot is not None else None
    if st is None:
        st = src.describe(spec.source, contract_key=contract_tables().get(spec.raw, {}).get("key", ()))
    elif isinstance(st, Exception):
        raise st
    if st.rls_hides_rows:
        raise IngestError(f"raw.{spec.raw}: {st.rls_hides_rows}; nothing of raw.{spec.raw} was read or flagged")
    spec = read_mode(spec, st.column_names())  # the source's own columns decide the cursor
    if snapshot is not None and snapshot.covers(spec.raw):
        state = snapshot.states.get(spec.raw, [])
        tables, sizes = snapshot.tables, snapshot.sizes
        existing_columns = snapshot.columns.get(("raw", spec.raw), {})
        quarantine_columns = snapshot.columns.get(("quarantine", spec.raw), {})
        unresolved = snapshot.unresolved.get(spec.raw, False)
        columns = snapshot.columns
    else:
        state = wh.rows("SELECT cursor_value, columns_json, updated_at FROM ops.ingest_state WHERE table_name = ?",
                        (spec.raw,))
        tables, existing_columns, quarantine_columns, sizes = _catalog(wh, spec.raw)
        columns = {("raw", spec.raw): existing_columns}
        unresolved = ("quarantine", spec.raw) in tables and int(wh.scalar(
            f"SELECT count(*) FROM quarantine.{spec.raw} WHERE _resolved_batch_id IS NULL")) > 0
    # raw is never dropped here: a resync reads the whole source table (no cursor) and merges it, so rows
    # raw holds and the source no longer has stay, flagged deleted (``reset_raw`` is the one way to drop)
    exists = bool(existing_columns)
    cursor = state[0][0] if state and exists and not resync else None
    where, params = "", ()
    if spec.kind != "full" and cursor is not None:
        where, params = f'"{spec.cursor}" >= $1', (cursor - lookback(),)
    if unresolved and where and len(st.primary_key) == 1 and not only_quarantine:
        # rows held in quarantine are read again until they pass (a reference that has
        # arrived since, a time that is no longer ahead) or are fixed in the source
        keys = [k for (k,) in wh.rows(f"SELECT DISTINCT _key FROM quarantine.{spec.raw} WHERE _resolved_batch_id "
                                      f"IS NULL LIMIT {RETRY_MAX + 1}")]
        if keys and len(keys) <= RETRY_MAX:
            where = f'({where}) OR "{st.primary_key[0]}" IN ({", ".join(_q(k) for k in keys)})'
    if not st.key_enforced:
        # the source lost its PRIMARY KEY: every copy of a duplicated key is extracted too,
        # ordered by key so the copies meet in one batch, where the key rule quarantines them
        k = ", ".join(f'"{c}"' for c in st.primary_key)
        dup = f"({k}) IN (SELECT {k} FROM {st.name} GROUP BY {k} HAVING count(*) > 1)"
        where = f"({where}) OR {dup}" if where else ""
        where = (where or "true") + f" ORDER BY {k}"
    return _Plan(spec, st, state, tables, existing_columns, quarantine_columns, exists, cursor, unresolved, where,
                 params, sizes, columns)


def _start(plan: _Plan, wh: Warehouse, src: PostgresSource, *, only_quarantine: bool = False,
           counted: SnapshotCount | None = None) -> _Plan:
    """Start the plan's extraction (a thread reading ahead) and, unless the table is loaded for the
    first time, the source's row count (another connection): both run while the caller works.
    ``counted``: the count already started (``ingest_tables``' early counts); the extraction reads
    in its snapshot."""
    empty = not plan.exists and plan.st.key_enforced
    if empty or only_quarantine:
        if counted is not None:
            counted.release()
        counted = None
        plan.source_count = None
    else:
        plan.source_count = counted if counted is not None else src.count_soon(plan.st)
    plan.batches = src.prefetched(plan.st, plan.where, plan.params, native=wh.kind == "duckdb", counted=counted)
    return plan


def _ingest(wh: Warehouse, src: PostgresSource, spec: TableSpec, *, resync: bool, progress: Progress,
            blocked: TableResult | None = None, plan: _Plan | None = None,
            ahead: Callable[[], None] = lambda: None, run_id: str | None = None,
            source_clock: dt.datetime | None = None, defer: "list[_Bookkeeping] | None" = None) -> TableResult:
    """Load one table. ``plan``: made (and started) ahead by ``ingest_tables``; ``ahead`` is called
    once this table's extraction has been read to its end (the next table's plan starts then)."""
    from quality.check_results import record
    from quality.gate import QUARANTINE_COLUMNS, compile_gate, min_rows, run_time, threshold

    t0 = time.perf_counter()
    only_quarantine = blocked is not None
    res = TableResult(spec.raw, blocked.batch_id if blocked else new_batch_id(f"raw_{spec.raw}"))
    res.threshold = threshold(spec.raw)
    res.min_rows = min_rows(spec.raw)
    now = dt.datetime.now(dt.timezone.utc)
    res.source_clock = source_clock or src.business_clock() or dt.datetime.now(dt.timezone.utc)
    run_at = run_time(res.source_clock)
    ensure_ops(wh)
    bulk = contextlib.ExitStack()
    source_count = None
    try:
        with bulk, wh.transaction():
            if plan is None:
                plan = _start(_plan(wh, src, spec, resync=resync, only_quarantine=only_quarantine),
                              wh, src, only_quarantine=only_quarantine)
            bulk.callback(plan.close)  # an extraction not read to its end is stopped
            st, state, tables, spec = plan.st, plan.state, plan.tables, plan.spec
            res.kind, res.cursor_column = spec.kind, spec.cursor
            res.missing_columns = missing_contract_columns(spec.raw, st.column_names())
            res.cursor_indexed = spec.cursor in st.indexed if spec.cursor else None
            res.source_bytes = st.bytes
            if any(("raw", p) not in tables for p in table_deps(spec.raw)):
                # planned (reading ahead) before a table it reads was loaded: the gate's reference
                # rules and the cascades must see the raw tables as they are now
                tables = _catalog_all(wh, spec.raw)[0]
            existing_columns, unresolved = plan.existing_columns, plan.unresolved
            source_count = plan.source_count
            exists = plan.exists
            previous = json.loads(state[0][1]) if state and exists else None
            cursor = plan.cursor
            if only_quarantine:
                res.mode = "blocked"
            elif not exists:
                _create_raw(wh, spec, st)
                res.mode = "full"
            else:
                res.columns_added = _drift(wh, spec, st, previous, existing_columns)
                if spec.kind == "full" or cursor is None:
                    res.mode = "full-compare"
            # a first load inserts without key checks, unless the source no longer enforces the key
            empty = not exists and st.key_enforced
            if not exists:
                bulk.enter_context(_one_warehouse_thread(wh))
            quarantine_ready = False
            if ("quarantine", spec.raw) in tables:
                # columns added since the table was created
                create_table(wh, f"quarantine.{spec.raw}", QUARANTINE_COLUMNS, have=plan.quarantine_columns)
                quarantine_ready = True
            names = [c.name for c in st.columns]
            cols = ", ".join(f'"{c}"' for c in names)
            key_join = " AND ".join(f'r."{k}" = s."{k}"' for k in st.primary_key)
            failed_key = " AND ".join(f'x."{k}" = s."{k}"' for k in st.primary_key)  # a batch row s among flagged x
            differs = " OR ".join(f'r."{c.name}" IS DISTINCT FROM s."{c.name}"' for c in st.columns
                                  if c.name not in st.primary_key) or "false"
            raw_tables = {t for sch, t in tables if sch == "raw"}
            typed_all = flagged = None  # built from the first batch's schema (``_cast_select``)
            gate = compile_gate(wh.kind, spec.raw, names, run_at=run_at, existing=raw_tables,
                                key_enforced=st.key_enforced, value_sets=dict(st.value_sets),
                                types={c.name: c.pg_type for c in st.columns})
            res.rules_checked = [r.name for r in gate.rules]
            res.gate_skipped = gate.skipped
            res.gate_enforced = gate.enforced
            key_text = _key_text(st.primary_key, "x")
            # reference rules to large parents narrow the parent to the batch's keys first; a first load's
            # batches are as large as the parents, which are hashed as usual
            narrow = () if empty else {t for t, n in plan.sizes.items() if n >= NARROW_PARENT_ROWS}
            # DuckDB, a table raw holds already: only the rows it does not hold as they are are gated and
            # merged (``_changed_rows``); a source without its primary key keeps the whole batch's path
            # (the uniqueness rule needs every copy of a key)
            changed_only = (wh.kind == "duckdb" and not empty and not only_quarantine and st.key_enforced
                            and spec.kind != "full" and cursor is not None)
            max_cursor = cursor
            wrote = 0  # rows of quarantine changed (raw's are res.rows_written and res.rows_deleted)
            t_extract = 0.0
            batches = plan.batches
            started_ahead = False
            while True:
                te = time.perf_counter()
                batch = next(batches, None)
                t_extract += time.perf_counter() - te
                if batch is None:
                    break
                if not started_ahead and getattr(batches, "drained", lambda: False)():
                    ahead()  # the last batch is here: the next tables' extractions start before it merges
                    started_ahead = True
                res.rows_extracted += batch.num_rows
                _stage(wh, "raw_batch", batch)
                if typed_all is None:
                    typed_all = f"(SELECT {_cast_select(wh, st, arrives=batch.schema)} FROM raw_batch s)"
                    flagged = gate.flagged(typed_all, narrow=narrow)
                typed = typed_all
                tg = time.perf_counter()
                if gate.warnings and not only_quarantine:
                    for name, (n, values) in gate.warning_counts(wh, typed_all).items():
                        was = res.warnings.get(name, (0, []))
                        res.warnings[name] = (was[0] + n, list(dict.fromkeys(was[1] + values))[:5])
                failing = 0
                inserted = None
                changed = lo = None
                fl = flagged  # the flagged relation the gate's failures are read from
                if changed_only and (lo := _batch_low(batch, spec)) is not None:
                    # only the rows whose version raw does not hold live go through the gate and the merge
                    # (``_changed_rows``): a batch that brings nothing new costs this one statement. They
                    # stay in DuckDB, in a temporary table of the lane's connection, typed as raw is: an
                    # Arrow round trip through Python cost 3-6 ms more a table (export, staging again)
                    sql, p = _changed_rows(spec, st, typed_all, lo, cursor)
                    changed = wh.execute_count(f"CREATE OR REPLACE TEMP TABLE raw_changed AS {sql}", p)
                    if changed:
                        typed = f"(SELECT {', '.join(f'x.{_qi(c)}' for c in names)} FROM raw_changed x)"
                        fl = gate.flagged(typed, joined=True)
                        if gate.rules:
                            failing = int(wh.scalar(f"SELECT count(*) FROM {fl} x WHERE {gate.any_fails()}"))
                elif gate.rules and empty and not only_quarantine:
                    # a first load: the gate's predicates filter the INSERT itself, one pass over the
                    # batch; only a batch with failing rows is read again (rolled back if it blocks)
                    inserted = wh.execute_count(
                        f"INSERT INTO raw.{spec.raw} ({cols}, _ingested_at, _batch_id) SELECT {cols}, ?, ? "
                        f"FROM {flagged} x WHERE NOT ({gate.any_fails()})", (now, res.batch_id))
                    failing = batch.num_rows - inserted
                    tg = time.perf_counter()  # gate_seconds: the gate's own statements, not this insert
                elif gate.rules:
                    failing = int(wh.scalar(f"SELECT count(*) FROM {flagged} x WHERE {gate.any_fails()}"))
                if failing:
                    for name, n in gate.failures(wh, fl).items():
                        res.rule_failures[name] = res.rule_failures.get(name, 0) + n
                    res.rows_quarantined += failing
                    if not quarantine_ready:
                        create_table(wh, f"quarantine.{spec.raw}", QUARANTINE_COLUMNS)
                        quarantine_ready = True
                    rules, reasons = gate.listed("name", ","), gate.listed("reason", "; ")
                    row = _json_row(wh, names, len(gate.rules))
                    if unresolved:
                        # a row already held, unchanged, by a run that was not blocked was judged then:
                        # read again (lookback, retry) it does not count towards this run's threshold
                        res.rows_retried_failing += int(wh.query(
                            f"SELECT count(*) AS n FROM {fl} x WHERE ({gate.any_fails()}) AND EXISTS (SELECT 1 "
                            f"FROM quarantine.{spec.raw} o WHERE o._resolved_batch_id IS NULL AND NOT coalesce(o._blocking, false) "
                            f"AND o._key = {key_text} AND o._row = {row})")["n"][0])
                    wh.execute(
                        f"INSERT INTO quarantine.{spec.raw} (_batch_id, _rules, _reasons, _key, _row, _quarantined_at, "
                        f"_blocking) SELECT ?, q._rules, q._reasons, q._key, q._row, ?, {'true' if only_quarantine else 'false'} "
                        f"FROM (SELECT {rules} AS _rules, "
                        f"{reasons} AS _reasons, {key_text} AS _key, {row} AS _row FROM {fl} x "
                        f"WHERE {gate.any_fails()}) q WHERE NOT EXISTS (SELECT 1 FROM quarantine.{spec.raw} o "
                        "WHERE o._resolved_batch_id IS NULL AND o._key = q._key AND o._row = q._row)",
                        (res.batch_id, now))
                    typed = (f"(SELECT {', '.join(f'x.{_qi(c)}' for c in names)} FROM {fl} x "
                             f"WHERE NOT ({gate.any_fails()}))")
                res.gate_seconds += time.perf_counter() - tg
                if only_quarantine:
                    wh.unstage("raw_batch")
                    continue
                # the batch's rows but those failing: the cursor and the quarantine's resolution read them
                passing = typed
                if changed is not None:  # ``typed`` holds the changed rows only
                    passing = typed_all if not failing else (
                        f"(SELECT s.* FROM {typed_all} s WHERE NOT EXISTS (SELECT 1 FROM {fl} x WHERE "
                        f"{failed_key} AND ({gate.any_fails()})))")
                if spec.cursor:
                    if failing:
                        m = wh.scalar(f'SELECT max(s."{spec.cursor}") FROM {passing} s')
                    else:
                        m = pc.max(batch.column(spec.cursor)).as_py()
                    if m is not None and (max_cursor is None or m > max_cursor):
                        max_cursor = m
                if changed is not None:
                    res.rows_written += _write_changed(wh, spec, st, changed - failing, typed, lo, now,
                                                       res.batch_id)
                elif inserted is not None:
                    res.rows_written += inserted
                elif empty:
                    wh.execute(f"INSERT INTO raw.{spec.raw} ({cols}, _ingested_at, _batch_id) "
                               f"SELECT {cols}, ?, ? FROM {typed} t", (now, res.batch_id))
                    res.rows_written += batch.num_rows - failing
                else:
                    # stale copies (changed, or flagged deleted and now back) leave raw, then every
                    # staged row whose key raw no longer holds goes in: two statements, no temp table
                    keys = ", ".join(f'"{k}"' for k in st.primary_key)
                    s_keys = ", ".join(f's."{k}"' for k in st.primary_key)
                    lo = _batch_low(batch, spec)
                    stale = f"SELECT {s_keys} FROM {typed} s JOIN raw.{spec.raw} r ON {key_join}"
                    if lo is not None:
                        # Stored copies are compared column by column only where their cursor is not
                        # before the batch's earliest: lately written, so zone maps skip raw's other row
                        # groups, which would otherwise all be read and decompressed, every column of
                        # them. A mutable row's stored copy with another cursor value is stale, found
                        # from raw's key, cursor and _deleted_at columns alone; an append-only row keeps
                        # its event time, so its stored copy lies in that recent part. Either way, after
                        # this DELETE every stored copy of a batch key has the batch's cursor value, and
                        # the INSERT's key check reads only the recent part of raw as well (for the
                        # 3.5 M rows of lead_activities 14 ms instead of 60 ms hashing every key).
                        c = _qi(spec.cursor)
                        if spec.kind == "append":
                            stale += f" AND r.{c} >= ? WHERE r._deleted_at IS NOT NULL OR {differs}"
                        else:
                            stale += (f" WHERE r._deleted_at IS NOT NULL OR r.{c} IS DISTINCT FROM s.{c} UNION ALL "
                                      f"{stale} WHERE r.{c} >= ? AND ({differs})")
                        recent_params = (lo,)
                        fresh, fresh_params = f" AND r.{c} >= ?", (lo,)
                    else:  # no cursor (compared in full), or rows without a cursor value
                        stale += f" WHERE r._deleted_at IS NOT NULL OR {differs}"
                        recent_params, fresh, fresh_params = (), "", ()
                    wh.execute(f"DELETE FROM raw.{spec.raw} WHERE ({keys}) IN ({stale})", recent_params)
                    res.rows_written += wh.execute_count(
                        f"INSERT INTO raw.{spec.raw} ({cols}, _ingested_at, _batch_id) SELECT {cols}, ?, ? "
                        f"FROM {typed} s WHERE NOT EXISTS (SELECT 1 FROM raw.{spec.raw} r WHERE {key_join}{fresh})",
                        (now, res.batch_id) + fresh_params)
                if unresolved:  # rows quarantined by earlier batches that now arrive clean
                    wrote += wh.execute_count(
                        f"UPDATE quarantine.{spec.raw} SET _resolved_batch_id = ? WHERE _resolved_batch_id "
                        f"IS NULL AND _key IN (SELECT {key_text} FROM {passing} x)", (res.batch_id,))
                if changed is not None:
                    wh.execute("DROP TABLE raw_changed")
                wh.unstage("raw_batch")
                elapsed = time.perf_counter() - t0
                progress(f"raw/{spec.raw}: {res.rows_extracted:,} rows read so far "
                         f"({rate(res.rows_extracted, elapsed)}, {elapsed:.0f} s)")
            res.extract_seconds = t_extract
            if not started_ahead:
                ahead()  # this table's extraction is done: the next table's may start
            if only_quarantine:
                res.status = "blocked"
                res.rows_quarantined = blocked.rows_quarantined
                res.rule_failures = blocked.rule_failures
                res.seconds = time.perf_counter() - t0
                record(wh, gate_check_rows(wh, res, run_id), in_transaction=True)
                insert_row(wh, "ops.ingest_batches", dict(
                    batch_id=res.batch_id, asset=f"raw/{spec.raw}", started_at=now,
                    finished_at=dt.datetime.now(dt.timezone.utc), rows_read=res.rows_extracted, rows_written=0,
                    rows_deleted=0, duplicates=0, rejected=res.rows_quarantined, status="blocked",
                    message=f"{res.rows_quarantined:,} rows broke the contract, over the threshold of {res.threshold}"))
                return res
            judged = res.rows_quarantined - res.rows_retried_failing
            if (judged and judged > res.threshold * (res.rows_extracted - res.rows_retried_failing)
                    and judged >= res.min_rows):
                res.status = "blocked"
                raise _Blocked()
            if quarantine_ready:  # rows a blocked run held are judged now: they count no more
                wrote += wh.execute_count(f"UPDATE quarantine.{spec.raw} SET _blocking = false WHERE _blocking")
            if not empty:
                res.source_rows = source_count.result()
                res.rows_deleted, res.rows_live, rows_deleted = _deletions(
                    wh, src, spec, st, now, res.batch_id, res.source_rows, raw_tables,
                    loaded_at=state[0][2] if state and exists else None,
                    raw_columns=plan.columns)
            else:
                res.source_rows = res.rows_extracted  # a first load reads the whole table in one snapshot
            if quarantine_ready and (unresolved or res.rows_quarantined):
                r_key = _key_text(st.primary_key, "r")
                res.quarantined_absent = int(wh.query(
                    f"SELECT count(DISTINCT q._key) AS n FROM quarantine.{spec.raw} q WHERE q._resolved_batch_id IS NULL "
                    f"AND NOT EXISTS (SELECT 1 FROM raw.{spec.raw} r WHERE r._deleted_at IS NULL AND {r_key} = q._key)"
                )["n"][0])
            if empty:  # a first load: every row written is live
                res.rows_live, rows_deleted = res.rows_written, 0
            res.cursor_value = max_cursor
            columns_json = json.dumps({c.name: c.pg_type for c in st.columns} | (
                {k: v for k, v in (previous or {}).items() if k not in {c.name for c in st.columns}}))
            state_row = dict(kind=spec.kind, cursor_column=spec.cursor, cursor_value=max_cursor,
                             columns_json=columns_json, last_batch_id=res.batch_id, rows_live=res.rows_live,
                             rows_deleted=rows_deleted, updated_at=now)
            checks = gate_check_rows(wh, res, run_id)
            res.seconds = time.perf_counter() - t0
            batch_row = dict(
                batch_id=res.batch_id, asset=f"raw/{spec.raw}", started_at=now,
                finished_at=dt.datetime.now(dt.timezone.utc), rows_read=res.rows_extracted,
                rows_written=res.rows_written, rows_deleted=res.rows_deleted, duplicates=0,
                rejected=res.rows_quarantined, status="success", message=res.mode)
            if (defer is not None and state and exists and columns_json == state[0][1] and not wrote
                    and not (res.rows_written or res.rows_deleted or res.rows_quarantined or res.columns_added)):
                # Nothing in raw or quarantine changed: the state row, check rows and batch row describe
                # no data, so they need not commit with it. The run writes them for all such tables in one
                # transaction at its end (a day: 12 of 26 tables; one transaction with an UPDATE and two
                # INSERTs each cost ~13 ms of CPU). A run killed before that leaves these tables' state
                # as the last run wrote it: their next load reads from the older watermark, as after a
                # failure, and finds the same rows.
                defer.append(_Bookkeeping(spec.raw, state_row, checks, batch_row))
                return res
            # an UPDATE where the plan read a state row, else an INSERT: DuckDB's INSERT … ON CONFLICT
            # DO UPDATE measured 4x slower than DELETE + INSERT, which is two statements
            if not state or not wh.execute_count(
                    "UPDATE ops.ingest_state SET " + ", ".join(f"{c} = ?" for c in state_row) + " WHERE table_name = ?",
                    (*state_row.values(), spec.raw)):
                insert_row(wh, "ops.ingest_state", dict(table_name=spec.raw, **state_row))
            record(wh, checks, in_transaction=True)
            insert_row(wh, "ops.ingest_batches", batch_row)
    except _Blocked:
        if source_count is not None:
            source_count.cancel()
        return res
    return res


def _catalog(wh: Warehouse, table: str
             ) -> tuple[set[tuple[str, str]], dict[str, str], dict[str, str], dict[str, int]]:
    """One catalogue query per table: every (schema, table) of raw and quarantine, the columns
    (name → type) of ``raw.<table>`` and ``quarantine.<table>`` (empty when absent), and the raw
    tables' estimated row counts (DuckDB's; empty on PostgreSQL, where nothing uses them)."""
    tables, columns, sizes = _catalog_all(wh, table)
    return tables, columns.get(("raw", table), {}), columns.get(("quarantine", table), {}), sizes


@dataclass
class _Snapshot:
    """The catalogue, the ingest state, the quarantine's open rows and the source's table descriptions
    as a run begins: four queries for the run instead of four per table (each 1-3 ms, 26 tables).
    A column added to the source during the run is extracted by the next run.

    A table's own entries (its state row, its raw and quarantine columns, its open quarantine rows)
    change only through its own load, which a run makes once, after planning it; so they stay true
    for that plan. What other tables' loads create during the run (a first load's raw table) is not
    in it: a table that is, or reads, a table absent from the snapshot is planned from the live
    catalogue (``covers``)."""
    tables: set[tuple[str, str]]
    columns: dict[tuple[str, str], dict[str, str]]
    sizes: dict[str, int]
    states: dict[str, list[tuple]]
    unresolved: dict[str, bool]
    # the source tables as the run began, described in one round trip (or the error describing one)
    source_tables: dict[str, SourceTable | Exception] = field(default_factory=dict)
    live: dict[str, int] = field(default_factory=dict)  # each table's live rows after its last load

    def covers(self, table: str) -> bool:
        return all(("raw", t) in self.tables for t in (table, *table_deps(table)))


def _snapshot(wh: Warehouse) -> _Snapshot:
    tables, columns, sizes = _catalog_all(wh)
    states: dict[str, list[tuple]] = {}
    live: dict[str, int] = {}
    for name, cursor_value, columns_json, rows_live, loaded_at in wh.rows(
            "SELECT table_name, cursor_value, columns_json, rows_live, updated_at FROM ops.ingest_state"):
        states[name] = [(cursor_value, columns_json, loaded_at)]
        live[name] = int(rows_live or 0)
    # the ingest's quarantine tables (quarantine.email_events, the webhook loader's, has no such column)
    held = sorted(t for sch, t in tables if sch == "quarantine"
                  and "_resolved_batch_id" in columns.get((sch, t), {}))
    unresolved = {}
    if held:
        unresolved = {t: n > 0 for t, n in wh.rows(" UNION ALL ".join(
            f"SELECT {_q(t)}, count(*) FROM quarantine.{t} WHERE _resolved_batch_id IS NULL" for t in held))}
    return _Snapshot(tables, columns, sizes, states, unresolved, live=live)


def _catalog_all(wh: Warehouse, table: str | None = None
                 ) -> tuple[set[tuple[str, str]], dict[tuple[str, str], dict[str, str]], dict[str, int]]:
    """Every table of raw and quarantine, the columns of each (of ``table``'s only, if given) and
    raw's estimated row counts (DuckDB's; empty on PostgreSQL, where nothing uses them)."""
    only = " AND table_name = ?" if table else ""
    if wh.kind == "duckdb":  # DuckDB's own catalogue functions: a third of information_schema's time
        sql = ("SELECT schema_name, table_name, NULL, CAST(estimated_size AS VARCHAR), 0 FROM duckdb_tables() "
               "WHERE database_name = current_database() AND schema_name IN ('raw', 'quarantine') UNION ALL "
               "SELECT schema_name, table_name, column_name, data_type, column_index FROM duckdb_columns() "
               f"WHERE database_name = current_database() AND schema_name IN ('raw', 'quarantine'){only} "
               "ORDER BY 1, 2, 5")
    else:
        sql = ("SELECT table_schema, table_name, NULL, NULL, 0 FROM information_schema.tables "
               "WHERE table_schema IN ('raw', 'quarantine') UNION ALL SELECT table_schema, table_name, column_name, "
               "data_type, ordinal_position FROM information_schema.columns "
               f"WHERE table_schema IN ('raw', 'quarantine'){only} ORDER BY 1, 2, 5")
    tables: set[tuple[str, str]] = set()
    columns: dict[tuple[str, str], dict[str, str]] = {}
    sizes: dict[str, int] = {}
    for schema, name, column, dtype, _ in wh.rows(sql, (table,) if table else ()):
        tables.add((schema, name))
        if column is not None:
            columns.setdefault((schema, name), {})[column] = dtype
        elif dtype is not None and schema == "raw":
            sizes[name] = int(dtype)
    return tables, columns, sizes


def _key_text(key: tuple[str, ...], alias: str) -> str:
    """A row's key as quarantine's ``_key`` spells it (compound keys joined by '|')."""
    return " || '|' || ".join(f'CAST({alias}."{k}" AS VARCHAR)' for k in key)


def _q(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _qi(name: str) -> str:
    return f'"{name}"'
