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

import datetime as dt
import json
import os
import time
from dataclasses import dataclass, field
from typing import Callable

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from ingest.ops import BATCH_COLUMNS, new_batch_id
from ingest.postgres_source import Column, PostgresSource, SourceTable
from ingest.tables import TableSpec
from ingest.warehouse import Warehouse, create_table, insert_row, table_columns

META_COLUMNS = (("_ingested_at", "TIMESTAMPTZ"), ("_batch_id", "VARCHAR"), ("_deleted_at", "TIMESTAMPTZ"))
STATE_COLUMNS = (
    ("table_name", "VARCHAR"), ("kind", "VARCHAR"), ("cursor_column", "VARCHAR"), ("cursor_value", "TIMESTAMPTZ"),
    ("columns_json", "VARCHAR"), ("last_batch_id", "VARCHAR"), ("rows_live", "BIGINT"), ("rows_deleted", "BIGINT"),
    ("updated_at", "TIMESTAMPTZ"),
)
Progress = Callable[[str], None]


class IngestError(RuntimeError):
    """A table could not be ingested; the message names the table and what to do."""


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


def ensure_ops(wh: Warehouse) -> None:
    if getattr(wh, "_ops_ready", False):
        return
    with wh.transaction():  # committed on its own: state tables exist even if the load fails
        create_table(wh, "ops.ingest_state", STATE_COLUMNS, ("table_name",))
        create_table(wh, "ops.ingest_batches", BATCH_COLUMNS, ("batch_id",))
    wh._ops_ready = True


def _target_type(wh: Warehouse, col: Column) -> str:
    return col.duck_type if wh.kind == "duckdb" else col.pg_type


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


def _cast_select(wh: Warehouse, st: SourceTable, alias: str = "s") -> str:
    return ", ".join(f'CAST({alias}."{c.name}" AS {_target_type(wh, c)}) AS "{c.name}"' for c in st.columns)


def _stage(wh: Warehouse, name: str, batch: pa.RecordBatch | pa.Table) -> str:
    table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
    return wh.stage(name, table if wh.kind == "duckdb" else pl.from_arrow(table))  # DuckDB reads Arrow as is


def _live(wh: Warehouse, table: str) -> int:
    return int(wh.query(f"SELECT count(*) AS n FROM raw.{table} WHERE _deleted_at IS NULL")["n"][0])


def _deletions(wh: Warehouse, src: PostgresSource, spec: TableSpec, st: SourceTable, now, batch_id: str,
               source_rows: int) -> int:
    """Flag raw rows deleted in the source; returns how many were flagged now.

    ``source_rows`` is the source's row count taken as the extraction began (on another
    connection, so the scan overlaps the extraction). After the merge raw's live keys include
    every key extracted, so equal live counts mean nothing was deleted. A row inserted in the
    source after the count makes the counts differ, which only sends the table to the key
    comparison below (against the source as it is then, so nothing is flagged wrongly); a row
    deleted between the count and the extraction is flagged by the next run. Rows removed by an
    ``ON DELETE CASCADE`` from a parent already flagged (parents are ingested first) are flagged
    from raw alone; only if the counts still differ are keys compared with the source
    (``_flag_deletes``).
    """
    before = _live(wh, spec.raw)
    if before == source_rows:
        return 0
    for column, parent, parent_column in st.cascades_from:
        parent_raw = parent.rpartition(".")[2]
        if not table_columns(wh, f"raw.{parent_raw}"):
            continue
        wh.execute(f'UPDATE raw.{spec.raw} SET _deleted_at = ?, _batch_id = ? WHERE _deleted_at IS NULL '
                   f'AND "{column}" IN (SELECT "{parent_column}" FROM raw.{parent_raw} WHERE _deleted_at IS NOT NULL)',
                   (now, batch_id))
    after = _live(wh, spec.raw)
    if after == source_rows:
        return before - after
    return before - after + _flag_deletes(wh, src, spec, st, now, batch_id, source_rows)


BUCKET_CHARS = 4  # 65,536 buckets of a UUID key's leading hex digits
# Below this many source rows every key is read (100k UUIDs: ~20 ms); above it the per-bucket counts
# (a GROUP BY over the key's text, ~0.4 s per million rows on the server) narrow the keys to read.
BUCKET_MIN_ROWS = 1_000_000


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
    else:
        keys_tbl = src.keys(st)
    staged = _stage(wh, "raw_keys", keys_tbl)
    match = " AND ".join(f'CAST({spec.raw}."{c}" AS VARCHAR) = k."{c}"' for c in st.primary_key)
    count_live = f"SELECT count(*) AS n FROM raw.{spec.raw} WHERE _deleted_at IS NULL"
    before = int(wh.query(count_live)["n"][0])
    wh.execute(f"UPDATE raw.{spec.raw} SET _deleted_at = ?, _batch_id = ? WHERE _deleted_at IS NULL{restrict} "
               f"AND NOT EXISTS (SELECT 1 FROM {staged} k WHERE {match})", (now, batch_id))
    after = int(wh.query(count_live)["n"][0])
    wh.unstage(staged)
    if uuid_key:
        wh.unstage("raw_key_buckets")
    return before - after


