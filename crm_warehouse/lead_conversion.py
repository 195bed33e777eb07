"""The learned lead conversion score: ``marts.lead_conversion_scores`` and ``ops.lead_conversion_model_runs``.

Run by the dbt step between two dbt builds, inside the same write–audit–publish build (the DuckDB copy or
the PostgreSQL shadow schemas): dbt builds the features (``intermediate.int_lead_conversion_features``)
and the rule scores (``marts.lead_score_history``); this module trains, evaluates and scores; dbt then
builds what reads the scores (``lead_conversion_summary``) and tests everything; only then is the build
published. So a score is never visible beside marts of another day.

- **Model.** scikit-learn's ``LogisticRegression`` (lbfgs, L2) on standardized features: counts as
  log1p, one-hot categories, flags. Why not gradient boosting: a linear model's log-odds are a sum, so a
  lead's reasons are exact (each feature's coefficient times its distance from the training mean), it
  is deterministic without seeds, trains on 100k leads in well under a second, and a log-loss fit is
  calibrated by construction (the holdout's decile table checks it). Two models: P(won) and
  P(converted: a deal) within ``lead_score_outcome_days`` of the features' instant.
- **Evaluation.** On a time holdout: the leads with a known outcome are split by cohort month, the
  newest months holding at least ``HOLDOUT_SHARE`` of them are the test set, the older the training set.
  AUC, Brier score, base rate and calibration by decile, against the rule score and the decayed score
  at the same age (``lead_score_history``, point ``cutoff``) on the same leads: their AUC as they are,
  their Brier score after a one-variable logistic fit on the training set (a score is not a probability).
- **Scoring.** The model is then refit on every lead with a known outcome and scores the open leads.
- **Too few outcomes.** Fewer than ``min_outcomes`` won outcomes (or fewer than ``MIN_HOLDOUT_OUTCOMES``
  in the holdout) train nothing: the scores table is empty, the run's row says why and how many are needed.
"""

from __future__ import annotations

import json
import math
import resource
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl

from ingest.warehouse import Warehouse, create_table

MIN_OUTCOMES = 100          # won outcomes among the leads with a known outcome
MIN_HOLDOUT_OUTCOMES = 20   # won outcomes in the holdout
MAX_TRAIN_LEADS = 250_000   # the newest leads with a known outcome trained on (memory bounded at every tier)
SCORE_CHUNK = 100_000       # open leads scored at a time
HOLDOUT_SHARE = 0.2         # the newest cohort months holding at least this share are the holdout
COUNTS = ["activities", "page_view_activities", "pricing_viewed_activities", "email_open_activities",
          "email_click_activities", "resource_downloaded_activities", "form_submit_activities",
          "signup_started_activities", "demo_request_activities", "active_days", "demo_requests",
          "sales_contact_requests", "email_opens", "email_clicks"]
FLAGS = ["has_referrer", "has_phone", "has_company_name", "is_decision_maker"]
CATEGORIES = ["lead_source", "utm_medium", "project_type", "company_id"]

RUN_COLUMNS = (
    ("run_id", "VARCHAR"), ("as_of_date", "DATE"), ("trained_at", "TIMESTAMPTZ"), ("status", "VARCHAR"),
    ("message", "VARCHAR"), ("known_leads", "BIGINT"), ("won_outcomes", "BIGINT"), ("converted_outcomes", "BIGINT"),
    ("min_outcomes", "BIGINT"), ("train_leads", "BIGINT"), ("holdout_leads", "BIGINT"), ("holdout_from", "DATE"),
    ("holdout_won", "BIGINT"), ("base_rate_won", "DOUBLE"), ("auc_won", "DOUBLE"), ("brier_won", "DOUBLE"),
    ("rule_auc_won", "DOUBLE"), ("rule_brier_won", "DOUBLE"), ("decayed_auc_won", "DOUBLE"),
    ("decayed_brier_won", "DOUBLE"), ("base_rate_converted", "DOUBLE"), ("auc_converted", "DOUBLE"),
    ("brier_converted", "DOUBLE"), ("rule_auc_converted", "DOUBLE"), ("rule_brier_converted", "DOUBLE"),
    ("beats_rule_score", "BOOLEAN"), ("calibration", "VARCHAR"), ("scored_leads", "BIGINT"),
    ("train_seconds", "DOUBLE"), ("score_seconds", "DOUBLE"), ("peak_rss_mb", "DOUBLE"),
)
SCORE_SCHEMA = {
    "lead_id": pl.String, "company_id": pl.String, "as_of_date": pl.Date, "created_at": pl.Datetime("us", "UTC"),
    "features_at": pl.Datetime("us", "UTC"), "features_complete": pl.Boolean, "p_won": pl.Float64,
    "p_converted": pl.Float64, "won_decile": pl.Int64, "model_beats_rule_score": pl.Boolean,
    "reason_1": pl.String, "effect_1": pl.Float64, "reason_2": pl.String, "effect_2": pl.Float64,
    "reason_3": pl.String, "effect_3": pl.Float64, "model_run_id": pl.String,
}


