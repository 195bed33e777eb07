"""The learned conversion score (crm_warehouse/lead_conversion.py, asset marts/lead_conversion_scores).

The tiny tier has too few known outcomes to train on (the refresh says so and writes no scores); the
training itself is exercised on the tiny tier's real features with the thresholds lowered. The
features' cutoff (nothing after it counts) is the dbt unit test int_lead_conversion_features_nothing_after_the_cutoff_counts,
run by every DuckDB refresh."""

import dataclasses
import datetime as dt
import json
import re
import shutil

import polars as pl
import pytest

from crm_warehouse import lead_conversion as lc
from ingest.warehouse import open_warehouse
from serving.report import build_report

AS_OF = dt.date(2026, 6, 30)


@pytest.mark.parametrize("target", ["duckdb", "postgres"])
def test_too_few_outcomes_train_nothing_and_the_refresh_says_why(built, target):
    cfg, res = built[target]
    assert res.ok and "marts/lead_conversion_scores" in res.built and "marts/lead_conversion_summary" in res.built
    line = next(n for n in res.notes if n.startswith("lead conversion score"))
    wh = open_warehouse(cfg)
    try:
        run = wh.query("SELECT * FROM ops.lead_conversion_model_runs ORDER BY trained_at DESC LIMIT 1").row(0, named=True)
        known = wh.query("SELECT count(*) AS n, sum(CASE WHEN won THEN 1 ELSE 0 END) AS won "
                         "FROM intermediate.int_lead_conversion_features WHERE outcome_known").row(0)
        assert wh.scalar("SELECT count(*) FROM marts.lead_conversion_scores") == 0
        assert wh.scalar("SELECT count(*) FROM marts.lead_conversion_summary") == 0
    finally:
        wh.close()
    assert run["status"] == "too_few_outcomes" and run["min_outcomes"] == lc.MIN_OUTCOMES
    assert (run["known_leads"], run["won_outcomes"]) == (known[0], known[1]) and known[1] < lc.MIN_OUTCOMES
    assert line == run["message"]
    assert f"{known[1]} won outcomes among {known[0]} leads" in line and f"it needs {lc.MIN_OUTCOMES}" in line


def _features(cfg) -> pl.DataFrame:
    wh = open_warehouse(cfg)
    try:
        return lc.read_features(wh)
    finally:
        wh.close()


def test_learned_score_is_deterministic_scores_open_leads_and_says_why(built):
    """Trained on the tiny tier's features (thresholds lowered): the same warehouse gives the same scores,
    on either target; every open lead and only those is scored, with three reasons that add up to its log-odds
    around the training mean; the holdout is the newest cohorts; the rule score is judged on the same leads."""
    duck = _features(built["duckdb"][0])
    pg = _features(built["postgres"][0])
    assert duck.height == pg.height > 300
    kw = dict(run_id="test", as_of=AS_OF, min_outcomes=5, min_holdout_outcomes=2)
    a, b, c = (lc.train_and_score(f, **kw) for f in (duck, duck, pg))
    assert a.row["status"] == "trained", a.line
    assert a.scores.equals(b.scores)
    assert a.scores.drop("created_at", "features_at").equals(c.scores.drop("created_at", "features_at"))
    assert {k: v for k, v in a.row.items() if k not in ("trained_at", "train_seconds", "score_seconds", "peak_rss_mb")} == \
        {k: v for k, v in c.row.items() if k not in ("trained_at", "train_seconds", "score_seconds", "peak_rss_mb")}

    scores = a.scores
    open_ids = set(duck.filter(pl.col("is_open"))["lead_id"])
    assert set(scores["lead_id"]) == open_ids and scores.height == len(open_ids)
    assert scores["p_won"].is_between(0, 1).all() and scores["p_converted"].is_between(0, 1).all()
    assert scores["won_decile"].min() == 1 and scores["won_decile"].max() == 10
    # a higher decile never has a lower probability
    by_decile = scores.group_by("won_decile").agg(pl.col("p_won").min().alias("lo"), pl.col("p_won").max().alias("hi")).sort("won_decile")
    assert (by_decile["lo"].slice(1) >= by_decile["hi"].slice(0, by_decile.height - 1)).all()
    groups = set(lc.COUNTS + lc.FLAGS + lc.CATEGORIES + ["estimated_budget"])
    for r in scores.iter_rows(named=True):
        reasons = [(r[f"reason_{k}"], r[f"effect_{k}"]) for k in (1, 2, 3)]
        assert all(name.split("=")[0] in groups for name, _ in reasons)
        assert abs(reasons[0][1]) >= abs(reasons[1][1]) >= abs(reasons[2][1])
    # the holdout: the newest cohort months of the leads with a known outcome, at least a fifth of them
    known = duck.filter(pl.col("outcome_known"))
    assert a.row["holdout_leads"] + a.row["train_leads"] == known.height
    first = a.row["holdout_from"]
    assert a.row["holdout_leads"] == known.filter(pl.col("created_at").dt.date() >= first).height >= 0.2 * known.height
    # the rule score's AUC, recomputed on the same holdout leads from lead_score_history's cutoff point
    test = known.filter(pl.col("created_at").dt.date() >= first)
    y, s = test["won"].to_numpy(), test["rule_score"].fill_null(0).to_numpy()
    pos, neg = s[y], s[~y]
    auc = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))
    assert a.row["rule_auc_won"] == pytest.approx(auc)
    assert a.row["beats_rule_score"] == (a.row["auc_won"] > a.row["rule_auc_won"] and a.row["brier_won"] <= a.row["rule_brier_won"])
    verdict = "beats the rule score" if a.row["beats_rule_score"] else "does NOT beat the rule score"
    assert verdict in a.line
    deciles = json.loads(a.row["calibration"])
    assert [d["decile"] for d in deciles] == list(range(1, 11)) and sum(d["leads"] for d in deciles) == test.height


