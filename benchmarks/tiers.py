"""The product end to end at one scale tier: wall time, peak memory of the whole process tree and disk, per step.

    python benchmarks/tiers.py --scale large [--target duckdb|postgres] [--runs 3] [--home DIR] [--keep] [--reuse]

Every step is the user's own command, run as a subprocess with ``CRM_HOME`` set to a fresh home (``--home``,
default a temporary directory, removed at the end unless ``--keep``):

1. ``crm-warehouse source up --scale S`` (the embedded source server stays up, as after a user's ``source up``);
2. ``crm-warehouse refresh``: the first, full refresh (every table ingested whole, every model built);
3. ``--runs`` times ``crm-warehouse refresh`` with no source change (the no-change refresh);
4. ``--runs`` times ``crm-warehouse source advance --days 1`` then ``crm-warehouse refresh`` (the one-day
   incremental refresh; the advance is timed on its own line);
5. once, ``crm-warehouse refresh --full-refresh`` (every dbt model rebuilt from raw, raw kept): the reference
   the two ratios are taken against, measured in the same run.

Memory is the peak, over the step, of the summed proportional set size (PSS: shared pages split between the
processes sharing them, so PostgreSQL's shared buffers count once) of every process of the tree: the
benchmark's descendants (the CLI, the Dagster run's subprocesses, dbt) and the embedded PostgreSQL servers whose
data directory is under the home (the postmaster and its backends), sampled every 0.25 s. Disk: the peak growth of
the file system's used bytes during the step (temporary files, the write–audit–publish copy included) and the
home's size after it, by directory. Prints one line per step as it ends and a table at the end (medians of
``--runs`` for the repeated steps).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

CLI = str(Path(sys.executable).with_name("crm-warehouse"))


def _pss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _name(pid: int) -> str:
    try:
        p = psutil.Process(pid)
        cmd = p.cmdline()
        return next((part.rsplit("/", 1)[-1] for part in cmd[1:2] if part.startswith("/")), p.name()) \
            if p.name().startswith("python") else p.name()
    except psutil.Error:
        return str(pid)


def tree_pids(home: Path) -> set[int]:
    """The benchmark's descendants and the embedded servers (with their backends) whose data lives under home."""
    me = psutil.Process()
    pids = {p.pid for p in me.children(recursive=True)}
    marker = str(home)
    for p in psutil.process_iter(["name", "cmdline"]):
        try:
            if (p.info["name"] or "").startswith("postgres") and any(marker in a for a in p.info["cmdline"] or []):
                pids.add(p.pid)
                pids.update(c.pid for c in p.children(recursive=True))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return pids


class Sampler:
    """Peak summed PSS of the tree and peak growth of the file system's used bytes while a step runs."""

    def __init__(self, home: Path) -> None:
        self.home, self.peak_mem, self.peak_disk, self._stop = home, 0, 0, threading.Event()
        self.peak_at, self.peak_parts = "", ""
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            by_pid = {pid: _pss(pid) for pid in tree_pids(self.home)}
            total = sum(by_pid.values())
            if total > self.peak_mem:  # what the peak is made of: the largest processes at that moment
                self.peak_mem, self.peak_at = total, time.strftime("%H:%M:%S")
                self.peak_parts = ", ".join(f"{_name(pid)} {v / GB:.2f}" for pid, v in
                                            sorted(by_pid.items(), key=lambda kv: -kv[1])[:3] if v > 0.1 * GB)
            self.peak_disk = max(self.peak_disk, shutil.disk_usage(self.home).used - self.disk0)
            time.sleep(0.25)

    def __enter__(self):
        self.disk0 = shutil.disk_usage(self.home).used
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.thread.join()