@dataclass
class Design:
    """How a feature frame becomes a matrix: the training set's categories, means and scales."""
    levels: dict[str, list[str]]
    mean: np.ndarray = field(default_factory=lambda: np.zeros(0))
    scale: np.ndarray = field(default_factory=lambda: np.ones(0))
    groups: list[str] = field(default_factory=list)   # the feature each column belongs to

    @classmethod
    def fit(cls, df: pl.DataFrame) -> "Design":
        levels = {c: sorted(v for v in df[c].cast(pl.String).unique().to_list() if v is not None) for c in CATEGORIES}
        d = cls(levels)
        raw = d._raw(df)
        d.mean = raw.mean(axis=0)
        d.scale = raw.std(axis=0)
        d.scale[d.scale == 0] = 1.0
        return d

    def _raw(self, df: pl.DataFrame) -> np.ndarray:
        cols, groups = [], []
        for c in COUNTS:
            cols.append(np.log1p(df[c].fill_null(0).cast(pl.Float64).to_numpy()))
            groups.append(c)
        budget = df["estimated_budget"].cast(pl.Float64)
        cols += [np.log1p(budget.fill_null(0).clip(0).to_numpy()), budget.is_null().cast(pl.Float64).to_numpy()]
        groups += ["estimated_budget", "estimated_budget"]  # its log, and whether it is missing
        for c in FLAGS:
            cols.append(df[c].fill_null(False).cast(pl.Float64).to_numpy())
            groups.append(c)
        for c, values in self.levels.items():
            col = df[c].cast(pl.String)
            for v in values:  # one-hot: one column per level seen in training
                cols.append((col == v).fill_null(False).cast(pl.Float64).to_numpy())
                groups.append(c)
        self.groups = groups
        return np.column_stack(cols) if cols else np.zeros((df.height, 0))

    def matrix(self, df: pl.DataFrame) -> np.ndarray:
        return (self._raw(df) - self.mean) / self.scale


def _fit(x: np.ndarray, y: np.ndarray):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=1.0, max_iter=2000).fit(x, y)


