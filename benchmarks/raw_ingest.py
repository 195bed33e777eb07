"""Full and incremental ingest of every source table into DuckDB, against references measured in the same run.

    python benchmarks/raw_ingest.py --source-url URL [--runs 3] [--advance] [--dlt]

References:
- a binary ``COPY (SELECT * FROM t) TO STDOUT (FORMAT binary)`` drain of the same tables
  (psycopg, bytes read and dropped): the floor for moving the rows out of PostgreSQL;
- with ``--dlt``: dlt's ``sql_database`` source, ConnectorX backend, loading the same tables into
  DuckDB (the peer the issue names), when dlt is installed (``pip install "dlt[duckdb,sql_database]" connectorx``).
  Ours is timed on exactly those tables, end to end, in a warehouse file of its own (a full ingest
  of just them, commits included), as dlt's ``pipeline.run`` is. (Until 2026-11-25 the sum of
  those tables' own times inside the full run stood in for it: that leaves out each table's
  COMMIT, which writes a first load's rows, and flattered ours by ~1.5 s.)

With ``--advance``, one simulated day is added to the source (``source advance --days 1``) after
the full runs, then an incremental run is timed on the last full run's warehouse; repeated
``--runs`` times (a new simulated day each time), median against the median full ingest.
With ``--paired`` as well, each run's day follows that run's full ingest instead (full ingest,
simulated day, incremental run on that ingest's warehouse, then the next run), and each day is
also set against its own run's full ingest: the machine's speed drifts within a benchmark (a
``COPY`` drain took 6.4-9.5 s within one run), and a day timed minutes after the full ingests it is
compared with inherits that drift; the median of the per-run shares is printed beside the share of
the medians.
Peak RSS of this process is sampled every 50 ms. Every timed step starts after ``os.sync()`` and a
second's pause, so the files the previous step wrote are not flushed during it. Prints medians.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import psycopg
from _measure import PeakRSS

from ingest.postgres_source import PostgresSource
from ingest.raw_load import ingest_tables
from ingest.tables import SPECS
from ingest.warehouse import DuckDBWarehouse


def _settle() -> None:
    """Before each timed step: the previous step's written files (a 1.5 GB warehouse, dlt's files)
    reach the disk first, so their writeback does not land on whichever step runs next."""
    os.sync()
    time.sleep(1)


def copy_drain(url: str) -> tuple[float, int]:
    t0, nbytes = time.perf_counter(), 0
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        for s in SPECS:
            with cur.copy(f"COPY (SELECT * FROM {s.source}) TO STDOUT (FORMAT binary)") as copy:
                for chunk in copy:
                    nbytes += len(chunk)
    return time.perf_counter() - t0, nbytes


def full_ingest(url: str, db: Path, tables: list[str] | None = None
                ) -> tuple[float, int, float, dict[str, float], float, float]:
    """(seconds, rows, RSS growth MB, seconds per table, seconds inside the ingest gate's own statements,
    seconds of closing the warehouse file afterwards: DuckDB's checkpoint of what is left in its WAL).
    ``tables``: only these (raw names), else every table."""
    wh = DuckDBWarehouse(db)
    src = PostgresSource(url)
    per_table: dict[str, float] = {}
    rows = 0
    gate = 0.0
    with PeakRSS() as rss:
        t0 = time.perf_counter()
        for s, r in _ingest_all(wh, src, tables):
            rows += r.rows_written
            gate += r.gate_seconds
            per_table[s.raw] = r.seconds
        took = time.perf_counter() - t0
    src.close()
    t1 = time.perf_counter()
    wh.close()
    return took, rows, rss.growth_mb, per_table, gate, time.perf_counter() - t1


def _ingest_all(wh, src, tables: list[str] | None = None):
    """Every table (or ``tables``) through ``ingest_tables`` (the path the Dagster ingest job takes);
    fails loudly."""
    out = []
    for s, r in ingest_tables(wh, src, [s for s in SPECS if tables is None or s.raw in tables]):
        if isinstance(r, Exception):
            raise SystemExit(f"raw.{s.raw} failed: {r}")
        out.append((s, r))
    return out


def incremental_day(url: str, db: Path, n: int) -> tuple[float, float]:
    """Add one simulated day to the source, then time an incremental run on ``db``; prints the
    day's figures. Returns (seconds, seconds closing the file)."""
    from ingest.config import settings
    from simulator.advance import advance

    advance(url, settings().email_events_dir, days=1)
    _settle()
    wh, src = DuckDBWarehouse(db), PostgresSource(url)
    t0 = time.perf_counter()
    results = [r for _, r in _ingest_all(wh, src)]
    inc = time.perf_counter() - t0
    src.close()
    t1 = time.perf_counter()
    wh.close()
    closing = time.perf_counter() - t1
    print(f"incremental after one simulated day ({n}): {inc:.2f} s (+ {closing:.2f} s closing the file), "
          f"{sum(r.rows_extracted for r in results):,} rows read, {sum(r.rows_written for r in results):,} "
          f"written, gate {sum(r.gate_seconds for r in results):.2f} s, "
          f"{sum(r.rows_quarantined for r in results):,} quarantined, "
          f"{sum(r.rows_deleted for r in results):,} flagged deleted", flush=True)
    return inc, closing


def connectorx_tables(url: str) -> list[str]:
    """public tables ConnectorX can read: it has no reader for uuid[] columns."""
    with psycopg.connect(url) as conn:
        bad = {r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' AND udt_name = '_uuid'")}
    return [s.raw for s in SPECS if s.source.startswith("public.") and s.raw not in bad]


def dlt_ingest(url: str, work: Path, tables: list[str], run: int = 0) -> float | None:
    # dlt sets its logger's level from its own config as a pipeline starts: a warning per table
    # about INET and column hints would otherwise interleave with the figures
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "ERROR")
    try:
        import dlt
        from dlt.sources.sql_database import sql_database
    except ImportError:
        return None
    from urllib.parse import parse_qs, quote, urlsplit

    # ConnectorX does not read libpq's ?host=/socket/dir but takes the URL-encoded socket path as host;
    # SQLAlchemy/psycopg2 (dlt's reflection) take the ?host= form.
    parts = urlsplit(url)
    host = parse_qs(parts.query).get("host", [parts.hostname or "localhost"])[0]
    user = parts.username or "postgres"
    auth = f"{user}:{parts.password}@" if parts.password else f"{user}@"
    port = f":{parts.port}" if parts.port else ""
    cx_url = f"postgresql://{auth}{quote(host, safe='')}{port}{parts.path}"
    sa_url = f"postgresql+psycopg2://{auth}{parts.hostname or ''}{port}{parts.path}" + (
        f"?host={host}" if host.startswith("/") else "")
    # a new DuckDB file each run, as ours gets (loading into the last run's file would grow it)
    pipe = dlt.pipeline(pipeline_name=f"bench{time.monotonic_ns()}",
                        destination=dlt.destinations.duckdb(str(work / f"dlt{run}.duckdb")),
                        dataset_name="raw", pipelines_dir=str(work / "dlt_pipelines"))
    _settle()
    t0 = time.perf_counter()
    pipe.run(sql_database(sa_url, schema="public", table_names=tables, backend="connectorx",
                          backend_kwargs={"conn": cx_url}))
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--source-url", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--advance", action="store_true")
    ap.add_argument("--dlt", action="store_true")
    ap.add_argument("--paired", action="store_true", help="with --advance: each run's day right after its full ingest")
    args = ap.parse_args()
    if args.paired and not args.advance:
        ap.error("--paired goes with --advance")
    work = Path(tempfile.mkdtemp(prefix="bench-raw-"))
    try:
        runs = []
        cx_tables = connectorx_tables(args.source_url)
        for i in range(args.runs):
            _settle()
            copy_s, nbytes = copy_drain(args.source_url)
            if i:
                (work / f"run{i - 1}.duckdb").unlink()  # only the last run's file is kept (--advance)
            db = work / f"run{i}.duckdb"
            _settle()
            ingest_s, rows, rss, per_table, gate_s, close_s = full_ingest(args.source_url, db)
            dlt_s = ours_same = None
            if args.dlt:
                dlt_s = dlt_ingest(args.source_url, work, cx_tables, i)
                (work / f"dlt{i}.duckdb").unlink(missing_ok=True)
                shutil.rmtree(work / "dlt_pipelines", ignore_errors=True)
            if dlt_s:  # ours on the same tables, timed as dlt is
                _settle()
                ours_same = full_ingest(args.source_url, work / f"same{i}.duckdb", cx_tables)[0]
                (work / f"same{i}.duckdb").unlink()
            runs.append({"copy": copy_s, "ingest": ingest_s, "rss": rss, "dlt": dlt_s, "ours_same": ours_same,
                         "gate": gate_s, "close": close_s})
            print(f"run {i + 1}: {rows:,} rows; full ingest {ingest_s:.1f} s (+ {close_s:.2f} s closing the file; the "
                  f"gate's own statements {gate_s:.2f} s: a first load's INSERT carries its predicates); "
                  f"binary COPY drain {copy_s:.1f} s "
                  f"({nbytes / 2**20:,.0f} MiB); ratio {ingest_s / copy_s:.2f}x; peak RSS +{rss:,.0f} MB"
                  + (f"; dlt+connectorx {dlt_s:.1f} s vs ours {ours_same:.1f} s on the same {len(cx_tables)} tables "
                     f"({dlt_s / ours_same:.2f}x; the sum of their own times inside the full run, two lanes overlapping: "
                     f"{sum(per_table[t] for t in cx_tables):.1f} s)" if dlt_s else ""), flush=True)
            if args.paired:
                day, day_close = incremental_day(args.source_url, db, i + 1)
                runs[-1].update(day=day, day_close=day_close)
                print(f"  that day against this run's full ingest: {100 * day / ingest_s:.1f}%", flush=True)
        med = {k: statistics.median(r[k] for r in runs) for k in ("copy", "ingest", "rss", "gate", "close")}
        line = (f"\nmedian of {args.runs}: full ingest {med['ingest']:.1f} s (+ {med['close']:.2f} s closing the file), "
                f"binary COPY drain {med['copy']:.1f} s, "
                f"ratio {med['ingest'] / med['copy']:.2f}x (target <= 3x); peak RSS +{med['rss']:,.0f} MB")
        if args.dlt and all(r["dlt"] for r in runs):
            d = statistics.median(r["dlt"] for r in runs)
            o = statistics.median(r["ours_same"] for r in runs)
            line += (f"; dlt+connectorx {d:.1f} s vs ours {o:.1f} s on the {len(cx_tables)} tables it can read: "
                     f"{d / o:.2f}x (target >= 2x)")
        print(line)
        if args.advance:
            if args.paired:
                samples = [r["day"] for r in runs]
                closes = [r["day_close"] for r in runs]
            else:
                last = work / f"run{args.runs - 1}.duckdb"
                samples, closes = [], []
                for i in range(args.runs):  # each sample: one more simulated day, then an incremental run
                    inc, closing = incremental_day(args.source_url, last, i + 1)
                    samples.append(inc)
                    closes.append(closing)
            inc = statistics.median(samples)
            print(f"incremental median of {args.runs}: {inc:.2f} s = {100 * inc / med['ingest']:.1f}% of the median "
                  f"full ingest (target < 10%); with closing the file (a DuckDB checkpoint) on both sides: "
                  f"{inc + statistics.median(closes):.2f} s = "
                  f"{100 * (inc + statistics.median(closes)) / (med['ingest'] + med['close']):.1f}%")
            if args.paired:
                shares = [100 * r["day"] / r["ingest"] for r in runs]
                print(f"median of the per-run shares (each day against its own run's full ingest): "
                      f"{statistics.median(shares):.1f}% (runs {min(shares):.1f}-{max(shares):.1f}%)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