def test_scores_written_are_documented_and_reach_the_report(built, tmp_path):
    """Written into a copy of the warehouse: the table has its documented columns and comments, two runs'
    history draws the calibration and AUC-over-runs charts."""
    cfg = built["duckdb"][0]
    copy = tmp_path / "copy.duckdb"
    shutil.copyfile(cfg.duckdb_path, copy)
    ccfg = dataclasses.replace(cfg, duckdb_path=copy, home=tmp_path / "home")
    wh = open_warehouse(ccfg)
    try:
        whole = lc.train_and_score(lc.read_features(wh), run_id="r1", as_of=AS_OF, min_outcomes=5, min_holdout_outcomes=2)
        for i in (1, 2):  # scored 50 open leads at a time, as the refresh does 100,000 at a time
            run = lc.score_warehouse(wh, run_id=f"r{i}", as_of=AS_OF, min_outcomes=5, min_holdout_outcomes=2, chunk=50)
            lc.record(wh, run)
        n, described = wh.rows("SELECT count(*), count(comment) FROM duckdb_columns() WHERE schema_name = 'marts' "
                               "AND table_name = 'lead_conversion_scores'")[0]
        written = wh.query("SELECT * EXCLUDE (model_run_id), cast(lead_id AS VARCHAR) AS lead_id, "
                           "cast(company_id AS VARCHAR) AS company_id FROM marts.lead_conversion_scores")
    finally:
        wh.close()
    assert n == described == len(lc.SCORE_SCHEMA)
    # chunked and in the warehouse (deciles by SQL's ntile) the same scores as over the whole frame
    assert run.row["scored_leads"] == written.height == whole.scores.height > 50
    expect = whole.scores.drop("model_run_id").sort("lead_id")
    assert written.select(expect.columns).sort("lead_id").equals(expect)
    text = build_report(ccfg).read_text()
    marks = {m.group(1): int(m.group(2)) for m in re.finditer(r'data-chart="(\w+)" data-points="\d+" data-marks="(\d+)"', text)}
    assert marks["model_calibration"] == 20  # ten deciles, predicted and observed
    assert marks["model_auc"] == 6           # two runs, three scores


def test_scores_written_into_postgres_shadow_schemas_equal_duckdbs(built):
    """On PostgreSQL the refresh writes into the build's shadow schemas (suffix): the same scores there."""
    import psycopg

    url = built["postgres"][0].warehouse_url
    suffix = "__lctest"
    with psycopg.connect(url, autocommit=True) as conn:
        for schema, table in (("intermediate", "int_lead_conversion_features"), ("marts", "lead_score_history")):
            conn.execute(f"DROP SCHEMA IF EXISTS {schema}{suffix} CASCADE")
            conn.execute(f"CREATE SCHEMA {schema}{suffix}")
            conn.execute(f"CREATE TABLE {schema}{suffix}.{table} AS SELECT * FROM {schema}.{table}")
    wh = open_warehouse(built["postgres"][0])
    try:
        run = lc.score_warehouse(wh, run_id="pg", as_of=AS_OF, suffix=suffix, min_outcomes=5, min_holdout_outcomes=2,
                                 chunk=100)
        written = wh.query(f"SELECT * FROM marts{suffix}.lead_conversion_scores")
        comments = wh.scalar(f"SELECT count(col_description('marts{suffix}.lead_conversion_scores'::regclass, attnum)) "
                             f"FROM pg_attribute WHERE attrelid = 'marts{suffix}.lead_conversion_scores'::regclass "
                             "AND attnum > 0")
    finally:
        wh.close()
        with psycopg.connect(url, autocommit=True) as conn:
            for schema in ("intermediate", "marts"):
                conn.execute(f"DROP SCHEMA IF EXISTS {schema}{suffix} CASCADE")
    whole = lc.train_and_score(_features(built["duckdb"][0]), run_id="pg", as_of=AS_OF, min_outcomes=5,
                               min_holdout_outcomes=2)
    assert run.row["status"] == "trained" and comments == len(lc.SCORE_SCHEMA)
    cols = ["lead_id", "company_id", "p_won", "p_converted", "won_decile", "reason_1", "effect_1", "reason_3"]
    got = written.with_columns(pl.col("lead_id").cast(pl.String), pl.col("company_id").cast(pl.String)).select(cols)
    assert got.sort("lead_id").equals(whole.scores.select(cols).sort("lead_id"))
