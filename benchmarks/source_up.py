"""How long `source up` takes per scale tier, against a reference measured in the same run.

For each run: a fresh embedded PostgreSQL, then the whole `source up` (generate the history,
write the webhook landing zone, COPY every table, add keys/indexes/triggers, ANALYZE). The
reference is the COPY phase alone, i.e. the least any loader of the same rows must spend;
the ratio total / COPY says how much the simulator adds on top of moving the bytes.

    python benchmarks/source_up.py --scale small --runs 3
    python benchmarks/source_up.py --scale medium --runs 3

Prints the median of the runs (the machine is shared: single runs are noisy).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from _measure import PeakRSS
from ingest.postgres_server import start_embedded, stop_embedded
from simulator.source import populate
from simulator.vec import US_PER_DAY

TARGETS = {"tiny": 10.0, "small": 30.0, "medium": 240.0, "large": None}


def one_run(scale: str, seed: int) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="bench-source-"))
    try:
        url = start_embedded(work / "pg", stop_at_exit=True)
        end_us = int(np.datetime64("2026-10-31", "us").astype(np.int64)) + US_PER_DAY
        with PeakRSS() as rss:
            t0 = time.perf_counter()
            timings = populate(url, work / "email_events", scale=scale, seed=seed, end_us=end_us,
                               history_days=365, leads_variant="lead_status")
            timings["wall"] = time.perf_counter() - t0
        timings["peak_rss_mb"] = rss.growth_mb
        stop_embedded(work / "pg")
        return timings
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", default="small")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    runs = []
    for i in range(args.runs):
        r = one_run(args.scale, args.seed)
        runs.append(r)
        print(f"run {i + 1}: total {r['wall']:.1f} s, generate {r['generate']:.1f} s, landing {r['write landing']:.1f} s, "
              f"copy {r['copy']:.1f} s, constraints {r['constraints']:.1f} s, ratio total/copy {r['wall'] / r['copy']:.2f}, "
              f"peak RSS +{r['peak_rss_mb']:,.0f} MB", flush=True)
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(f"\nscale {args.scale}, median of {args.runs} runs")
    for k, v in sorted(med.items(), key=lambda kv: -kv[1]):
        print(f"  {k:32s} {v:8.2f}")
    target = TARGETS.get(args.scale)
    verdict = "" if target is None else f" (target < {target:.0f} s: {'met' if med['wall'] < target else 'MISSED'})"
    print(f"\nsource up, {args.scale}: {med['wall']:.1f} s{verdict}; "
          f"reference COPY of the same rows {med['copy']:.1f} s; ratio {med['wall'] / med['copy']:.2f}x")


if __name__ == "__main__":
    main()