def _auc(y: np.ndarray, s: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else None


def _brier(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean((p - y) ** 2))


def _platt(train_s: np.ndarray, train_y: np.ndarray, test_s: np.ndarray) -> np.ndarray:
    """A score made a probability by a one-variable logistic fit on the training leads."""
    m = _fit(train_s.reshape(-1, 1), train_y)
    return m.predict_proba(test_s.reshape(-1, 1))[:, 1]


def calibration(y: np.ndarray, p: np.ndarray) -> list[dict]:
    """By decile of predicted probability (equal-count bins, ties kept together by rank order)."""
    order = np.argsort(p, kind="stable")
    out = []
    for i, part in enumerate(np.array_split(order, 10), start=1):
        if len(part):
            out.append({"decile": i, "leads": int(len(part)), "mean_p": round(float(p[part].mean()), 6),
                        "observed": round(float(y[part].mean()), 6)})
    return out


def holdout_split(created: pl.Series) -> tuple[np.ndarray, object]:
    """True for the holdout: the newest cohort months holding at least HOLDOUT_SHARE of the leads."""
    months = created.dt.truncate("1mo")
    counts = months.value_counts().sort(months.name, descending=True)
    need, total, first = HOLDOUT_SHARE * created.len(), 0, None
    for m, n in counts.iter_rows():
        total, first = total + n, m
        if total >= need:
            break
    return (months >= first).to_numpy(), first


def read_features(wh: Warehouse, suffix: str = "", where: str = "TRUE", limit: int | None = None,
                  after: tuple | None = None, newest_first: bool = False) -> pl.DataFrame:
    """The features with the rule and decayed scores at the same age, in (created_at, lead id) order;
    ``limit`` leads after the key ``after`` (the previous page's last (created_at, lead id): keyset paging, so
    each page reads only its own rows); ``newest_first``: the newest ``limit`` leads, still returned oldest first."""
    order = "DESC" if newest_first else ""
    page = f" LIMIT {int(limit)}" if limit is not None else ""
    key = "(f.created_at, cast(f.lead_id AS VARCHAR))"
    df = wh.query(
        f"SELECT f.*, cast(f.lead_id AS VARCHAR) AS lead_key, cast(f.company_id AS VARCHAR) AS company_key, "
        f"h.rule_score, h.decayed_score "
        f"FROM intermediate{suffix}.int_lead_conversion_features AS f "
        f"LEFT JOIN marts{suffix}.lead_score_history AS h ON h.lead_id = f.lead_id AND h.point = 'cutoff' "
        f"WHERE ({where}){f' AND {key} > (?, ?)' if after else ''} "
        f"ORDER BY f.created_at {order}, cast(f.lead_id AS VARCHAR) {order}{page}", list(after) if after else None
    ).with_columns(pl.col("lead_key").alias("lead_id"), pl.col("company_key").alias("company_id")).drop("lead_key", "company_key")
    return df.reverse() if newest_first else df


def _reasons(design: Design, model, x: np.ndarray, df: pl.DataFrame) -> list[list[tuple[str, float]]]:
    """Each lead's three largest contributions to its log-odds, grouped by feature, with the lead's value."""
    contrib = x * model.coef_[0]
    groups = sorted(set(design.groups), key=design.groups.index)
    gidx = np.array([groups.index(g) for g in design.groups])
    by_group = np.zeros((x.shape[0], len(groups)))
    for j in range(x.shape[1]):
        by_group[:, gidx[j]] += contrib[:, j]
    top = np.argsort(-np.abs(by_group), axis=1, kind="stable")[:, :3]
    values = {g: df[g].to_list() for g in groups}
    out = []
    for i in range(x.shape[0]):
        row = []
        for k in top[i]:
            g = groups[k]
            v = values[g][i]
            shown = "none" if v is None else (f"{float(v):.0f}" if g == "estimated_budget" else str(v).lower())
            row.append((f"{g}={shown}", round(float(by_group[i, k]), 4)))
        out.append(row)
    return out


@dataclass
class ScoreRun:
    row: dict
    scores: pl.DataFrame

    @property
    def line(self) -> str:
        return self.row["message"]

    @property
    def metadata(self) -> dict:
        """What the Dagster materialization shows: the run's figures (none of them personal data)."""
        keep = ("status", "message", "known_leads", "won_outcomes", "train_leads", "holdout_leads", "auc_won",
                "brier_won", "rule_auc_won", "rule_brier_won", "decayed_auc_won", "base_rate_won",
                "beats_rule_score", "scored_leads", "train_seconds", "score_seconds")
        return {k: self.row[k] for k in keep if self.row.get(k) is not None}


def failed_run(run_id: str, as_of, reason: str) -> ScoreRun:
    """The run's row when training or scoring raised: no scores, the reason recorded."""
    row = {c: None for c, _ in RUN_COLUMNS}
    row.update(run_id=run_id, as_of_date=as_of, trained_at=datetime.now(timezone.utc), status="error",
               scored_leads=0, message=f"lead conversion score failed, no scores this run: {reason}")
    return ScoreRun(row, pl.DataFrame(schema=SCORE_SCHEMA))


@dataclass
class Model:
    """The models refit on every known outcome, ready to score open leads."""
    design: Design
    won: object
    converted: object
    beats: bool
    run_id: str
    as_of: object


def _known(features: pl.DataFrame) -> pl.DataFrame:
    """The leads with a known outcome, at most the newest MAX_TRAIN_LEADS (memory bounded at every tier)."""
    return features.filter(pl.col("outcome_known")).tail(MAX_TRAIN_LEADS)


def evaluate(known: pl.DataFrame, *, run_id: str, as_of, min_outcomes: int = MIN_OUTCOMES,
             min_holdout_outcomes: int = MIN_HOLDOUT_OUTCOMES) -> tuple[dict, Model | None]:
    """Judge the model on the time holdout against the rule and decayed scores, then refit it on every known
    outcome. ``known``: the leads with a known outcome in (created_at, lead id) order. No model when too
    few outcomes are known (the row says why)."""
    t0 = time.perf_counter()
    won_n, conv_n = int(known["won"].sum() or 0), int(known["converted"].sum() or 0)
    row = {c: None for c, _ in RUN_COLUMNS}
    row.update(run_id=run_id, as_of_date=as_of, trained_at=datetime.now(timezone.utc), status="too_few_outcomes",
               known_leads=known.height, won_outcomes=won_n, converted_outcomes=conv_n, min_outcomes=min_outcomes,
               scored_leads=0)
    test_mask, first = holdout_split(known["created_at"]) if known.height else (np.zeros(0, bool), None)
    holdout_won = int(known.filter(pl.Series(test_mask))["won"].sum() or 0) if known.height else 0
    row.update(holdout_won=holdout_won, holdout_from=first.date() if first is not None else None)
    if won_n < min_outcomes or holdout_won < min_holdout_outcomes or won_n - holdout_won < min_holdout_outcomes:
        row["message"] = (f"lead conversion score not trained: {won_n} won outcomes among {known.height} leads with a "
                          f"known outcome ({holdout_won} in the newest cohorts' holdout); it needs {min_outcomes} "
                          f"(and {min_holdout_outcomes} in the holdout and in training): no scores this run")
        return row, None

    train, test = known.filter(~pl.Series(test_mask)), known.filter(pl.Series(test_mask))
    design = Design.fit(train)
    xtr, xte = design.matrix(train), design.matrix(test)
    metrics = {}
    for label in ("won", "converted"):
        ytr, yte = train[label].cast(pl.Int64).to_numpy(), test[label].cast(pl.Int64).to_numpy()
        p = _fit(xtr, ytr).predict_proba(xte)[:, 1]
        metrics[label] = (yte, p)
        row[f"base_rate_{label}"] = float(yte.mean())
        row[f"auc_{label}"], row[f"brier_{label}"] = _auc(yte, p), _brier(yte, p)
        for kind, prefix in (("rule_score", "rule"), ("decayed_score", "decayed")):
            if f"{prefix}_auc_{label}" not in row:
                continue
            s_tr = train[kind].fill_null(0).cast(pl.Float64).to_numpy()
            s_te = test[kind].fill_null(0).cast(pl.Float64).to_numpy()
            row[f"{prefix}_auc_{label}"] = _auc(yte, s_te)
            if f"{prefix}_brier_{label}" in row:
                row[f"{prefix}_brier_{label}"] = _brier(yte, _platt(s_tr, ytr, s_te))
    del xtr, xte
    yte, p = metrics["won"]
    row["calibration"] = json.dumps(calibration(yte, p))
    beats = (row["auc_won"] or 0) > (row["rule_auc_won"] or 0) and row["brier_won"] <= row["rule_brier_won"]
    row.update(train_leads=train.height, holdout_leads=test.height, beats_rule_score=beats, status="trained")
    # the model that scores: refit on every lead with a known outcome
    design = Design.fit(known)
    xk = design.matrix(known)
    model = Model(design, _fit(xk, known["won"].cast(pl.Int64).to_numpy()),
                  _fit(xk, known["converted"].cast(pl.Int64).to_numpy()), beats, run_id, as_of)
    row["train_seconds"] = round(time.perf_counter() - t0, 3)
    return row, model


def score(model: Model, leads: pl.DataFrame) -> pl.DataFrame:
    """Scores of ``leads`` (open leads), their three reasons; won_decile is set over the whole run (``deciles``)."""
    if not leads.height:
        return pl.DataFrame(schema=SCORE_SCHEMA)
    x = model.design.matrix(leads)
    p_won, p_conv = model.won.predict_proba(x)[:, 1], model.converted.predict_proba(x)[:, 1]
    reasons = _reasons(model.design, model.won, x, leads)
    n = leads.height
    return pl.DataFrame({
        "lead_id": leads["lead_id"], "company_id": leads["company_id"],
        "as_of_date": pl.Series([model.as_of] * n, dtype=pl.Date),
        "created_at": leads["created_at"], "features_at": leads["features_at"],
        "features_complete": leads["features_complete"],
        "p_won": np.round(p_won, 6), "p_converted": np.round(p_conv, 6), "won_decile": pl.Series([None] * n, dtype=pl.Int64),
        "model_beats_rule_score": [model.beats] * n,
        **{f"reason_{k}": [r[k - 1][0] if len(r) >= k else None for r in reasons] for k in (1, 2, 3)},
        **{f"effect_{k}": pl.Series([r[k - 1][1] if len(r) >= k else None for r in reasons], dtype=pl.Float64)
           for k in (1, 2, 3)},
        "model_run_id": [model.run_id] * n,
    }, schema=SCORE_SCHEMA)


def deciles(scores: pl.DataFrame) -> pl.DataFrame:
    """won_decile as SQL's ntile(10) over (p_won, lead id) gives it: what score_warehouse sets in the warehouse."""
    n = scores.height
    order = scores.with_row_index("_i").sort("p_won", "lead_id")["_i"].to_numpy()
    size, extra = divmod(n, 10)
    bucket = np.concatenate([np.full(size + (1 if b < extra else 0), b + 1) for b in range(10)]) if n else np.zeros(0)
    dec = np.empty(n, np.int64)
    dec[order] = bucket
    return scores.with_columns(won_decile=pl.Series(dec, dtype=pl.Int64))


def _finish(row: dict, scored: int, t1: float) -> dict:
    row.update(scored_leads=scored, score_seconds=round(time.perf_counter() - t1, 3),
               peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))
    verdict = ("beats the rule score" if row["beats_rule_score"] else
               "does NOT beat the rule score on the holdout (the scores are written, marked model_beats_rule_score = false)")
    row["message"] = (f"lead conversion score: holdout AUC {row['auc_won']:.3f} (rule score {_fmt(row['rule_auc_won'])}, "
                      f"decayed {_fmt(row['decayed_auc_won'])}), Brier {row['brier_won']:.4f} (rule "
                      f"{_fmt(row['rule_brier_won'], 4)}), base rate {row['base_rate_won']:.3f} on {row['holdout_leads']} "
                      f"leads from {row['holdout_from']}: {verdict}; {scored} open leads scored")
    return row


