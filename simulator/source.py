"""`crm-warehouse source up|advance|down`: the operational BuildDesk database, simulated.

The simulator's bookkeeping (seed, scale, clock, counters) lives in the ``simulator`` schema,
so ``public`` and ``auth`` hold exactly BuildDesk's tables.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import polars as pl
import psycopg

from ingest.config import Settings, redact
from ingest.postgres_server import SOURCE_DB, SourceError, connect, embedded_database_url, stop_embedded
from simulator import schema
from simulator.generate import build_chunks, chunk_count, strip_private
from simulator.scales import get_scale
from simulator.vec import US_PER_DAY, copy_frame

log = logging.getLogger(__name__)
EMBEDDED_DB = SOURCE_DB
Progress = Callable[[str], None]


SCHEMAS = ("live", "analysis")


@dataclass(frozen=True)
class SourceState:
    scale: str
    seed: int
    leads_variant: str
    clock: dt.datetime
    advances: int
    schema: str = "analysis"   # live: BuildDesk's production schema (simulator.live); analysis: the seed analysis'


def _noop(_: str) -> None:
    pass


def parse_date(text: str | None) -> dt.date:
    if text is None:
        return dt.datetime.now(dt.timezone.utc).date()
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise SourceError(f"bad date {text!r}: write it as YYYY-MM-DD, e.g. 2026-01-31") from None


def embedded_url(settings: Settings) -> str:
    """Start the embedded source server if needed; return the URL of its BuildDesk database."""
    return embedded_database_url(settings.source_pgdata, EMBEDDED_DB)


def source_url(settings: Settings, *, start: bool = True) -> str:
    if settings.source_url:
        return settings.source_url
    if not start and not (settings.source_pgdata / "PG_VERSION").exists():
        raise SourceError(f"no source at {settings.source_pgdata}: run `crm-warehouse source up` first")
    return embedded_url(settings)


def read_state(conn: psycopg.Connection) -> SourceState | None:
    has = conn.execute("SELECT to_regclass('simulator.state') IS NOT NULL").fetchone()[0]
    if not has:
        return None
    row = conn.execute("SELECT scale, seed, leads_variant, clock, advances, schema_kind FROM simulator.state").fetchone()
    return SourceState(*row) if row else None


def _foreign_tables(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT table_schema || '.' || table_name FROM information_schema.tables "
        "WHERE table_schema IN ('public', 'auth', 'simulator') ORDER BY 1 LIMIT 5"
    ).fetchall()
    return [r[0] for r in rows]


def up(settings: Settings, *, scale: str = "small", seed: int = 42, history_days: int = 365,
       end_date: str | None = None, leads_variant: str = "lead_status", schema_kind: str = "live",
       progress: Progress = _noop) -> tuple[str, bool]:
    """Create and fill the source unless it already exists. Returns (url, created_now).

    ``schema_kind``: ``live`` (BuildDesk's production schema; ``leads`` has both status columns) or
    ``analysis`` (the seed analysis' schema, ``leads_variant`` choosing its ``leads``)."""
    if schema_kind not in SCHEMAS:
        raise SourceError(f"unknown schema {schema_kind!r}: use one of {', '.join(SCHEMAS)}")
    if schema_kind == "live":
        leads_variant = "status"  # the rows of the later leads definition (status, project columns)
    sc = get_scale(scale)
    end = parse_date(end_date)
    if history_days < 30:
        raise SourceError(f"--history-days {history_days} is too short: use at least 30")
    if leads_variant not in schema.LEADS_VARIANTS:
        raise SourceError(f"unknown leads variant {leads_variant!r}: use one of {', '.join(schema.LEADS_VARIANTS)}")
    new_server = not settings.source_url and not (settings.source_pgdata / "PG_VERSION").exists()
    try:
        url = source_url(settings)
        with connect(url) as conn:
            state = read_state(conn)
            if state is not None:
                progress(f"source exists: scale {state.scale}, seed {state.seed}, clock {state.clock:%Y-%m-%d %H:%M} UTC")
                return url, False
            foreign = _foreign_tables(conn)
            if foreign:
                raise SourceError(
                    f"{redact(url)} already holds tables ({', '.join(foreign)}) that the simulator did not "
                    "create: point CRM_SOURCE_URL at an empty database"
                )
        end_us = int(np.datetime64(end, "D").astype("datetime64[us]").astype(np.int64)) + US_PER_DAY
        populate(url, settings.email_events_dir, scale=sc.name, seed=seed, end_us=end_us,
                 history_days=history_days, leads_variant=leads_variant, schema_kind=schema_kind, progress=progress)
        return url, True
    except BaseException:
        if new_server:  # nothing half-created: remove the server this call made
            stop_embedded(settings.source_pgdata)
            shutil.rmtree(settings.source_pgdata, ignore_errors=True)
        raise


def populate(url: str, landing_dir: Path, *, scale: str, seed: int, end_us: int, history_days: int,
             leads_variant: str, schema_kind: str = "analysis", progress: Progress = _noop) -> dict[str, float]:
    """Generate the history and load it in one transaction; land the webhooks once it committed.

    Large tiers come in chunks of whole tenants (``generate.build_chunks``): each chunk is
    generated, its webhook lines staged and its rows COPY'd before the next is made, so memory
    is that of one chunk. Everything still commits (or not) as one transaction.
    """
    from simulator import live
    from simulator.email import write_landing

    sc = get_scale(scale)
    t0 = time.perf_counter()
    n_chunks = chunk_count(sc)
    progress(f"generating {sc.name} history ({history_days} days, seed {seed}"
             + (f", {n_chunks} chunks of tenants)" if n_chunks > 1 else ")"))
    timings: dict[str, float] = {"generate": 0.0, "write landing": 0.0, "copy": 0.0}
    landing_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=landing_dir))
    deliveries, files = 0, set()
    try:
        with connect(url) as conn:
            conn.execute("SET session_replication_role = replica")  # bulk load: no triggers yet
            rows = None
            if schema_kind == "live":
                conn.execute(live.tables_sql())
                conn.execute("CREATE SCHEMA simulator; CREATE TABLE simulator.lead_tenants "
                             "(lead_id uuid PRIMARY KEY, company_id uuid NOT NULL)")
                rows = live.LiveRows()
                rows.setup(conn)
            else:
                conn.execute(schema.tables_sql(leads_variant))
            chunks = build_chunks(sc, seed, end_us, history_days, leads_variant)
            for i in range(n_chunks):
                t1 = time.perf_counter()
                h = next(chunks)
                timings["generate"] += time.perf_counter() - t1
                t1 = time.perf_counter()
                files |= set(write_landing(h.landing, staging, f"sim{seed}"))
                deliveries += h.landing.height
                timings["write landing"] += time.perf_counter() - t1
                t1 = time.perf_counter()
                for table in schema.SOURCE_TABLES:
                    if table not in h.tables:
                        continue
                    frame = strip_private(h.tables.pop(table))
                    if rows is not None:
                        frame = rows.fit(conn, table, frame)
                    progress(f"loading {table} ({frame.height:,} rows)" + (f", chunk {i + 1}/{n_chunks}" if n_chunks > 1 else ""))
                    copy_frame(conn, schema.qualified(table), frame)
                timings["copy"] += time.perf_counter() - t1
                del h
            t1 = time.perf_counter()
            conn.execute("SET session_replication_role = origin")
            progress("adding keys, indexes and triggers")
            if rows is not None:
                conn.execute(live.constraints_sql())
                conn.execute(live.triggers_sql(schema.TRIGGERS_SQL_HEAD))
            else:
                conn.execute(schema.constraints_sql(leads_variant))
                conn.execute(schema.triggers_sql())
            _create_state(conn, sc.name, seed, leads_variant, end_us, deliveries, schema_kind)
            timings["constraints"] = time.perf_counter() - t1
            conn.commit()
        _move_into(staging, landing_dir, sorted(files))  # only after the database committed
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    with connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE")
    timings["total"] = time.perf_counter() - t0
    progress(f"source ready in {timings['total']:.1f} s: {deliveries:,} webhook deliveries in {landing_dir}")
    return timings


