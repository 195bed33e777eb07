"""`crm-warehouse report`: one static HTML page of the headline marts, under ``$CRM_HOME/report/``.

Plain Python, no Dagster. The page is self-contained: the charts are SVG drawn here (no
JavaScript library, no CDN, no web font), so it opens from a file, a mail attachment or a
bucket with no network. Each chart is a ``<figure class="chart">`` whose marks carry a
``<title>`` with the exact figure (hover to read it) and a data table under ``<details>``.
A few lines of inline script measure, once the browser has laid the page out, how many marks
of each chart were drawn with a size, and write it on the figure (``data-drawn``); the tests
read it from headless Chromium, with a screenshot.

Everything is read from the marts and ``ops`` of either warehouse target, read-only (the DuckDB
file is opened with ``read_only=True``, so the report can be written while analysts have it
open, but not while a refresh writes it).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import json
import math
import os
import re
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Sequence

import polars as pl

from ingest.config import Settings, memory_limit
from ingest.warehouse import table_columns
from serving.metrics import QUARTER, metrics_sql

BLUE, ORANGE, GREEN, RED, GREY, PURPLE = "#2563eb", "#f59e0b", "#16a34a", "#dc2626", "#64748b", "#9333ea"
GRADE_COLORS = {"cold": "#93c5fd", "warm": ORANGE, "hot": RED}
REP_LIMIT = 40  # bars per attainment chart; the data table under it has every rep


class ReportError(RuntimeError):
    """The report cannot be written (no warehouse yet, warehouse busy): the message says what to do."""


# --------------------------------------------------------------------------------------------- reading


class _Reader:
    def __init__(self, cfg: Settings):
        self.kind = cfg.warehouse
        if cfg.warehouse == "duckdb":
            import duckdb

            if not cfg.duckdb_path.exists():
                raise ReportError(f"there is no warehouse file at {cfg.duckdb_path}: run `crm-warehouse refresh` "
                                  "(or `crm-warehouse demo`) first")
            try:
                self.con = duckdb.connect(str(cfg.duckdb_path), read_only=True,
                                          config={"memory_limit": memory_limit()})
            except duckdb.IOException as err:
                if "lock" not in str(err).lower():
                    raise
                raise ReportError(f"the warehouse file {cfg.duckdb_path} is being written by another process "
                                  "(a refresh?): run the report when it has finished") from None
            self.con.execute("SET TimeZone = 'UTC'")
        else:
            from ingest.warehouse import PostgresWarehouse, embedded_warehouse_url

            self.pg = PostgresWarehouse(cfg.warehouse_url or embedded_warehouse_url(cfg))

    def query(self, sql: str, params: Sequence[Any] = ()) -> pl.DataFrame:
        if self.kind == "duckdb":
            return self.con.sql(sql, params=list(params) or None).pl()
        return self.pg.query(sql, list(params))

    def close(self) -> None:
        (self.con if self.kind == "duckdb" else self.pg).close()


def _num(v: Any) -> float | None:
    if v is None:
        return None
    return float(v) if isinstance(v, (int, float, Decimal)) else None


# --------------------------------------------------------------------------------------------- formatting


def money(v: Any) -> str:
    x = _num(v)
    if x is None:
        return "n/a"
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"${x / div:,.1f}{suffix}"
    return f"${x:,.0f}"


def pct(v: Any, digits: int = 1) -> str:
    x = _num(v)
    return "n/a" if x is None else f"{x:.{digits}f}%"


def esc(v: Any) -> str:
    return html.escape("" if v is None else str(v), quote=True)


def _nice_max(x: float) -> float:
    if x <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(x))
    for m in (1, 1.2, 1.6, 2, 2.4, 3, 4, 6, 8, 10):  # a quarter of each is a round number
        if m * exp >= x:
            return m * exp
    return 10 * exp


# --------------------------------------------------------------------------------------------- charts


@dataclasses.dataclass
class Series:
    name: str
    color: str
    values: list[float | None]


W, H, LEFT, RIGHT, TOP, BOTTOM = 880, 320, 78, 16, 16, 84


# category labels are written at -35 degrees, ending under their mark: on the 11 px axis font a character
# is at most ~6.6 px wide, so a label of n characters reaches 0.82 * 6.6 n px left and 0.57 * 6.6 n px down
LABEL_ANGLE, CHAR_PX = 35, 6.6
_COS, _SIN = math.cos(math.radians(LABEL_ANGLE)), math.sin(math.radians(LABEL_ANGLE))


def _label_room(labels: list[str], every: int) -> tuple[float, float]:
    """(left, bottom) pixels the chart must grow by so that no category label leaves it: whole labels,
    never clipped (their text is also each mark's title)."""
    n = max(len(labels), 1)
    step = (W - LEFT - RIGHT) / n
    left = bottom = 0.0
    for i, lab in enumerate(labels):
        if i % every:
            continue
        width = CHAR_PX * len(lab)
        x = LEFT + step * (i + 0.5)
        left = max(left, width * _COS - x + 4)
        bottom = max(bottom, H - BOTTOM + 14 + width * _SIN + 6 - H)
    return max(left, 0.0), max(bottom, 0.0)


def _frame(labels: list[str], y_max: float, y_fmt: Callable[[float], str], *, every: int = 1) -> list[str]:
    out = []
    plot_h = H - TOP - BOTTOM
    for i in range(5):
        v = y_max * i / 4
        y = TOP + plot_h - plot_h * i / 4
        out.append(f'<line class="grid" x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(f'<text class="axis" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{esc(y_fmt(v))}</text>')
    n = max(len(labels), 1)
    step = (W - LEFT - RIGHT) / n
    for i, lab in enumerate(labels):
        if i % every:
            continue
        x = LEFT + step * (i + 0.5)
        out.append(f'<text class="axis label" x="{x:.1f}" y="{H - BOTTOM + 14}" text-anchor="end" '
                   f'transform="rotate(-{LABEL_ANGLE} {x:.1f} {H - BOTTOM + 14})">{esc(lab)}</text>')
    return out


def _legend(series: Sequence[Series]) -> str:
    items = "".join(f'<span class="key"><i style="background:{s.color}"></i>{esc(s.name)}</span>' for s in series)
    return f'<div class="legend">{items}</div>'


def line_chart(labels: list[str], series: list[Series], y_fmt: Callable[[float], str], *,
               tip: Callable[[str, Series, float], str] | None = None) -> str:
    vals = [v for s in series for v in s.values if v is not None]
    y_max = _nice_max(max(vals, default=0.0))
    plot_h, n = H - TOP - BOTTOM, max(len(labels), 1)
    step = (W - LEFT - RIGHT) / n
    every = max(1, math.ceil(n / 18))
    parts = _frame(labels, y_max, y_fmt, every=every)
    for s in series:
        pts = [(LEFT + step * (i + 0.5), TOP + plot_h - plot_h * (v / y_max)) for i, v in enumerate(s.values)
               if v is not None]
        if len(pts) > 1:
            d = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
            parts.append(f'<polyline class="line" fill="none" stroke="{s.color}" stroke-width="2.5" points="{d}"/>')
        for (x, y), (lab, v) in zip(pts, [(lab, v) for lab, v in zip(labels, s.values) if v is not None]):
            text = tip(lab, s, v) if tip else f"{lab}: {s.name} {y_fmt(v)}"
            parts.append(f'<circle class="mark" data-series="{esc(s.name)}" cx="{x:.1f}" cy="{y:.1f}" r="3.5" '
                         f'fill="{s.color}"><title>{esc(text)}</title></circle>')
    return _svg(parts, _label_room(labels, every)) + _legend(series)


def bar_chart(labels: list[str], series: list[Series], y_fmt: Callable[[float], str], *,
              ref: tuple[float, str] | None = None, stacked: bool = False,
              tip: Callable[[str, Series, float], str] | None = None) -> str:
    if stacked:
        totals = [sum(s.values[i] or 0 for s in series) for i in range(len(labels))]
        y_max = _nice_max(max(totals, default=0.0))
    else:
        y_max = _nice_max(max([v for s in series for v in s.values if v is not None] + [ref[0] if ref else 0], default=0))
    plot_h, n = H - TOP - BOTTOM, max(len(labels), 1)
    step = (W - LEFT - RIGHT) / n
    every = max(1, math.ceil(n / 40))
    parts = _frame(labels, y_max, y_fmt, every=every)
    group_w = step * 0.8
    bar_w = group_w if stacked else group_w / max(len(series), 1)
    base = [0.0] * len(labels)
    for k, s in enumerate(series):
        for i, (lab, v) in enumerate(zip(labels, s.values)):
            if v is None:
                continue
            h = max(plot_h * (v / y_max), 1.0)  # a zero still shows, as a 1-pixel tick with its title
            x = LEFT + step * i + (step - group_w) / 2 + (0 if stacked else k * bar_w)
            y = TOP + plot_h - h - (plot_h * base[i] / y_max if stacked else 0)
            if stacked:
                base[i] += v
            text = tip(lab, s, v) if tip else f"{lab}: {s.name} {y_fmt(v)}"
            parts.append(f'<rect class="mark" data-series="{esc(s.name)}" x="{x:.1f}" y="{y:.1f}" '
                         f'width="{max(bar_w - 1, 1):.1f}" height="{h:.1f}" fill="{s.color}">'
                         f'<title>{esc(text)}</title></rect>')
    if ref:
        y = TOP + plot_h - plot_h * (ref[0] / y_max)
        parts.append(f'<line class="ref" x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
                     f'<text class="axis" x="{W - RIGHT - 4}" y="{y - 5:.1f}" text-anchor="end">{esc(ref[1])}</text>')
    return _svg(parts, _label_room(labels, every)) + _legend(series)


def _svg(parts: list[str], room: tuple[float, float] = (0.0, 0.0)) -> str:
    """The chart, its view grown to the left and down by ``room`` so its labels are whole."""
    left, bottom = math.ceil(room[0]), math.ceil(room[1])
    w, h = W + left, H + bottom
    return (f'<svg viewBox="{-left} 0 {w} {h}" width="{w}" height="{h}" role="img" xmlns="http://www.w3.org/2000/svg">'
            + "".join(parts) + "</svg>")


def data_table(columns: list[str], rows: list[Sequence[Any]], summary: str = "data") -> str:
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{esc(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<details><summary>{esc(summary)}</summary><table><tr>{head}</tr>{body}</table></details>"


def figure(key: str, title: str, caption: str, body: str, points: int) -> str:
    if points == 0:
        body = '<p class="empty">No rows in the mart yet.</p>'
    marks = body.count('class="mark"')
    return (f'<figure class="chart" id="chart-{key}" data-chart="{key}" data-points="{points}" data-marks="{marks}">'
            f"<h2>{esc(title)}</h2><figcaption>{esc(caption)}</figcaption>{body}</figure>")


# --------------------------------------------------------------------------------------------- sections


def _where(company_id: str | None, prefix: str = "WHERE") -> tuple[str, list[Any]]:
    return (f" {prefix} company_id = ?", [company_id]) if company_id else ("", [])


def pipeline_section(r: _Reader, company_id: str | None) -> str:
    w, p = _where(company_id, "AND")
    df = r.query("SELECT metric_date, sum(total_pipeline_value) AS pipeline, sum(weighted_pipeline_value) AS weighted, "
                 "sum(deals_active) AS active, bool_or(is_partial_period) AS partial FROM marts.pipeline_metrics "
                 "WHERE period_type = 'weekly'" + w + " GROUP BY metric_date ORDER BY metric_date", p)
    # the running week is marked: its figures are as of the as-of day, not the week's end
    labels = [f"{d} (to date)" if partial else str(d) for d, partial in zip(df["metric_date"], df["partial"])]
    df = df.drop("partial").with_columns(metric_date=pl.Series(labels))
    series = [Series("open pipeline value", BLUE, [_num(v) for v in df["pipeline"]]),
              Series("weighted by stage probability", ORANGE, [_num(v) for v in df["weighted"]])]
    body = line_chart(labels, series, money)
    body += data_table(["week", "open pipeline", "weighted", "open deals"],
                       [(d, money(a), money(b), c) for d, a, b, c in df.iter_rows()], "weekly figures")
    return figure("pipeline_value", "Pipeline value and weighted value over time",
                  "Open deals at the end of each week (marts.pipeline_metrics, weekly): estimated value and the value "
                  "weighted by each deal's stage probability.", body, df.height)


def _metrics(r: _Reader, metrics: Sequence[str], group_by: Sequence[str] = (), company_id: str | None = None,
             ) -> pl.DataFrame:
    """Metrics of the semantic layer (serving/metrics.py), on the report's read-only connection."""
    df = r.query(metrics_sql(r.kind, metrics, group_by, company_id=company_id))
    return df.sort(list(group_by)) if group_by else df


def win_rate_section(r: _Reader, company_id: str | None) -> str:
    df = _metrics(r, ["deals_closed", "deals_won", "win_rate", "cycle_time_days", "closed_cycle_time_days"], [QUARTER],
                  company_id)
    labels = [quarter_label(d) for d in df[QUARTER]]
    rates = [None if v is None else 100.0 * float(v) for v in df["win_rate"]]
    rate_chart = bar_chart(labels, [Series("win rate", GREEN, rates)], lambda v: f"{v:.0f}%",
                           tip=lambda lab, s, v: f"{lab}: win rate {v:.1f}%")
    cycle_chart = line_chart(labels, [Series("won deals", BLUE, [_num(v) for v in df["cycle_time_days"]]),
                                      Series("all closed deals", GREY, [_num(v) for v in df["closed_cycle_time_days"]])],
                             lambda v: f"{v:.0f} d", tip=lambda lab, s, v: f"{lab}: {s.name}, mean cycle {v:.1f} days")
    rows = [(quarter_label(q), int(c or 0), int(wn or 0), pct(rt), "n/a" if a is None else f"{float(a):.1f}",
             "n/a" if b is None else f"{float(b):.1f}")
            for q, c, wn, rt, a, b in zip(df[QUARTER], df["deals_closed"], df["deals_won"], rates, df["cycle_time_days"],
                                          df["closed_cycle_time_days"])]
    table = data_table(["quarter", "closed", "won", "win rate", "mean cycle days (won)", "mean cycle days (all)"], rows,
                       "quarterly figures")
    return (figure("win_rate", "Win rate by quarter", "Won ÷ (won + lost) among deals closed in the quarter "
                   "(metric win_rate of the semantic layer, over marts.win_loss).", rate_chart, df.height)
            + figure("cycle_time", "Sales cycle by quarter", "Mean days from a deal's creation to its close, for the "
                     "deals closed in the quarter (metrics cycle_time_days and closed_cycle_time_days).",
                     cycle_chart + table, df.height))


def quarter_label(d: Any) -> str:
    if isinstance(d, (dt.date, dt.datetime)):
        return f"{d.year}-Q{(d.month - 1) // 3 + 1}"
    return str(d)


def funnel_section(r: _Reader, company_id: str | None) -> str:
    w, p = _where(company_id)
    df = r.query("SELECT lead_source, sum(leads) AS leads, sum(demo_requested) AS demos, sum(deals) AS deals, "
                 "sum(won) AS won FROM marts.funnel_conversion" + w + " GROUP BY lead_source ORDER BY sum(leads) DESC", p)
    labels = [str(s) for s in df["lead_source"]]

    def rate(col: str) -> list[float | None]:
        return [100.0 * float(x) / float(n) if n else None for x, n in zip(df[col], df["leads"])]

    series = [Series("requested a demo", BLUE, rate("demos")), Series("became a deal", ORANGE, rate("deals")),
              Series("won", GREEN, rate("won"))]
    body = bar_chart(labels, series, lambda v: f"{v:.0f}%", tip=lambda lab, s, v: f"{lab}: {s.name} {v:.1f}% of leads")
    body += data_table(["lead source", "leads", "demo requests", "deals", "won"], list(df.iter_rows()), "counts")
    return figure("funnel", "Funnel conversion by lead source", "Share of each source's leads (all cohorts, "
                  "marts.funnel_conversion) that requested a demo, became a deal, and were won.", body, df.height)


TRIGGER_LABELS = {"lead_created": "new lead", "demo_request": "demo request", "sales_contact_request": "sales-contact request"}


def speed_to_lead_section(r: _Reader, company_id: str | None) -> str:
    """Per request kind: the share answered within the SLA (of those judged) and the median hours."""
    w, p = _where(company_id)
    median = ("quantile_cont(response_hours, 0.5)" if r.kind == "duckdb" else  # both skip the unanswered (null)
              "percentile_cont(0.5) WITHIN GROUP (ORDER BY response_hours)")
    df = r.query("SELECT trigger_type, count(*) AS requests, "
                 "sum(CASE WHEN is_unanswered THEN 1 ELSE 0 END) AS unanswered, "
                 "sum(CASE WHEN within_sla THEN 1 ELSE 0 END) AS within, "
                 "sum(CASE WHEN within_sla IS NOT NULL THEN 1 ELSE 0 END) AS judged, "
                 f"{median} AS median_hours, max(sla_hours) AS sla FROM marts.lead_response_times" + w +
                 " GROUP BY trigger_type ORDER BY trigger_type", p)
    labels = [TRIGGER_LABELS.get(t, t) for t in df["trigger_type"]]
    shares = [100.0 * float(j) / float(n) if n else None for j, n in zip(df["within"], df["judged"])]
    sla = int(df["sla"].max()) if df.height else 24
    body = bar_chart(labels, [Series(f"answered within {sla} h", GREEN, shares)], lambda v: f"{v:.0f}%",
                     tip=lambda lab, s, v: f"{lab}: {v:.1f}% answered within {sla} h")
    rows = [(TRIGGER_LABELS.get(t, t), f"{int(n):,}", f"{int(u):,}", pct(v), "n/a" if m is None else f"{float(m):.1f} h")
            for t, n, u, v, m in zip(df["trigger_type"], df["requests"], df["unanswered"], shares, df["median_hours"])]
    body += data_table(["request", "requests", "unanswered", f"within {sla} h", "median to first touch"], rows, "counts")
    return figure("speed_to_lead", "Speed to lead", f"Share of each kind of request a lead makes that a rep touched "
                  f"within {sla} hours, of those the SLA has judged, and the median hours to the first touch "
                  "(marts.lead_response_times; per rep in marts.rep_performance).", body, df.height)


def follow_ups_section(r: _Reader, company_id: str | None) -> str:
    """Overdue follow-ups per rep, leads and contacts stacked, the most overdue reps first."""
    w, p = _where(company_id)
    df = r.query("SELECT coalesce(rep_name, '(unassigned)') AS rep, "
                 "sum(CASE WHEN record_type = 'lead' THEN 1 ELSE 0 END) AS leads, "
                 "sum(CASE WHEN record_type = 'contact' THEN 1 ELSE 0 END) AS contacts, "
                 "max(days_overdue) AS oldest FROM marts.follow_ups_due" + w +
                 " GROUP BY 1 ORDER BY count(*) DESC, 1", p)
    shown = df.head(REP_LIMIT)
    labels = [str(n) for n in shown["rep"]]
    series = [Series("leads", BLUE, [float(v) for v in shown["leads"]]),
              Series("contacts", ORANGE, [float(v) for v in shown["contacts"]])]
    body = bar_chart(labels, series, lambda v: f"{v:.0f}", stacked=True,
                     tip=lambda lab, s, v: f"{lab}: {v:.0f} {s.name} overdue")
    body += data_table(["rep", "leads", "contacts", "oldest (days)"],
                       [(a, f"{int(b):,}", f"{int(c):,}", f"{int(d):,}") for a, b, c, d in df.iter_rows()],
                       f"all {df.height} reps with overdue follow-ups")
    more = f" The {REP_LIMIT} with the most are drawn." if df.height > REP_LIMIT else ""
    return figure("follow_ups", "Overdue follow-ups per rep", "Leads and contacts whose follow-up date has passed "
                  f"with no touch since, as of the as-of day (marts.follow_ups_due).{more}", body, shown.height)


def velocity_section(r: _Reader, company_id: str | None) -> str:
    """Sales velocity per rep (bars, fastest first) and per pipeline (the table)."""
    w, p = _where(company_id, "AND")
    df = r.query("SELECT scope, coalesce(scope_name, CAST(scope_id AS VARCHAR)) AS name, open_deals, win_rate, "
                 "average_deal_size, average_cycle_days, velocity_per_day FROM marts.sales_velocity "
                 "WHERE velocity_per_day IS NOT NULL" + w + " ORDER BY scope DESC, velocity_per_day DESC, name", p)
    reps = df.filter(pl.col("scope") == "rep").head(REP_LIMIT)
    labels = [str(n) for n in reps["name"]]
    body = bar_chart(labels, [Series("expected won revenue per day", GREEN, [_num(v) for v in reps["velocity_per_day"]])],
                     money, tip=lambda lab, s, v: f"{lab}: {money(v)} a day")
    body += data_table(["per", "name", "open deals", "win rate", "average won deal", "average cycle (days)", "per day"],
                       [(sc, n, f"{int(o):,}", pct(wr), money(a), "n/a" if c is None else f"{float(c):.1f}", money(v))
                        for sc, n, o, wr, a, c, v in df.iter_rows()], "reps and pipelines")
    return figure("velocity", "Sales velocity", "Open deals × win rate × average won deal ÷ average cycle, over the "
                  "deals closed in the 180 days to the as-of day (marts.sales_velocity): the won revenue the open "
                  "pipeline brings per day, per rep; pipelines in the table.", body, reps.height)


def source_effectiveness_section(r: _Reader, company_id: str | None) -> str:
    """Per lead source x UTM source (all cohorts): deal and win rates, and the won revenue in the table."""
    w, p = _where(company_id)
    df = r.query("SELECT lead_source, utm_source, sum(leads) AS leads, sum(deals) AS deals, sum(wins) AS wins, "
                 "sum(won_revenue) AS revenue FROM marts.lead_source_effectiveness" + w +
                 " GROUP BY lead_source, utm_source ORDER BY sum(won_revenue) DESC, sum(leads) DESC, 1, 2", p)
    labels = [s if u == "(none)" else f"{s} / {u}" for s, u in zip(df["lead_source"], df["utm_source"])]
    series = [Series("became a deal", ORANGE, [100.0 * float(d) / float(n) for d, n in zip(df["deals"], df["leads"])]),
              Series("won", GREEN, [100.0 * float(x) / float(n) for x, n in zip(df["wins"], df["leads"])])]
    body = bar_chart(labels, series, lambda v: f"{v:.0f}%", tip=lambda lab, s, v: f"{lab}: {s.name} {v:.1f}% of leads")
    body += data_table(["source", "leads", "deals", "won", "won revenue"],
                       [(lab, f"{int(n):,}", f"{int(d):,}", f"{int(x):,}", money(v))
                        for lab, (_, _, n, d, x, v) in zip(labels, df.iter_rows())], "counts and revenue")
    return figure("source_effectiveness", "Lead source effectiveness", "Share of the leads of each lead source and "
                  "UTM source (all cohorts and campaigns; per month, medium and campaign in "
                  "marts.lead_source_effectiveness) that became a deal and were won, the most won revenue first.",
                  body, df.height)


ATTRIBUTION_MODELS = (("first_touch_credit", "first touch", BLUE), ("last_touch_credit", "last touch", ORANGE),
                      ("linear_credit", "linear", GREEN))


def attribution_section(r: _Reader, company_id: str | None) -> str:
    """Won revenue credited to each touch source under the three models, side by side."""
    w, p = _where(company_id)
    sums = ", ".join(f"sum({col}) AS {col}" for col, _, _ in ATTRIBUTION_MODELS)
    df = r.query(f"SELECT touch_source, {sums} FROM marts.marketing_attribution" + w +
                 " GROUP BY touch_source ORDER BY sum(linear_credit) DESC, touch_source", p)
    labels = [str(s) for s in df["touch_source"]]
    series = [Series(name, color, [_num(v) for v in df[col]]) for col, name, color in ATTRIBUTION_MODELS]
    body = bar_chart(labels, series, money, tip=lambda lab, s, v: f"{lab}: {money(v)} won revenue ({s.name})")
    body += data_table(["touch source", *(name for _, name, _ in ATTRIBUTION_MODELS)],
                       [(s, *(money(v) for v in vals)) for s, *vals in df.iter_rows()], "credit per model")
    return figure("attribution", "Won revenue by touch source", "The won revenue credited to each source of the "
                  "touches before a deal (marts.marketing_attribution: the lead's arrival, e-mail clicks, pages visited "
                  "with UTM tags) under first-touch, last-touch and linear attribution; each model sums to the won "
                  "revenue, deals without a lead counted as unattributed.", body, df.height)


def score_calibration_section(r: _Reader) -> str:
    """Deal rate per score band, rule and decayed scores side by side, against the base rate (all companies)."""
    df = r.query("SELECT score_kind, band, band_order, leads, deals, deal_rate, base_deal_rate, scored_after_days, "
                 "outcome_days FROM marts.lead_score_calibration ORDER BY score_kind, band_order")
    bands = df.filter(pl.col("score_kind") == "rule_score")
    labels = [str(b) for b in bands["band"]]
    series = [Series(name, color, [_num(v) for v in df.filter(pl.col("score_kind") == kind)["deal_rate"]])
              for kind, name, color in (("rule_score", "rule score", BLUE), ("decayed_score", "decayed score", PURPLE))]
    base = _num(df["base_deal_rate"][0]) if df.height else None
    judged = int(bands["leads"].sum()) if bands.height else 0
    body = bar_chart(labels, series, lambda v: f"{v:.0f}%", ref=(base, f"all leads {base:.1f}%") if base is not None else None,
                     tip=lambda lab, s, v: f"{s.name} {lab}: {v:.1f}% became a deal")
    body += data_table(["score", "band", "leads", "became a deal", "deal rate"],
                       [(k, b, f"{int(n):,}", f"{int(d):,}", pct(rate)) for k, b, _, n, d, rate, *_ in df.iter_rows()],
                       "leads per band")
    days, horizon = (int(df["scored_after_days"][0]), int(df["outcome_days"][0])) if df.height else (0, 0)
    return figure("score_calibration", "Does a higher lead score convert more?", f"Share of the {judged:,} leads "
                  f"(all companies) whose outcome is known that became a deal within {horizon} days, by the score they "
                  f"had {days} days after they arrived (marts.lead_score_calibration); a useful score rises left to "
                  "right above the dashed base rate.", body, sum(1 for s in series for v in s.values if v is not None))

def model_quality_section(r: _Reader) -> str:
    """The learned conversion score: calibration of the latest trained run by decile, and its holdout AUC
    against the rule and decayed scores' over runs (ops.lead_conversion_model_runs; all companies)."""
    runs = r.query("SELECT run_id, as_of_date, trained_at, status, message, auc_won, rule_auc_won, decayed_auc_won, "
                   "brier_won, rule_brier_won, base_rate_won, holdout_leads, beats_rule_score, calibration "
                   "FROM ops.lead_conversion_model_runs ORDER BY trained_at") \
        if table_columns(r, "ops.lead_conversion_model_runs") else pl.DataFrame()
    title = "Learned conversion score: is it better than the rule score?"
    if not runs.height:
        return figure("model_quality", title, "No model run recorded yet: the next refresh trains one.", "", 0)
    last = runs.row(-1, named=True)
    trained = runs.filter(pl.col("status") == "trained")
    # the latest run trained nothing: its reason, above the latest trained run's charts if there is one
    note = (f'<p class="model-status" data-status="{esc(last["status"])}">{esc(last["message"])}</p>'
            if last["status"] != "trained" else "")
    if not trained.height:
        return (f'<figure class="chart" id="chart-model_quality" data-chart="model_quality" data-points="0" '
                f'data-marks="0" data-status="{esc(last["status"])}"><h2>{esc(title)}</h2>'
                f"<figcaption>The latest refresh trained no model.</figcaption>{note}</figure>")
    t = trained.row(-1, named=True)
    cal = json.loads(t["calibration"])
    verdict = ("beats" if t["beats_rule_score"] else "does NOT beat") + " the rule score"
    labels = [f"decile {c['decile']}" for c in cal]
    body = bar_chart(labels, [Series("predicted", BLUE, [100 * c["mean_p"] for c in cal]),
                              Series("observed", GREEN, [100 * c["observed"] for c in cal])],
                     lambda v: f"{v:.0f}%", ref=(100 * t["base_rate_won"], f"base rate {100 * t['base_rate_won']:.1f}%"),
                     tip=lambda lab, s, v: f"{lab}: {s.name} won rate {v:.1f}%")
    body += data_table(["decile", "leads", "predicted won rate", "observed won rate"],
                       [(c["decile"], f"{c['leads']:,}", pct(100 * c["mean_p"], 2), pct(100 * c["observed"], 2)) for c in cal],
                       "holdout leads per decile")
    calib = figure("model_calibration", f"Learned conversion score: calibration ({verdict})",
                   f"The latest trained model's holdout ({int(t['holdout_leads']):,} leads of the newest cohorts, run of "
                   f"{t['as_of_date']}): mean predicted probability of a won deal per decile against the share that "
                   f"was won; calibrated bars match pairwise. AUC {t['auc_won']:.3f} against the rule score's "
                   f"{t['rule_auc_won']:.3f}, Brier {t['brier_won']:.4f} against {t['rule_brier_won']:.4f} "
                   "(ops.lead_conversion_model_runs; the scores: marts.lead_conversion_scores).", body, len(cal))
    run_labels = [f"{d} #{i + 1}" for i, d in enumerate(trained["as_of_date"])]
    series = [Series("learned", BLUE, [_num(v) for v in trained["auc_won"]]),
              Series("rule score", ORANGE, [_num(v) for v in trained["rule_auc_won"]]),
              Series("decayed score", PURPLE, [_num(v) for v in trained["decayed_auc_won"]])]
    body = line_chart(run_labels, series, lambda v: f"{v:.2f}", tip=lambda lab, s, v: f"run {lab}: {s.name} AUC {v:.3f}")
    body += data_table(["run", "status", "AUC", "rule AUC", "decayed AUC", "Brier", "rule Brier", "beats rule"],
                       [(str(a), st, _f3(x), _f3(y), _f3(z), _f3(b, 4), _f3(rb, 4), "yes" if k else "no" if k is not None else "")
                        for _, a, _, st, _, x, y, z, b, rb, _, _, k, _ in runs.iter_rows()], "every run")
    over = figure("model_auc", "Learned conversion score: holdout AUC over runs",
                  "Each trained run's AUC of a won deal on its time holdout, against the rule and decayed scores "
                  "judged on the same leads at the same age; the table has every run, untrained ones with their status.",
                  body, trained.height)
    return note + calib + over


def _f3(v: Any, digits: int = 3) -> str:
    return "" if v is None else f"{float(v):.{digits}f}"


ACCOUNT_LIMIT = 20  # bars in the accounts chart; the table has them too


def accounts_section(r: _Reader, company_id: str | None) -> str:
    """The accounts with the most won and open value (stacked), and their counts in the table."""
    w, p = _where(company_id)
    df = r.query("SELECT account_name, contacts, leads, opportunities, deals, open_value, won_value, "
                 "days_since_last_touch, decision_makers FROM marts.account_summary" + w +
                 " ORDER BY won_value + open_value DESC, account_name LIMIT ?", p + [ACCOUNT_LIMIT])
    total = r.query("SELECT count(*) AS n FROM marts.account_summary" + w, p)["n"][0]
    labels = [str(n) for n in df["account_name"]]
    series = [Series("won", GREEN, [_num(v) for v in df["won_value"]]),
              Series("open", BLUE, [_num(v) for v in df["open_value"]])]
    body = bar_chart(labels, series, money, stacked=True, tip=lambda lab, s, v: f"{lab}: {money(v)} {s.name}")
    body += data_table(["account", "contacts", "leads", "opportunities", "deals", "open", "won", "days since touch",
                        "decision makers"],
                       [(a, f"{int(c):,}", f"{int(ld):,}", f"{int(o):,}", f"{int(d):,}", money(ov), money(wv),
                         "never" if t is None else f"{int(t):,}", f"{int(dm):,}")
                        for a, c, ld, o, d, ov, wv, t, dm in df.iter_rows()], f"the top {df.height} accounts")
    return figure("accounts", "Top accounts", f"The {df.height} of {int(total):,} accounts with the most won and open "
                  "deal value (marts.account_summary; accounts are derived from contacts' and leads' company names "
                  "and e-mail domains, marts.dim_accounts).", body, df.height)

def contact_quality_section(r: _Reader, company_id: str | None) -> str:
    """Average contact quality score per owner (lowest first) and the problems behind it in the table."""
    w, p = _where(company_id, "AND")
    df = r.query("SELECT coalesce(rep_name, '(unassigned)') AS owner, contacts, average_quality_score, incomplete, "
                 "invalid_email + invalid_phone AS invalid, hard_bounced + complained + unsubscribed AS undeliverable, "
                 "duplicate_email + duplicate_name AS duplicates, stale, decision_maker_coverage_pct "
                 "FROM marts.contact_quality_summary WHERE contacts > 0" + w +
                 " ORDER BY average_quality_score, owner", p)
    shown = df.head(REP_LIMIT)
    labels = [str(o) for o in shown["owner"]]
    body = bar_chart(labels, [Series("average quality score", BLUE, [_num(v) for v in shown["average_quality_score"]])],
                     lambda v: f"{v:.0f}", tip=lambda lab, s, v: f"{lab}: average contact quality {v:.1f} / 100")
    body += data_table(["owner", "contacts", "average score", "incomplete", "invalid", "bounced, complained or "
                        "unsubscribed", "duplicates", "stale", "opportunities with a decision maker"],
                       [(o, f"{int(n):,}", "n/a" if a is None else f"{float(a):.1f}", f"{int(i):,}", f"{int(v):,}",
                         f"{int(u):,}", f"{int(d):,}", f"{int(s):,}", pct(c))
                        for o, n, a, i, v, u, d, s, c in df.iter_rows()], f"all {df.height} owners")
    return figure("contact_quality", "Contact quality per owner", "Average 0–100 quality score of each rep's contacts "
                  "(marts.contact_quality: missing fields, invalid or undeliverable addresses, duplicates, no touch "
                  "for 90 days each take points off; the reasons per contact are in its quality_issues), lowest first; "
                  "decision-maker coverage of their opportunities in the table (marts.contact_quality_summary).",
                  body, shown.height)

SEGMENT_LABELS = {"customer_at_risk": "customer at risk", "customer": "customer", "hot_untouched": "hot, untouched",
                  "engaged": "engaged", "nurturing": "nurturing", "dormant": "dormant"}


def segments_section(r: _Reader, company_id: str | None) -> str:
    """Members per engagement segment (leads and contacts stacked), with the 30 days' moves in the table."""
    w, p = _where(company_id)
    df = r.query("SELECT segment, min(segment_order) AS o, sum(leads) AS leads, sum(contacts) AS contacts, "
                 "sum(entered_30d) AS entered, sum(left_30d) AS left_ FROM marts.segment_summary" + w +
                 " GROUP BY segment ORDER BY 2", p)
    labels = [SEGMENT_LABELS.get(s, s) for s in df["segment"]]
    series = [Series("leads", BLUE, [float(v) for v in df["leads"]]),
              Series("contacts", ORANGE, [float(v) for v in df["contacts"]])]
    body = bar_chart(labels, series, lambda v: f"{v:,.0f}", stacked=True,
                     tip=lambda lab, s, v: f"{lab}: {v:,.0f} {s.name}")
    body += data_table(["segment", "leads", "contacts", "entered (30 days)", "left (30 days)"],
                       [(lab, f"{int(a):,}", f"{int(b):,}", f"{int(c):,}", f"{int(d):,}")
                        for lab, (_, _, a, b, c, d) in zip(labels, df.iter_rows())], "members and moves")
    return figure("segments", "Engagement segments", "Every live lead and contact in one segment as of the as-of day "
                  "(marts.lead_segments, contact_segments; rules in dbt_project.yml vars segment_*), and how many entered or left "
                  "each in the last 30 days (marts.segment_movements). `crm-warehouse segments export` writes a "
                  "segment's members for a campaign, without the unsubscribed.", body, df.height)

SEGMENT_COLORS = {"customer_at_risk": RED, "customer": GREEN, "hot_untouched": ORANGE, "engaged": BLUE,
                  "nurturing": PURPLE, "dormant": GREY}


def segment_sizes_section(r: _Reader, company_id: str | None) -> str:
    """Members per segment at each refresh's as-of day: the running sum of the moves into and out of each
    segment (marts.segment_movements, from the snapshot snap_engagement_segments; a member's first day is a
    move from '(new)')."""
    w, p = _where(company_id, "AND")
    df = r.query("SELECT as_of_date, segment, sum(delta) AS delta FROM ("
                 "SELECT as_of_date, to_segment AS segment, members AS delta, company_id FROM marts.segment_movements "
                 "UNION ALL SELECT as_of_date, from_segment, -members, company_id FROM marts.segment_movements) AS m "
                 "WHERE substr(segment, 1, 1) <> '('" + w + " GROUP BY as_of_date, segment ORDER BY as_of_date", p)
    days = sorted(set(df["as_of_date"]))
    deltas = {(d, sg): int(v) for d, sg, v in df.iter_rows()}
    series, rows = [], []
    for sg, color in SEGMENT_COLORS.items():
        total, values = 0, []
        for d in days:
            total += deltas.get((d, sg), 0)
            values.append(float(total))
        series.append(Series(SEGMENT_LABELS[sg], color, values))
    for i, d in enumerate(days):
        rows.append((str(d), *(f"{int(s.values[i]):,}" for s in series)))
    body = line_chart([str(d) for d in days], series, lambda v: f"{v:,.0f}",
                      tip=lambda lab, s, v: f"{lab}: {s.name} {v:,.0f} members")
    body += data_table(["as of", *(s.name for s in series)], rows, "members per refresh")
    return figure("segment_sizes", "Engagement segments over time", "Members of each segment at each refresh's as-of "
                  "day, leads and contacts together: the running sum of the moves into and out of it, deletions from the "
                  "CRM included (marts.segment_movements, kept by the snapshot snap_engagement_segments).", body,
                  len(days) * len(series))


def attainment_section(r: _Reader, company_id: str | None, as_of: str | None) -> str:
    """The quarter the as-of day is in (quotas are set ahead: a later quarter has nothing won yet)."""
    w, p = _where(company_id, "AND")
    latest = r.query("SELECT max(period_start) AS p FROM marts.rep_performance WHERE quota_period = 'quarterly' "
                     "AND period_start <= ?" + w, [dt.date.fromisoformat(as_of or "9999-12-31"), *p])
    period = latest["p"][0] if latest.height else None
    df = r.query("SELECT rep_name, revenue_target, revenue_won, attainment_pct, pipeline_coverage "
                 "FROM marts.rep_performance WHERE quota_period = 'quarterly' AND period_start = ?" + w +
                 " ORDER BY attainment_pct DESC, rep_name", [period, *p]) if period is not None else pl.DataFrame()
    shown = df.head(REP_LIMIT) if df.height else df
    labels = [str(n) for n in shown["rep_name"]] if shown.height else []
    series = [Series("revenue won ÷ target", PURPLE, [_num(v) for v in shown["attainment_pct"]] if shown.height else [])]
    body = bar_chart(labels, series, lambda v: f"{v:.0f}%", ref=(100.0, "quota"),
                     tip=lambda lab, s, v: f"{lab}: attainment {v:.1f}%")
    if shown.height:
        body += data_table(["rep", "revenue target", "revenue won", "attainment", "pipeline coverage"],
                           [(a, money(b), money(c), pct(d), "n/a" if e is None else f"{float(e):.2f}×")
                            for a, b, c, d, e in df.iter_rows()], f"all {df.height} quotas of the quarter")
    more = f" The {REP_LIMIT} highest of {df.height} are drawn." if df.height > REP_LIMIT else ""
    return figure("attainment", f"Rep attainment against quota, {quarter_label(period) if period else 'no quotas'}",
                  "Revenue won in the as-of day's quarter ÷ the rep's quarterly revenue target "
                  f"(marts.rep_performance); the line is 100 %.{more}", body, shown.height)


def variant_label(name: Any, variant: Any) -> str:
    """A campaign's label: its name, with its A/B variant unless it has none ('none') or the name says it
    already ("Spring building season (A)")."""
    name = str(name)
    if variant is None or str(variant).lower() in ("", "none") or name.endswith(f"({variant})"):
        return name
    return f"{name} ({variant})"


def email_section(r: _Reader, company_id: str | None) -> str:
    if company_id:  # BuildDesk's own marketing campaigns: not a tenant's data
        return ""
    df = r.query("SELECT campaign_name, variant, ab_test_name, delivered, unique_opens_rate, "
                 "unique_opens_excl_machine_rate, unique_clicks_rate, open_lift_pct, open_p_value, click_lift_pct, "
                 "click_p_value FROM marts.email_campaign_performance ORDER BY campaign_name, variant")
    labels = [variant_label(n, v) for n, v in zip(df["campaign_name"], df["variant"])]
    series = [Series("opened (people, privacy-proxy opens excluded)", BLUE,
                     [_num(v) for v in df["unique_opens_excl_machine_rate"]]),
              Series("opened incl. machine opens", "#93c5fd", [_num(v) for v in df["unique_opens_rate"]]),
              Series("clicked", GREEN, [_num(v) for v in df["unique_clicks_rate"]])]
    engagement = bar_chart(labels, series, lambda v: f"{v:.0f}%",
                           tip=lambda lab, s, v: f"{lab}: {s.name} {v:.1f}% of delivered")
    ab = df.filter(pl.col("ab_test_name").is_not_null())
    ab_rows = []
    for row in ab.iter_rows(named=True):
        p_open, p_click = _num(row["open_p_value"]), _num(row["click_p_value"])
        ab_rows.append("<tr>" + "".join(f"<td>{x}</td>" for x in (
            esc(row["ab_test_name"]), esc(row["variant"]), esc(row["campaign_name"]), f"{row['delivered']:,}",
            pct(row["unique_opens_excl_machine_rate"]), _signed(row["open_lift_pct"]), _p(p_open),
            pct(row["unique_clicks_rate"]), _signed(row["click_lift_pct"]), _p(p_click))) + "</tr>")
    ab_html = ("<table class=\"ab\"><tr><th>A/B test</th><th>variant</th><th>campaign</th><th>delivered</th>"
               "<th>open rate</th><th>open lift</th><th>p (opens)</th><th>click rate</th><th>click lift</th>"
               "<th>p (clicks)</th></tr>" + "".join(ab_rows) + "</table>"
               "<p class=\"note\">Lift is the variant's rate against its control's; p is the pooled two-proportion "
               "z-test's two-sided p-value. <b>Bold</b>: p &lt; 0.05.</p>") if ab_rows else "<p>No A/B tests.</p>"
    return (figure("email_engagement", "E-mail campaign engagement", "Unique opens and clicks ÷ delivered, per campaign "
                   "and variant (marts.email_campaign_performance). Apple Mail Privacy Protection and similar proxies "
                   "open every message: the dark bar leaves those opens out.", engagement, df.height)
            + f'<section class="ab-results" id="ab-results"><h2>A/B test results</h2>{ab_html}</section>')


def _signed(v: Any) -> str:
    x = _num(v)
    return "n/a" if x is None else f"{x:+.1f}%"


def _p(p: float | None) -> str:
    if p is None:
        return "n/a"
    return f"<b>{p:.4f}</b>" if p < 0.05 else f"{p:.4f}"


def lead_score_section(r: _Reader, company_id: str | None) -> str:
    w, p = _where(company_id, "AND")
    df = r.query("SELECT CASE WHEN decayed_score >= 100 THEN 10 ELSE CAST(floor(decayed_score / 10) AS INTEGER) END "
                 "AS bin, grade, count(*) AS leads FROM marts.lead_scores WHERE NOT is_deleted" + w +
                 " GROUP BY 1, 2 ORDER BY 1, 2", p)
    labels = [f"{10 * b}–{10 * b + 10}" for b in range(10)] + ["100+"]
    series = []
    for grade in ("cold", "warm", "hot"):
        counts = {int(b): int(n) for b, g, n in df.iter_rows() if g == grade}
        if counts:
            series.append(Series(grade, GRADE_COLORS[grade], [float(counts[b]) if b in counts else None for b in range(11)]))
    body = bar_chart(labels, series, lambda v: f"{v:,.0f}", stacked=True,
                     tip=lambda lab, s, v: f"score {lab}: {v:,.0f} {s.name} leads")
    total = int(df["leads"].sum()) if df.height else 0
    grades = {g: int(df.filter(pl.col("grade") == g)["leads"].sum()) for g in ("hot", "warm", "cold")}
    body += data_table(["grade", "leads"], [(g, f"{n:,}") for g, n in grades.items()], "leads per grade")
    return figure("lead_scores", "Lead score distribution", f"Decayed rule scores of the {total:,} live leads "
                  "(marts.lead_scores), coloured by grade.", body, len([1 for s in series for v in s.values if v]))


def quality_section(r: _Reader) -> str:
    if not table_columns(r, "ops.check_results"):
        return ('<section class="quality" id="quality" data-status="none"><h2>Quality checks</h2>'
                "<p>No check has been recorded yet.</p></section>")
    last = r.query("SELECT run_id, max(checked_at) AS at FROM ops.check_results GROUP BY run_id ORDER BY 2 DESC LIMIT 1")
    if not last.height:
        return ('<section class="quality" id="quality" data-status="none"><h2>Quality checks</h2>'
                "<p>No check has been recorded yet.</p></section>")
    run_id, at = last.row(0)
    df = r.query("SELECT asset, check_name, check_kind, passed, failing_count, failing_sample, message, as_of "
                 "FROM ops.check_results WHERE run_id = ? ORDER BY passed, asset, check_name", [run_id])
    passed = int(df["passed"].sum())
    failed = df.height - passed
    status = "failed" if failed else "passed"
    rows = "".join("<tr>" + "".join(f"<td>{esc(v)}</td>" for v in (a, c, k, n, s, m)) + "</tr>"
                   for a, c, k, ok, n, s, m, _ in df.iter_rows() if not ok)
    fail_html = (f"<table><tr><th>asset</th><th>check</th><th>kind</th><th>failing rows</th><th>sample</th>"
                 f"<th>message</th></tr>{rows}</table>") if failed else ""
    ingest = ""
    if table_columns(r, "ops.ingest_batches"):
        b = r.query("SELECT status, count(*) AS n FROM (SELECT asset, status, row_number() OVER "
                    "(PARTITION BY asset ORDER BY started_at DESC) AS k FROM ops.ingest_batches) t WHERE k = 1 "
                    "GROUP BY status ORDER BY status")
        ingest = "<p>Latest ingest batch per raw table: " + ", ".join(f"{n} {esc(s)}" for s, n in b.iter_rows()) + ".</p>"
    as_of = df["as_of"][0] if df.height else None
    return (f'<section class="quality" id="quality" data-status="{status}" data-passed="{passed}" '
            f'data-failed="{failed}"><h2>Quality checks</h2>'
            f'<p class="status {status}">Latest run <code>{esc(run_id)}</code> at {esc(str(at)[:19])} UTC'
            f"{f' (as of {esc(as_of)})' if as_of else ''}: <b>{passed}</b> checks passed, <b>{failed}</b> failed.</p>"
            f"{fail_html}{ingest}</section>")


def headline(r: _Reader, company_id: str | None) -> tuple[str, str | None]:
    w, p = _where(company_id, "AND")
    as_of = r.query("SELECT max(metric_date) AS d FROM marts.pipeline_metrics WHERE period_type = 'daily'" + w, p)["d"][0]
    open_ = _metrics(r, ["open_deals", "pipeline_value", "weighted_pipeline"], (), company_id).row(0, named=True)
    quarters = _metrics(r, ["deals_closed", "win_rate", "won_revenue"], [QUARTER], company_id)
    wl = quarters.row(-1, named=True) if quarters.height else {}  # the latest quarter with a closed deal
    leads = r.query("SELECT count(*) AS n, sum(CASE WHEN grade = 'hot' THEN 1 ELSE 0 END) AS hot FROM marts.lead_scores "
                    "WHERE NOT is_deleted" + w, p).row(0)
    tiles = [("open deals", f"{int(open_['open_deals'] or 0):,}"), ("open pipeline", money(open_["pipeline_value"] or 0)),
             ("weighted pipeline", money(open_["weighted_pipeline"] or 0)),
             ("won this quarter", money(wl.get("won_revenue") or 0)),
             ("win rate this quarter", pct(100.0 * float(wl["win_rate"])) if wl.get("win_rate") is not None else "n/a"),
             ("live leads", f"{leads[0]:,}"), ("hot leads", f"{int(leads[1] or 0):,}")]
    if company_id is None:  # leads nothing resolved a tenant for (live schema: no leads.company_id)
        orphans = r.query("SELECT count(*) AS n FROM marts.dim_leads WHERE company_id IS NULL AND NOT is_deleted")["n"][0]
        tiles.append(("leads without a company", f"{int(orphans):,}"))
    html_ = "".join(f'<div class="tile"><span>{esc(k)}</span><b data-kpi="{esc(k)}">{esc(v)}</b></div>' for k, v in tiles)
    return f'<div class="tiles">{html_}</div>', (str(as_of) if as_of is not None else None)


CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#0f172a;margin:0;background:#f8fafc}
header{background:#0f172a;color:#f8fafc;padding:18px 32px}header h1{margin:0 0 4px;font-size:22px}
header p{margin:0;color:#cbd5e1}main{max-width:940px;margin:0 auto;padding:16px 24px 48px}
.tiles{display:flex;flex-wrap:wrap;gap:10px;margin:8px 0 16px}.tile{background:#fff;border:1px solid #e2e8f0;
border-radius:8px;padding:8px 14px;min-width:110px}.tile span{display:block;color:#64748b;font-size:12px}
.tile b{font-size:18px}figure,section{background:#fff;border:1px solid #e2e8f0;border-radius:8px;margin:0 0 18px;
padding:12px 16px}h2{font-size:16px;margin:0 0 2px}figcaption{color:#475569;margin-bottom:6px}
svg{display:block;max-width:100%;height:auto}.grid{stroke:#e2e8f0}.ref{stroke:#0f172a;stroke-dasharray:4 3}
.axis{font-size:11px;fill:#475569}.legend{display:flex;flex-wrap:wrap;gap:14px;margin:4px 0}
.key i{display:inline-block;width:11px;height:11px;margin-right:5px;border-radius:2px;vertical-align:-1px}
table{border-collapse:collapse;font-size:12px;margin:6px 0}td,th{border-bottom:1px solid #e2e8f0;padding:3px 8px;
text-align:left}details summary{cursor:pointer;color:#2563eb}.status.passed b:first-of-type{color:#16a34a}
.status.failed{color:#dc2626}.note{color:#64748b;font-size:12px}.empty{color:#64748b}
"""

# Runs once the page is laid out: how many marks of each chart have a size on screen, and how many of
# its category labels reach outside the chart (clipped by it).
SCRIPT = """
(function(){var total=0;document.querySelectorAll('figure.chart').forEach(function(f){var n=0;
f.querySelectorAll('svg .mark').forEach(function(m){var b=m.getBBox();if(b.width>0&&b.height>0){n++;}});
var svg=f.querySelector('svg');f.setAttribute('data-drawn',n);
var out=0,box=svg?svg.getBoundingClientRect():null;f.querySelectorAll('svg text.label').forEach(function(t){
var r=t.getBoundingClientRect();if(r.left<box.left-0.5||r.right>box.right+0.5||r.top<box.top-0.5||
r.bottom>box.bottom+0.5){out++;}});f.setAttribute('data-labels-outside',out);
f.setAttribute('data-width',svg?Math.round(svg.getBoundingClientRect().width):0);total+=n;});
document.body.setAttribute('data-marks-drawn',total);})();
"""


def build_report(cfg: Settings, company_id: str | None = None, *, now: dt.datetime | None = None) -> Path:
    """Write ``$CRM_HOME/report/index.html`` (or ``company-<id>.html`` for one tenant) and return its path."""
    now = now or dt.datetime.now(dt.timezone.utc)
    if company_id and not re.fullmatch(r"[0-9a-fA-F-]{36}", company_id):
        raise ValueError(f"--company-id must be a UUID, not {company_id!r}")
    r = _Reader(cfg)
    try:
        if not table_columns(r, "marts.pipeline_metrics"):
            raise ReportError("the warehouse has no marts yet: run `crm-warehouse refresh` (or `crm-warehouse demo`) "
                              "first")
        if company_id and not r.query("SELECT count(*) AS n FROM marts.dim_leads WHERE CAST(company_id AS VARCHAR) = ?",
                                      [company_id.lower()])["n"][0]:
            raise ReportError(f"company {company_id} has no rows in the marts: check the id (marts.dim_leads lists "
                              "every company) or refresh first")
        tiles, as_of = headline(r, company_id)
        sections = [pipeline_section(r, company_id), win_rate_section(r, company_id), funnel_section(r, company_id),
                    speed_to_lead_section(r, company_id), follow_ups_section(r, company_id),
                    velocity_section(r, company_id), source_effectiveness_section(r, company_id),
                    attribution_section(r, company_id), accounts_section(r, company_id),
                    contact_quality_section(r, company_id), segments_section(r, company_id),
                    segment_sizes_section(r, company_id),
                    attainment_section(r, company_id, as_of), email_section(r, company_id),
                    lead_score_section(r, company_id), score_calibration_section(r), model_quality_section(r),
                    quality_section(r)]
    finally:
        r.close()
    scope = f"company {company_id}" if company_id else "all companies"
    page = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width,initial-scale=1"><title>BuildDesk CRM report{f" — {esc(company_id)}" if company_id else ""}'
            f"</title><style>{CSS}</style></head><body><header><h1>BuildDesk CRM report</h1>"
            f"<p>As of {esc(as_of or 'n/a')} · {esc(scope)} · {esc(cfg.warehouse)} warehouse · written "
            f"{now:%Y-%m-%d %H:%M} UTC</p></header><main>{tiles}{''.join(sections)}</main>"
            f"<script>{SCRIPT}</script></body></html>")
    out_dir = cfg.home / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / (f"company-{company_id}.html" if company_id else "index.html")
    tmp = path.with_suffix(".tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, path)  # a reader never sees half a page
    return path