def ingest_table(wh: Warehouse, src: PostgresSource, spec: TableSpec, *, full_refresh: bool = False,
                 progress: Progress = lambda _: None) -> TableResult:
    t0 = time.perf_counter()
    st = src.describe(spec.source)
    res = TableResult(spec.raw, new_batch_id(f"raw_{spec.raw}"))
    now = dt.datetime.now(dt.timezone.utc)
    ensure_ops(wh)
    with wh.transaction():
        state = wh.query("SELECT cursor_value, columns_json FROM ops.ingest_state WHERE table_name = ?", (spec.raw,))
        existing_columns = table_columns(wh, f"raw.{spec.raw}")
        exists = bool(existing_columns)
        if full_refresh and exists:
            wh.execute(f"DROP TABLE raw.{spec.raw}")
            exists = False
        previous = json.loads(state["columns_json"][0]) if state.height and exists else None
        cursor = state["cursor_value"][0] if state.height and exists and not full_refresh else None
        if not exists:
            _create_raw(wh, spec, st)
            res.mode = "full"
        else:
            res.columns_added = _drift(wh, spec, st, previous, existing_columns)
        empty = not exists
        where, params = "", ()
        if spec.kind != "full" and cursor is not None:
            where, params = f'"{spec.cursor}" >= $1', (cursor - lookback(),)
        elif exists:
            res.mode = "full-compare"
        cols = ", ".join(f'"{c.name}"' for c in st.columns)
        key_join = " AND ".join(f'r."{k}" = s."{k}"' for k in st.primary_key)
        differs = " OR ".join(f'r."{c.name}" IS DISTINCT FROM s."{c.name}"' for c in st.columns
                              if c.name not in st.primary_key) or "false"
        max_cursor = cursor
        t_extract = 0.0
        source_count = src.count_soon(st) if not empty else None
        batches = src.prefetched(st, where, params, native=wh.kind == "duckdb")
        while True:
            te = time.perf_counter()
            batch = next(batches, None)
            t_extract += time.perf_counter() - te
            if batch is None:
                break
            res.rows_extracted += batch.num_rows
            if spec.cursor:
                m = pc.max(batch.column(spec.cursor)).as_py()
                if m is not None and (max_cursor is None or m > max_cursor):
                    max_cursor = m
            staged = _stage(wh, "raw_batch", batch)
            typed = f"(SELECT {_cast_select(wh, st)} FROM {staged} s)"
            if empty:
                wh.execute(f"INSERT INTO raw.{spec.raw} ({cols}, _ingested_at, _batch_id) "
                           f"SELECT {cols}, ?, ? FROM {typed} t", (now, res.batch_id))
                res.rows_written += batch.num_rows
            else:
                # stale copies (changed, or flagged deleted and now back) leave raw, then every
                # staged row whose key raw no longer holds goes in: two statements, no temp table
                keys = ", ".join(f'"{k}"' for k in st.primary_key)
                s_keys = ", ".join(f's."{k}"' for k in st.primary_key)
                # append-only rows keep their event time: their stored copies lie at or after the
                # batch's earliest cursor value, so only that recent part of raw is compared column
                # by column (zone maps skip the rest); the INSERT below still checks every key
                recent, recent_params = "", ()
                if spec.kind == "append" and (lo := pc.min(batch.column(spec.cursor)).as_py()) is not None:
                    recent, recent_params = f' AND r."{spec.cursor}" >= ?', (lo,)
                wh.execute(f"DELETE FROM raw.{spec.raw} WHERE ({keys}) IN (SELECT {s_keys} "
                           f"FROM {typed} s JOIN raw.{spec.raw} r ON {key_join}{recent} "
                           f"WHERE r._deleted_at IS NOT NULL OR {differs})", recent_params)
                res.rows_written += wh.execute_count(
                    f"INSERT INTO raw.{spec.raw} ({cols}, _ingested_at, _batch_id) SELECT {cols}, ?, ? FROM {typed} s "
                    f"WHERE NOT EXISTS (SELECT 1 FROM raw.{spec.raw} r WHERE {key_join})", (now, res.batch_id))
            wh.unstage(staged)
            progress(f"raw.{spec.raw}: {res.rows_extracted:,} rows read")
        res.extract_seconds = t_extract
        if not empty:
            res.rows_deleted = _deletions(wh, src, spec, st, now, res.batch_id, source_count.result())
        counts = wh.query(f"SELECT count(*) FILTER (WHERE _deleted_at IS NULL) AS live, "
                          f"count(*) FILTER (WHERE _deleted_at IS NOT NULL) AS deleted FROM raw.{spec.raw}")
        res.rows_live = int(counts["live"][0])
        res.cursor_value = max_cursor
        columns_json = json.dumps({c.name: c.pg_type for c in st.columns} | (
            {k: v for k, v in (previous or {}).items() if k not in {c.name for c in st.columns}}))
        wh.execute("DELETE FROM ops.ingest_state WHERE table_name = ?", (spec.raw,))
        insert_row(wh, "ops.ingest_state", dict(
            table_name=spec.raw, kind=spec.kind, cursor_column=spec.cursor, cursor_value=max_cursor,
            columns_json=columns_json, last_batch_id=res.batch_id, rows_live=res.rows_live,
            rows_deleted=int(counts["deleted"][0]), updated_at=now))
        res.seconds = time.perf_counter() - t0
        insert_row(wh, "ops.ingest_batches", dict(
            batch_id=res.batch_id, asset=f"raw/{spec.raw}", started_at=now, finished_at=dt.datetime.now(dt.timezone.utc),
            rows_read=res.rows_extracted, rows_written=res.rows_written, rows_deleted=res.rows_deleted,
            duplicates=0, rejected=0, status="success", message=res.mode))
    return res