def train_and_score(features: pl.DataFrame, *, run_id: str, as_of, min_outcomes: int = MIN_OUTCOMES,
                    min_holdout_outcomes: int = MIN_HOLDOUT_OUTCOMES) -> ScoreRun:
    """Train, evaluate on the time holdout, score the open leads: a pure function of the feature frame
    (in (created_at, lead id) order, as read_features returns it)."""
    row, model = evaluate(_known(features), run_id=run_id, as_of=as_of, min_outcomes=min_outcomes,
                          min_holdout_outcomes=min_holdout_outcomes)
    if model is None:
        return ScoreRun(row, pl.DataFrame(schema=SCORE_SCHEMA))
    t1 = time.perf_counter()
    scores = deciles(score(model, features.filter(pl.col("is_open"))))
    return ScoreRun(_finish(row, scores.height, t1), scores)


def _fmt(v, digits: int = 3) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


SOURCES_YML = Path(__file__).resolve().parent.parent / "dbt_project/models/marts/scoring/_scoring__sources.yml"


def descriptions() -> tuple[str, dict[str, str]]:
    """The table's and its columns' descriptions, from the dbt source that declares it (one place for its docs)."""
    import yaml

    doc = yaml.safe_load(SOURCES_YML.read_text())
    table = next(t for src in doc["sources"] if src["name"] == "scores" for t in src["tables"]
                 if t["name"] == "lead_conversion_scores")
    return " ".join(table["description"].split()), {c["name"]: " ".join(c["description"].split()) for c in table["columns"]}


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _cast_cols() -> str:
    return ", ".join(f"cast({c} AS UUID) AS {c}" if c in ("lead_id", "company_id") else c for c in SCORE_SCHEMA)


