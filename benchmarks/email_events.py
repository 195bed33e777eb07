"""Parsing and loading webhook events: events per second, against reading the same files.

    python benchmarks/email_events.py --landing /path/to/email_events --runs 3
    python benchmarks/email_events.py --scale medium --runs 3      # generates the landing zone first
    python benchmarks/email_events.py --landing DIR --chunk-mb 64 --no-reference   # peak memory of one setting

``--chunk-mb`` is how much of the landing zone one transaction reads (CRM_EMAIL_CHUNK_MB); the peak
resident memory of the process during the ingest (sampled every 20 ms) is printed against its size
before: run the script once per setting (a process each) to compare them.

Each run: a fresh DuckDB warehouse, then ``ingest_email_events`` (read new complete lines, parse
and normalize in DuckDB, de-duplicate, insert, quarantine, offsets). The reference, measured in
the same run, is reading the same landing lines only (``read_new_lines``): the cost any loader
pays before parsing anything. Prints medians.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

from ingest.email_events.landing import read_new_lines
from ingest.email_events.load import ingest_email_events
from ingest.warehouse import DuckDBWarehouse


def make_landing(scale: str, work: Path) -> Path:
    from simulator.email import write_landing
    from simulator.generate import build
    from simulator.scales import get_scale

    end_us = int(np.datetime64("2026-10-31", "us").astype(np.int64))
    h = build(get_scale(scale), 42, end_us, 365, "lead_status")
    write_landing(h.landing, work / "email_events", "bench")
    return work / "email_events"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--landing", type=Path)
    ap.add_argument("--scale", default="medium")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--chunk-mb", type=float, default=64.0)
    ap.add_argument("--no-reference", action="store_true", help="skip reading all lines at once (it holds them all)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-email-"))
    try:
        landing = args.landing or make_landing(args.scale, work)
        rows = []
        proc = psutil.Process()
        for i in range(args.runs):
            read_s, n_lines = float("nan"), 0
            if not args.no_reference:
                t0 = time.perf_counter()
                lines, _ = read_new_lines(landing, {})
                read_s = time.perf_counter() - t0
                n_lines = lines.height
                del lines
            db = work / f"run{i}.duckdb"
            wh = DuckDBWarehouse(db)
            rss0 = proc.memory_info().rss
            peak, done = [rss0], threading.Event()

            def sample() -> None:
                while not done.wait(0.02):
                    peak[0] = max(peak[0], proc.memory_info().rss)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            t0 = time.perf_counter()
            r = ingest_email_events(wh, landing, chunk_bytes=int(args.chunk_mb * 2**20))
            total_s = time.perf_counter() - t0
            done.set()
            sampler.join()
            wh.close()
            db.unlink()
            n_lines = n_lines or r.lines_read
            rows.append({"read_s": read_s, "ingest_s": total_s, "events": r.events_parsed, "lines": n_lines,
                         "rss_mb": (proc.memory_info().rss - rss0) / 2**20, "peak_mb": (peak[0] - rss0) / 2**20})
            print(f"run {i + 1}: {r.events_parsed:,} events from {n_lines:,} deliveries; read {read_s:.1f} s, "
                  f"ingest {total_s:.1f} s ({r.events_parsed / total_s:,.0f} events/s), ratio {total_s / read_s:.2f}x",
                  flush=True)
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        print(f"\nmedian of {args.runs}: {med['events']:,.0f} events, ingest {med['ingest_s']:.1f} s = "
              f"{med['events'] / med['ingest_s']:,.0f} events/s; reading the same lines {med['read_s']:.1f} s; "
              f"ratio {med['ingest_s'] / med['read_s']:.2f}x; RSS growth {med['rss_mb']:.0f} MB; "
              f"peak during the ingest +{med['peak_mb']:.0f} MB (chunks of {args.chunk_mb:g} MB)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
