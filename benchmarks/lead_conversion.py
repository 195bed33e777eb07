"""The learned conversion score on a built warehouse: quality against the rule score, time and memory.

    python benchmarks/lead_conversion.py --duckdb PATH [--runs 5]

``PATH`` is a DuckDB warehouse a refresh built (e.g. ``$CRM_HOME/warehouse.duckdb`` after
``crm-warehouse source up --scale medium && crm-warehouse refresh``); it is read only: the scores are
written into a copy beside it, removed after each run. Each of ``--runs`` samples runs in a fresh Python process:

1. the reference: reading ``intermediate.int_lead_conversion_features`` whole (``SELECT *``);
2. what the refresh runs, ``lead_conversion.score_warehouse``, on a copy of the file (made untimed): read
   the known outcomes (at most MAX_TRAIN_LEADS), train on the older cohorts and judge on the holdout,
   refit, then read, score and write the open leads SCORE_CHUNK at a time;
and the process's peak resident memory before and after step 2 (its growth is the model's memory).

Prints each sample, the medians and the ratios to the reference, then the holdout's quality: AUC and
Brier score of a won deal for the learned score, the rule score and the decayed score, and the
calibration by decile (identical in every run: the model is deterministic).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, resource, shutil, sys, time, datetime as dt
from pathlib import Path
import duckdb
from crm_warehouse import lead_conversion as lc
from ingest.warehouse import DuckDBWarehouse

src, copy = Path(sys.argv[1]), Path(sys.argv[2])
con = duckdb.connect(str(src), read_only=True)
t = time.perf_counter()
n = len(con.sql("SELECT * FROM intermediate.int_lead_conversion_features").pl())
ref = time.perf_counter() - t
con.close()
shutil.copyfile(src, copy)  # score_warehouse writes the scores table: into a copy, as the refresh does into its build
wh = DuckDBWarehouse(copy)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t = time.perf_counter()
run = lc.score_warehouse(wh, run_id="bench", as_of=dt.date.today())
total = time.perf_counter() - t
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
wh.close()
row = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in run.row.items()}
print(json.dumps({"leads": n, "reference_s": ref, "model_s": total, "rss_before_mb": before,
                  "rss_after_mb": after, "row": row}))
"""


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--duckdb", required=True, type=Path)
    p.add_argument("--runs", type=int, default=5)
    a = p.parse_args()
    samples = []
    for i in range(a.runs):
        copy = a.duckdb.with_name(a.duckdb.name + ".bench-copy")
        try:
            out = subprocess.run([sys.executable, "-c", CHILD, str(a.duckdb), str(copy)], check=True,
                                 capture_output=True, text=True)
        finally:
            copy.unlink(missing_ok=True)
            Path(f"{copy}.wal").unlink(missing_ok=True)
        s = json.loads(out.stdout.strip().splitlines()[-1])
        r = s["row"]
        samples.append(s)
        print(f"run {i + 1}: features of {s['leads']:,} leads: SELECT * {s['reference_s']:.3f} s; score_warehouse "
              f"{s['model_s']:.3f} s (evaluation and refit {r['train_seconds']:.3f} s, scoring and writing "
              f"{r['score_seconds']:.3f} s); peak RSS {s['rss_before_mb']:.0f} -> {s['rss_after_mb']:.0f} MB")
    med = {k: statistics.median(s[k] for s in samples) for k in ("reference_s", "model_s")}
    grow = statistics.median(s["rss_after_mb"] - s["rss_before_mb"] for s in samples)
    print(f"median of {a.runs}: SELECT * of the features {med['reference_s']:.3f} s; read, train, evaluate, score and "
          f"write {med['model_s']:.3f} s ({med['model_s'] / med['reference_s']:.1f}x the reference); peak memory "
          f"growth {grow:.0f} MB")
    rows = [s["row"] for s in samples]
    r = rows[0]
    same = all({k: v for k, v in x.items() if not k.endswith("seconds") and k not in ("trained_at", "peak_rss_mb")} ==
               {k: v for k, v in r.items() if not k.endswith("seconds") and k not in ("trained_at", "peak_rss_mb")}
               for x in rows)
    print(f"deterministic across runs: {same}")
    if r["status"] != "trained":
        print(r["message"])
        return 0
    print(f"holdout: {r['holdout_leads']:,} leads created from {r['holdout_from']} ({r['holdout_won']:,} won; "
          f"trained on {r['train_leads']:,}); base rate {r['base_rate_won']:.4f}")
    print(f"{'score':<14}{'AUC won':>9}{'Brier won':>11}{'AUC deal':>10}{'Brier deal':>12}")
    print(f"{'learned':<14}{r['auc_won']:>9.3f}{r['brier_won']:>11.4f}{r['auc_converted']:>10.3f}{r['brier_converted']:>12.4f}")
    print(f"{'rule_score':<14}{r['rule_auc_won']:>9.3f}{r['rule_brier_won']:>11.4f}{r['rule_auc_converted']:>10.3f}"
          f"{r['rule_brier_converted']:>12.4f}")
    print(f"{'decayed_score':<14}{r['decayed_auc_won']:>9.3f}{r['decayed_brier_won']:>11.4f}")
    print(f"beats the rule score: {r['beats_rule_score']}; {r['scored_leads']:,} open leads scored")
    print("calibration (holdout, by decile of predicted won probability): predicted / observed")
    for d in json.loads(r["calibration"]):
        print(f"  decile {d['decile']:>2}: {d['leads']:>6,} leads  {d['mean_p']:.4f} / {d['observed']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