def du(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def home_sizes(home: Path) -> dict[str, int]:
    return {p.name: (du(p) if p.is_dir() else p.stat().st_size) for p in sorted(home.iterdir())}


GB = 2**30


def step(name: str, args: list[str], env: dict[str, str], home: Path, log: Path) -> dict:
    with Sampler(home) as s, open(log, "a") as out:
        out.write(f"\n===== {name}: crm-warehouse {' '.join(args)}\n")
        out.flush()
        t0 = time.perf_counter()
        rc = subprocess.run([CLI, *args], env=env, stdout=out, stderr=subprocess.STDOUT).returncode
        wall = time.perf_counter() - t0
    sizes = home_sizes(home)
    r = {"step": name, "rc": rc, "wall": wall, "peak_gb": s.peak_mem / GB, "disk_peak_gb": s.peak_disk / GB,
         "home_gb": sum(sizes.values()) / GB, "sizes": sizes}
    big = ", ".join(f"{k} {v / GB:.2f}" for k, v in sizes.items() if v > 0.05 * GB)
    print(f"{name:28s} exit {rc}  {wall:8.1f} s  peak {r['peak_gb']:5.2f} GB  disk +{r['disk_peak_gb']:5.2f} GB "
          f"during, home {r['home_gb']:6.2f} GB ({big})", flush=True)
    print(f"{'':28s} peak at {s.peak_at}: {s.peak_parts}", flush=True)
    if rc != 0:
        print(f"  failed: see {log}", flush=True)
    return r


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", default="small", choices=["tiny", "small", "medium", "large"])
    ap.add_argument("--target", default="duckdb", choices=["duckdb", "postgres"])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--home", type=Path)
    ap.add_argument("--keep", action="store_true", help="keep the home (and leave its servers stopped)")
    ap.add_argument("--lookback-minutes", type=int, default=0,
                    help="the incremental models' load-time lookback (default 0 here, 60 in production; see below)")
    ap.add_argument("--reuse", action="store_true",
                    help="--home already holds this tier's source and warehouse: start its source server (not timed "
                         "as a step) and go on from step 3; the ratios are then taken against step 5")
    ap.add_argument("--from-source", action="store_true",
                    help="--home holds this tier's source only (an earlier `source up`, timed apart): start its "
                         "server (not timed) and go on from step 2")
    ap.add_argument("--skip-full-refresh", action="store_true",
                    help="leave out step 5 (the ratios are then taken against the first refresh)")
    args = ap.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix=f"bench-tiers-{args.scale}-"))
    home.mkdir(parents=True, exist_ok=True)
    log = home.parent / f"{home.name}.log"
    # the incremental models re-read rows loaded within this lookback of their last build: in production runs
    # are a day apart and the default 60 minutes re-reads almost nothing; here refreshes follow each other within
    # minutes, so 60 would re-read every row loaded in the last hour: the first load's, all of them
    env = {**os.environ, "CRM_HOME": str(home), "CRM_WAREHOUSE": args.target,
           "CRM_DBT_LOAD_LOOKBACK_MINUTES": str(args.lookback_minutes)}
    env.pop("CRM_SOURCE_URL", None)
    env.pop("CRM_WAREHOUSE_URL", None)
    print(f"scale {args.scale}, target {args.target}, home {home}, log {log}; "
          f"CRM_MEMORY_LIMIT {env.get('CRM_MEMORY_LIMIT', '4GB (default)')}", flush=True)
    rows: list[dict] = []
    try:
        if args.reuse or args.from_source:
            subprocess.run([CLI, "source", "up"], env=env, check=True, stdout=subprocess.DEVNULL)
        else:
            rows.append(step("source up", ["source", "up", "--scale", args.scale, "--seed", str(args.seed)], env, home,
                             log))
            if rows[-1]["rc"]:
                return 1
        if not args.reuse:
            rows.append(step("refresh (first, full)", ["refresh"], env, home, log))
        for i in range(args.runs):
            rows.append(step(f"refresh (no change) {i + 1}", ["refresh"], env, home, log))
        for i in range(args.runs):
            rows.append(step(f"source advance --days 1 {i + 1}", ["source", "advance", "--days", "1"], env, home, log))
            rows.append(step(f"refresh (one day) {i + 1}", ["refresh"], env, home, log))
        if not args.skip_full_refresh:
            rows.append(step("refresh --full-refresh", ["refresh", "--full-refresh"], env, home, log))
    finally:
        for what in (["source", "down"], ["warehouse", "down"]):
            subprocess.run([CLI, *what], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        summarize(rows, args)
        if not args.keep and args.home is None:
            shutil.rmtree(home, ignore_errors=True)
    return 0 if all(r["rc"] == 0 for r in rows) else 1


def summarize(rows: list[dict], args) -> None:
    def med(prefix: str, key: str) -> float | None:
        vals = [r[key] for r in rows if r["step"].startswith(prefix)]
        return statistics.median(vals) if vals else None

    print(f"\nscale {args.scale}, target {args.target} (medians of {args.runs} for the repeated steps)")
    print("| step | wall (s) | peak memory (GB) | disk growth during (GB) | home after (GB) | exit |")
    print("|---|---:|---:|---:|---:|---|")
    for prefix in ("source up", "refresh (first, full)", "refresh --full-refresh", "refresh (no change)",
                   "source advance", "refresh (one day)"):
        sel = [r for r in rows if r["step"].startswith(prefix)]
        if sel:
            print(f"| {prefix} | {med(prefix, 'wall'):.1f} | {max(r['peak_gb'] for r in sel):.2f} | "
                  f"{max(r['disk_peak_gb'] for r in sel):.2f} | {sel[-1]['home_gb']:.2f} | "
                  f"{','.join(str(r['rc']) for r in sel)} |")
    full = med("refresh --full-refresh", "wall") or med("refresh (first, full)", "wall")
    for prefix, target in (("refresh (one day)", 0.20), ("refresh (no change)", 0.10)):
        m = med(prefix, "wall")
        if m is not None and full:
            print(f"{prefix}: {m:.1f} s = {m / full:.1%} of the full refresh's {full:.1f} s (target ≤ {target:.0%})")


if __name__ == "__main__":
    sys.exit(main())