def _move_into(staging: Path, landing_dir: Path, files: list[Path]) -> None:
    """Move staged landing files into place: whole provider folders when new, else file by file
    (appending to a file of the same name rather than replacing it)."""
    for folder in sorted(p for p in staging.iterdir() if p.is_dir()):
        target = landing_dir / folder.name
        if not target.exists():
            folder.rename(target)
            continue
        for f in files:
            if folder not in f.parents:
                continue
            dest = landing_dir / f.relative_to(staging)
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.exists():
                with open(dest, "ab") as out, open(f, "rb") as src:
                    shutil.copyfileobj(src, out)
            else:
                f.replace(dest)


def _create_state(conn: psycopg.Connection, scale: str, seed: int, variant: str, end_us: int, deliveries: int,
                  schema_kind: str = "analysis") -> None:
    conn.execute("""
        CREATE SCHEMA IF NOT EXISTS simulator;
        CREATE TABLE simulator.state (
          scale TEXT NOT NULL, seed BIGINT NOT NULL, leads_variant TEXT NOT NULL, schema_kind TEXT NOT NULL,
          clock TIMESTAMPTZ NOT NULL, advances INTEGER NOT NULL DEFAULT 0,
          deliveries BIGINT NOT NULL DEFAULT 0, created_at TIMESTAMPTZ NOT NULL DEFAULT now());
        CREATE TABLE simulator.advance_log (
          advance INTEGER PRIMARY KEY, from_clock TIMESTAMPTZ, to_clock TIMESTAMPTZ,
          counts JSONB, ran_at TIMESTAMPTZ NOT NULL DEFAULT now());
    """)
    clock = dt.datetime.fromtimestamp(end_us / 1e6, tz=dt.timezone.utc)
    conn.execute("INSERT INTO simulator.state (scale, seed, leads_variant, schema_kind, clock, deliveries) "
                 "VALUES (%s, %s, %s, %s, %s, %s)", (scale, seed, variant, schema_kind, clock, deliveries))


def down(settings: Settings) -> str:
    if settings.source_url:
        return "CRM_SOURCE_URL is set: that server is not managed here, nothing stopped"
    if stop_embedded(settings.source_pgdata):
        return f"stopped the embedded source in {settings.source_pgdata} (data kept)"
    return f"no embedded source running in {settings.source_pgdata}"


def table_counts(url: str) -> dict[str, int]:
    with connect(url) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {schema.qualified(t)}").fetchone()[0]
                for t in schema.SOURCE_TABLES}


def landing_summary(root: Path) -> pl.DataFrame:
    rows = []
    for provider in ("sendgrid", "postmark", "resend"):
        files = sorted((root / provider).glob("dt=*/*.ndjson")) if (root / provider).exists() else []
        lines = sum(sum(1 for _ in open(f, "rb")) for f in files)
        rows.append({"provider": provider, "files": len(files), "deliveries": lines})
    return pl.DataFrame(rows)
