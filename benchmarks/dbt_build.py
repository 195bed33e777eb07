"""Full dbt build against a one-day incremental refresh of the models, on one warehouse target.

    python benchmarks/dbt_build.py --home DIR [--target duckdb|postgres] [--runs 3] [--days 3]

``--home`` is a CRM_HOME whose source exists (``crm-warehouse source up --scale medium``); the
source is advanced by this script (one simulated day per incremental sample). The warehouse
is a fresh one under ``--home`` (``bench-warehouse.duckdb`` or a database ``bench_wh`` in the
source's embedded server), so an existing warehouse is not touched.

Steps, each through the same Dagster jobs `crm-warehouse refresh` runs:
1. ingest the source into the fresh warehouse (not timed here: see raw_ingest.py);
2. ``--runs`` full builds (``dbt build --full-refresh``: every model, seed, snapshot and test);
3. ``--days`` times: ``source advance --days 1``, an incremental ingest, then the incremental
   dbt build, timed. The reference is the full build measured in the same invocation.
4. the floor, ``--runs`` times each: the transform job again with no new data, and one dbt process
   that selects nothing (start, project load, partial parse): what a refresh costs however little
   changed.
Prints each sample and the medians; the ratio is incremental / full.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
from pathlib import Path

import psycopg

from crm_warehouse.pipeline import run_refresh
from ingest.config import settings
from ingest.postgres_server import source_url


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--home", required=True, type=Path)
    p.add_argument("--target", choices=["duckdb", "postgres"], default="duckdb")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--days", type=int, default=3)
    p.add_argument("--lookback-minutes", type=int, default=0,
                   help="load-time lookback of the incremental models (default 0 here: in production runs are a "
                        "day apart and the default 60 minutes re-reads almost nothing; in this script every load "
                        "happens within minutes, so 60 would re-read everything)")
    args = p.parse_args()
    import os

    os.environ["CRM_DBT_LOAD_LOOKBACK_MINUTES"] = str(args.lookback_minutes)

    from simulator import advance

    base = settings({"CRM_HOME": str(args.home)})
    url = source_url(base)
    if args.target == "duckdb":
        db = args.home / "bench-warehouse.duckdb"
        db.unlink(missing_ok=True)
        cfg = dataclasses.replace(base, source_url=url, duckdb_path=db)
    else:
        server = url.replace("/builddesk?", "/postgres?")
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS bench_wh WITH (FORCE)")
            conn.execute("CREATE DATABASE bench_wh")
        cfg = dataclasses.replace(base, source_url=url, warehouse="postgres",
                                  warehouse_url=server.replace("/postgres?", "/bench_wh?"))

    def check(res, what: str):
        if not res.ok:
            print(f"{what} failed: {res.failures} {res.checks_failed}", file=sys.stderr)
            sys.exit(1)
        return res

    def dbt_elapsed() -> float:
        """dbt's own time for the last build (run_results.json), without process start and Dagster."""
        return float(json.loads((cfg.home / "dbt" / "target" / "run_results.json").read_text())["elapsed_time"])

    res = check(run_refresh(cfg, transform=False), "ingest")
    print(f"ingest into {args.target}: {res.seconds['ingest']:.1f} s", flush=True)
    full, full_dbt = [], []
    for i in range(args.runs):
        res = check(run_refresh(cfg, ingest=False, full_refresh=True), "full build")
        full.append(res.seconds["transform"])
        full_dbt.append(dbt_elapsed())
        print(f"full build {i + 1}: {full[-1]:.1f} s, of which dbt's own run {full_dbt[-1]:.1f} s "
              f"({len(res.built)} assets, {res.checks_passed} tests)", flush=True)
    inc, inc_dbt = [], []
    for day in range(args.days):
        advance.advance(url, cfg.email_events_dir, days=1)
        res = check(run_refresh(cfg, transform=False), "incremental ingest")
        ingest_s = res.seconds["ingest"]
        res = check(run_refresh(cfg, ingest=False), "incremental build")
        inc.append(res.seconds["transform"])
        inc_dbt.append(dbt_elapsed())
        print(f"day {day + 1}: ingest {ingest_s:.1f} s, incremental build {inc[-1]:.1f} s, of which dbt's own run "
              f"{inc_dbt[-1]:.1f} s (as of {res.as_of})", flush=True)
    # the floor: what any refresh of the models costs however little changed
    same = []
    for _ in range(args.runs):  # no new data at all: the transform job again
        same.append(check(run_refresh(cfg, ingest=False), "unchanged build").seconds["transform"])
    empty = [dbt_nothing(cfg) for _ in range(args.runs)]  # one dbt process that builds nothing
    f, n = statistics.median(full), statistics.median(inc)
    fd, nd = statistics.median(full_dbt), statistics.median(inc_dbt)
    print(f"\n{args.target}: floor: the transform job with no new data {statistics.median(same):.1f} s "
          f"= {100 * statistics.median(same) / f:.1f} % of the full build; a dbt process selecting nothing (start, "
          f"parse, exit) {statistics.median(empty):.1f} s = {100 * statistics.median(empty) / f:.1f} %")
    print(f"{args.target}: full build median {f:.1f} s, one-day incremental build median {n:.1f} s "
          f"= {100 * n / f:.1f} % of the full build (Dagster step: dbt process, parse, events)")
    print(f"{args.target}: dbt's own run: full {fd:.1f} s, incremental {nd:.1f} s = {100 * nd / fd:.1f} %")
    return 0


def dbt_nothing(cfg) -> float:
    """Wall time of `dbt build` selecting no node: process start, project load and partial parse."""
    import os
    import subprocess
    import time

    from orchestration.defs.dbt.project import PROFILES_DIR, ROOT, dbt_env, dbt_executable

    env = {**os.environ, **dbt_env(cfg)}
    t0 = time.perf_counter()
    subprocess.run([dbt_executable(), "build", "--select", "tag:no_such_tag", "--quiet", "--project-dir", str(ROOT),
                    "--profiles-dir", str(PROFILES_DIR), "--target-path", str(cfg.home / "dbt" / "target")],
                   cwd=ROOT, env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


if __name__ == "__main__":
    sys.exit(main())