def _create(wh: Warehouse, table: str, df: pl.DataFrame) -> None:
    """(Re)create ``table`` holding ``df`` with the scores table's column types."""
    staged = wh.stage("lead_conversion_scores_new", df)
    wh.execute(f"DROP TABLE IF EXISTS {table}")
    wh.execute(f"CREATE TABLE {table} AS SELECT {_cast_cols()} FROM {staged}")
    wh.unstage(staged)


def _comment(wh: Warehouse, table: str) -> None:
    """The table's and columns' comments, as dbt's persist_docs sets the marts' (BI tools show them)."""
    about, columns = descriptions()
    wh.execute(f"COMMENT ON TABLE {table} IS {_quote(about)}")
    for c in SCORE_SCHEMA:
        wh.execute(f"COMMENT ON COLUMN {table}.{c} IS {_quote(columns[c])}")


def write(wh: Warehouse, run: ScoreRun, suffix: str = "") -> None:
    """Replace marts<suffix>.lead_conversion_scores with the run's scores (one transaction)."""
    table = f"marts{suffix}.lead_conversion_scores"
    with wh.transaction():
        _create(wh, table, run.scores)
        _comment(wh, table)


def record(wh: Warehouse, run: ScoreRun) -> None:
    """Append the run's row to ops.lead_conversion_model_runs (its history: the report's chart over runs)."""
    with wh.transaction():
        create_table(wh, "ops.lead_conversion_model_runs", RUN_COLUMNS)
        names = [c for c, _ in RUN_COLUMNS]
        wh.execute(f"INSERT INTO ops.lead_conversion_model_runs ({', '.join(names)}) VALUES "
                   f"({', '.join('?' for _ in names)})", tuple(run.row[c] for c in names))


