"""What a dbt build reads, as one digest: a build whose digest equals the last published build's is skipped.

The dbt step's models read nothing but the raw tables, the dbt project (models, macros, seeds,
snapshots, tests, ``dbt_project.yml``, the learned score's code) and the as-of day (``CRM_AS_OF``; no
model reads the clock). When none of those changed since the last published build, building again would
publish the same marts: the step skips dbt, the write–audit–publish copy, the checks and the docs, and
says so. A raw table's state is its columns, its row count, the newest ``_ingested_at`` (a changed or
revived row is re-inserted, so it carries a new one; an ingest that changed nothing writes nothing) and
its deleted flags (count and newest ``_deleted_at``).

The digest of each published build is kept in ``ops.dbt_builds`` (written into the audited build before
it is published, so the published file and its digest change together; on PostgreSQL after the publish).
A ``--full-refresh`` never skips.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path

from ingest.warehouse import Warehouse, create_table

ROOT = Path(__file__).resolve().parents[1]
BUILD_COLUMNS = (("run_id", "VARCHAR"), ("as_of", "VARCHAR"), ("fingerprint", "VARCHAR"), ("built_at", "TIMESTAMPTZ"))


def project_digest() -> str:
    """The dbt project's files (the ones whose change makes dbt parse again) and the learned score's code."""
    from orchestration.defs.dbt.project import SOURCES

    h = hashlib.sha256()
    for p in [*SOURCES, ROOT / "crm_warehouse" / "lead_conversion.py"]:
        files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else []
        for f in files:
            h.update(str(f.relative_to(ROOT)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def raw_state(wh: Warehouse) -> list[tuple]:
    """(table, columns, rows, newest _ingested_at, deleted rows, newest _deleted_at) of every raw table."""
    cols: dict[str, list[str]] = {}
    for table, column, dtype in wh.rows("SELECT table_name, column_name, data_type FROM information_schema.columns "
                                        "WHERE table_schema = 'raw' ORDER BY table_name, ordinal_position"):
        cols.setdefault(table, []).append(f"{column}:{dtype}")
    state = []
    for table, columns in sorted(cols.items()):
        have = {c.split(":")[0] for c in columns}
        if {"_ingested_at", "_deleted_at"} <= have:
            row = wh.rows(f"SELECT count(*), max(_ingested_at), count(_deleted_at), max(_deleted_at) FROM raw.{table}")[0]
        else:
            row = wh.rows(f"SELECT count(*) FROM raw.{table}")[0] + (None, None, None)
        state.append((table, ",".join(columns), *(str(v) for v in row)))
    return state


def fingerprint(wh: Warehouse, *, as_of: str, target: str) -> str:
    h = hashlib.sha256(f"{target}\0{as_of}\0{project_digest()}\0".encode())
    for row in raw_state(wh):
        h.update("\x1f".join(row).encode() + b"\0")
    return h.hexdigest()


def published_state(settings, *, as_of: str) -> tuple[str | None, tuple[str, str] | None]:
    """(this build's digest, (digest, run_id) of the last published build) read from the published warehouse;
    (None, None) when there is none yet."""
    from ingest.warehouse import open_published

    if settings.warehouse == "duckdb" and not settings.duckdb_path.exists():
        return None, None
    wh = open_published(settings)
    try:
        return fingerprint(wh, as_of=as_of, target=settings.warehouse), last_published(wh)
    finally:
        wh.close()


def last_published(wh: Warehouse) -> tuple[str, str] | None:
    """(fingerprint, run_id) of the newest published build, or None."""
    if not wh.rows("SELECT 1 FROM information_schema.tables WHERE table_schema = 'ops' AND table_name = 'dbt_builds'"):
        return None
    rows = wh.rows("SELECT fingerprint, run_id FROM ops.dbt_builds ORDER BY built_at DESC LIMIT 1")
    return (rows[0][0], rows[0][1]) if rows else None


def record(wh: Warehouse, *, run_id: str, as_of: str, digest: str) -> None:
    with wh.transaction():
        create_table(wh, "ops.dbt_builds", BUILD_COLUMNS)
        wh.execute("INSERT INTO ops.dbt_builds (run_id, as_of, fingerprint, built_at) VALUES (?, ?, ?, ?)",
                   (run_id, as_of, digest, datetime.now(timezone.utc)))
