"""The write–audit–publish copy of a DuckDB warehouse: a clone where the file system shares blocks, a copy elsewhere.

    python benchmarks/wap_clone.py DIR [DIR ...] [--rows 20000000] [--runs 3]

In each directory (put one on ext4 and one on XFS with reflink or btrfs to compare): a DuckDB file of
``--rows`` rows, then ``--runs`` times what a refresh's dbt step does to it: ``wap.start`` (clone or copy), a
build that rewrites a small table in the copy, ``wap.publish``. Prints the time of the start and the disk the
file system's used blocks grew by after the copy and after the build wrote, medians of the runs; the reference
is the file's size (what a plain copy must write).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import duckdb

from quality import wap


def used_mb(path: Path) -> float:
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize / 2**20


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dirs", nargs="+", type=Path)
    ap.add_argument("--rows", type=int, default=20_000_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    for d in args.dirs:
        d.mkdir(parents=True, exist_ok=True)
        pub = d / "wap-clone-bench.duckdb"
        con = duckdb.connect(str(pub))
        con.execute(f"CREATE OR REPLACE TABLE big AS SELECT i, md5(i::VARCHAR) AS s FROM range({args.rows}) r(i)")
        con.execute("CREATE OR REPLACE TABLE small AS SELECT 1 AS v")
        con.close()
        size = pub.stat().st_size / 2**20
        samples = []
        for _ in range(args.runs):
            u0 = used_mb(d)
            t = time.perf_counter()
            build = wap.start(pub)
            start = time.perf_counter() - t
            how = "clone" if used_mb(d) - u0 < size / 2 else "copy"
            after_copy = used_mb(d) - u0
            con = duckdb.connect(str(build.path))
            con.execute("CREATE OR REPLACE TABLE small AS SELECT i AS v FROM range(1000000) r(i)")
            con.close()
            after_build = used_mb(d) - u0
            wap.publish(build, pub)
            samples.append((start, after_copy, after_build, how))
        med = [statistics.median(s[i] for s in samples) for i in range(3)]
        print(f"{d}: file {size:,.0f} MB; {samples[0][3]}: start {med[0]:.3f} s, disk +{med[1]:,.0f} MB after the "
              f"copy, +{med[2]:,.0f} MB after the build wrote (median of {args.runs})")
        pub.unlink()


if __name__ == "__main__":
    main()