def score_warehouse(wh: Warehouse, *, run_id: str, as_of, suffix: str = "", min_outcomes: int = MIN_OUTCOMES,
                    min_holdout_outcomes: int = MIN_HOLDOUT_OUTCOMES, chunk: int = SCORE_CHUNK) -> ScoreRun:
    """Train on the build's features (schemas with ``suffix``) and write the scores table. Memory is bounded
    at every tier: at most MAX_TRAIN_LEADS training leads are read, and the open leads are scored ``chunk``
    at a time. The same scores as train_and_score over the whole feature frame."""
    known = read_features(wh, suffix, "f.outcome_known", limit=MAX_TRAIN_LEADS, newest_first=True)
    row, model = evaluate(known, run_id=run_id, as_of=as_of, min_outcomes=min_outcomes,
                          min_holdout_outcomes=min_holdout_outcomes)
    del known
    if model is None:
        run = ScoreRun(row, pl.DataFrame(schema=SCORE_SCHEMA))
        write(wh, run, suffix)
        return run
    t1 = time.perf_counter()
    table = f"marts{suffix}.lead_conversion_scores"
    scored, after = 0, None
    with wh.transaction():
        _create(wh, f"{table}__scored", pl.DataFrame(schema=SCORE_SCHEMA))
        while True:
            leads = read_features(wh, suffix, "f.is_open", limit=chunk, after=after)
            if not leads.height:
                break
            staged = wh.stage("lead_conversion_scores_chunk", score(model, leads))
            wh.execute(f"INSERT INTO {table}__scored SELECT {_cast_cols()} FROM {staged}")
            wh.unstage(staged)
            scored, after = scored + leads.height, (leads["created_at"][-1], leads["lead_id"][-1])
        cols = ", ".join("ntile(10) OVER (ORDER BY p_won, cast(lead_id AS VARCHAR)) AS won_decile" if c == "won_decile"
                         else c for c in SCORE_SCHEMA)
        wh.execute(f"DROP TABLE IF EXISTS {table}")
        wh.execute(f"CREATE TABLE {table} AS SELECT {cols} FROM {table}__scored ORDER BY created_at, cast(lead_id AS VARCHAR)")
        wh.execute(f"DROP TABLE {table}__scored")
        _comment(wh, table)
    return ScoreRun(_finish(row, scored, t1), pl.DataFrame(schema=SCORE_SCHEMA))
