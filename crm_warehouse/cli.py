"""`crm-warehouse`: the command line of PRODUCT.md."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import Sequence

import duckdb
import psycopg
from rich.console import Console
from rich.table import Table

from ingest.config import Settings, email_chunk_bytes, memory_limit, redact, settings
from ingest.postgres_server import SourceError

# sent to a file (cron), rich would cut tables at 80 columns: a log gets wide lines instead
console = Console(stderr=True, width=None if sys.stderr.isatty() else 200)
out = Console(width=None if sys.stdout.isatty() else 200)


# what a log shows only with -v: nodes starting, tests passing, progress inside a table or an e-mail chunk
_ROUTINE = re.compile(r"^(\d+ of \d+ (START|PASS)\b|raw/\w+: .*(rows read so far|files loaded))")


def _progress(status, verbose: bool = False):
    """Progress to the status line on a terminal; to a log (cron, a file), one timestamped line per
    stage, finished table (ingested or built: rows, rows/s or dbt's time) and problem, or with ``verbose`` every
    step (each chunk of a table being read, each e-mail chunk, each dbt node starting, each test passing)."""
    def report(message: str) -> None:
        if console.is_terminal and not verbose:
            status.update(message)
        elif verbose or not _ROUTINE.match(message):
            console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {message}", highlight=False, soft_wrap=True)
    return report


def cmd_source_up(cfg: Settings, args: argparse.Namespace) -> int:
    from simulator import source

    with console.status("starting the source…") as status:
        url, created = source.up(cfg, scale=args.scale, seed=args.seed, history_days=args.history_days,
                                 end_date=args.end_date, leads_variant=args.leads_variant,
                                 schema_kind=args.schema, progress=_progress(status))
    if not created:
        console.print("the source already exists; `crm-warehouse source advance` moves it forward")
    out.print(redact(url), highlight=False, soft_wrap=True)
    return 0


def cmd_source_advance(cfg: Settings, args: argparse.Namespace) -> int:
    from simulator import advance, source

    url = source.source_url(cfg, start=True)
    with console.status("advancing the source…") as status:
        counts = advance.advance(url, cfg.email_events_dir, days=args.days, progress=_progress(status))
    table = Table("change", "rows", title=f"simulated {args.days} day(s)")
    for k, v in counts.items():
        table.add_row(k, f"{v:,}")
    out.print(table)
    return 0


def cmd_source_down(cfg: Settings, args: argparse.Namespace) -> int:
    from simulator import source

    out.print(source.down(cfg))
    return 0


# Headline figures of the demo summary: the metrics from the semantic layer (serving/metrics.py, defined
# once in dbt_project/models/metrics/_metrics.yml, the report reads the same), the lead counts from the marts.
HEADLINE_METRICS = {"open deals": ("open_deals", None, 1), "open pipeline value (stage-weighted)": ("weighted_pipeline", None, 1),
                    "win rate, deals closed in the last 4 quarters (%)": ("win_rate", "year", 100),
                    "mean cycle of won deals, last 4 quarters (days)": ("cycle_time_days", "year", 1),
                    "e-mail unique open rate excl. machine opens (%)": ("open_rate", None, 100)}
HEADLINES = {
    "hot leads": "SELECT count(*) FROM marts.lead_scores WHERE grade = 'hot' AND NOT is_deleted",
    "leads without a company (no tenant resolved)": "SELECT count(*) FROM marts.dim_leads WHERE company_id IS NULL "
                                                    "AND NOT is_deleted",
    "leads whose operational score misses e-mail engagement": "SELECT count(*) FROM marts.lead_scores WHERE score_drift < 0",
}


def headline_figures(wh, kind: str) -> dict[str, object]:
    """The demo summary's headline figures; "last 4 quarters" are the latest close quarter and the 3 before."""
    import datetime as dt

    from serving.metrics import QUARTER, metrics_sql

    quarters = wh.query(metrics_sql(kind, ["deals_closed"], [QUARTER]))[QUARTER].drop_nulls()
    since = None
    if len(quarters):
        last = quarters.max()
        month = last.year * 12 + last.month - 1 - 9
        since = dt.date(month // 12, month % 12 + 1, 1)
    out: dict[str, object] = {}
    for label, (metric, window, scale) in HEADLINE_METRICS.items():
        value = wh.query(metrics_sql(kind, [metric], since=since if window else None))[metric][0]
        out[label] = None if value is None else int(value) if metric == "open_deals" else round(float(value) * scale, 1)
    out |= {name: wh.query(sql).row(0)[0] for name, sql in HEADLINES.items()}
    return out


def _ingest_table(meta: dict[str, dict], title: str) -> Table:
    table = Table("asset", "mode", "read", "written", "deleted", "rows", "quarantined", title=title)
    for key in sorted(meta):
        m = meta[key]
        if "rows_extracted" in m:
            table.add_row(key, m["mode"], f"{m['rows_extracted']:,}", f"{m['rows_written']:,}", f"{m['rows_deleted']:,}",
                          f"{m['row_count']:,}", f"{m.get('rows_quarantined', 0):,}")
        elif "lines_read" in m:
            table.add_row(key, "landing", f"{m['lines_read']:,}", f"{m['events_new']:,}", "0",
                          f"dup {m['duplicates']:,}", f"{m['quarantined']:,}")
    return table


def _print_outcome(res, seconds: float) -> None:
    if res.as_of and res.dbt_skipped:
        out.print(res.dbt_skipped, highlight=False)
    elif res.as_of:
        out.print(f"dbt build as of {res.as_of}: {len(res.built)} models, seeds and snapshots built; "
                  f"{res.checks_passed} dbt tests passed, {len(res.checks_failed)} failed", highlight=False)
    for name in res.checks_failed:
        console.print(f"[bold red]failed check:[/] {name}", highlight=False, soft_wrap=True)
    if res.fresh_marts or res.stale_marts:  # Dagster's freshness checks, evaluated after the build
        out.print(f"marts' freshness checks: {res.fresh_marts} of {res.fresh_marts + len(res.stale_marts)} marts "
                  "rebuilt within 26 h", highlight=False)
    for name in res.stale_marts:
        console.print(f"[bold yellow]stale mart:[/] {name} not rebuilt for 26 h", highlight=False, soft_wrap=True)
    for step, msg in res.failures:
        console.print(f"[bold red]failed:[/] {step}: {_hint(msg)}", highlight=False, soft_wrap=True)
    if res.log_path:
        out.print(f"dbt log: {res.log_path}", highlight=False, soft_wrap=True)
    if res.quality_docs:
        out.print(f"quality docs (Great Expectations): {res.quality_docs}", highlight=False, soft_wrap=True)
    for note in res.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
    out.print(f"{'ok' if res.ok else 'FAILED'} in {seconds:.1f} s "
              f"(ingest {res.seconds.get('ingest', 0):.1f} s, dbt {res.seconds.get('transform', 0):.1f} s)", highlight=False)


def _hint(message: str) -> str:
    """A failure's message, with the setting to change when DuckDB ran out of its memory limit or the disk
    ran out of space (errno 28, as DuckDB, PostgreSQL and Python all spell it)."""
    if "Out of Memory Error" in message:
        return (f"{message.strip()} — DuckDB reached CRM_MEMORY_LIMIT={memory_limit()}: raise it (or free memory "
                f"for it); the next refresh picks up from here")
    if "No space left on device" in message or "could not extend file" in message:
        from ingest.config import settings

        cfg = settings()
        if cfg.warehouse == "duckdb":
            where = (f"the disk under {cfg.duckdb_path.parent} is full: free space there (a DuckDB refresh needs "
                     "about the warehouse file's size again for its write-audit-publish copy, plus DuckDB's spill "
                     "beside it) or point CRM_DUCKDB_PATH (or CRM_HOME) at a larger disk")
        elif cfg.warehouse_url:
            where = "the warehouse server's disk (CRM_WAREHOUSE_URL) is full: free space on it"
        else:
            where = (f"the disk under {cfg.home} (the embedded warehouse server's data) is full: free space there, "
                     "or point CRM_HOME at a larger disk or CRM_WAREHOUSE_URL at a server with room")
        kept = "" if "nothing was published" in message else "; the published warehouse is unchanged"
        return f"{message.strip()} — {where}{kept}; the next refresh picks up from here"
    return message


def _parse_day(value: str | None) -> str | None:
    if value is None:
        return None
    import datetime as dt

    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"--as-of must be a day as YYYY-MM-DD, not {value!r}") from None
    # a Dagster partition is added for the day built; a day far from any data is a typo, refused before any work
    first, ahead = dt.date(2000, 1, 1), dt.date.today() + dt.timedelta(days=366)
    if not first <= day <= ahead:
        raise ValueError(f"--as-of {day}: give a day from {first} to {ahead} (a year past today at most: "
                         "a simulated source's clock may stand ahead of the wall clock)")
    return day.isoformat()


def cmd_demo(cfg: Settings, args: argparse.Namespace) -> int:
    """source up (small) where none exists, then refresh, then a short summary."""
    from crm_warehouse.pipeline import run_refresh
    from simulator import source
    from ingest.warehouse import open_warehouse

    t0 = time.perf_counter()
    with console.status("preparing the demo source…") as status:
        url, created = source.up(cfg, scale="small", seed=args.seed, progress=_progress(status))
    counts = source.table_counts(url)
    with console.status("refresh: ingest every source table and the webhook events, then dbt build…") as status:
        res = run_refresh(cfg, progress=_progress(status))
    wh = open_warehouse(cfg)
    try:
        raw = {k: int(wh.query(f"SELECT count(*) AS n FROM raw.{k.split('.')[-1]} WHERE _deleted_at IS NULL")["n"][0])
               for k in counts}
        events = int(wh.query("SELECT count(*) AS n FROM raw.email_events")["n"][0])
        quarantined = int(wh.query("SELECT count(*) AS n FROM quarantine.email_events")["n"][0])
        marts = {}
        headlines = {}
        if res.as_of and res.ok:
            for name in ("fct_deals", "fct_deal_daily_snapshot", "pipeline_metrics", "win_loss", "lead_scores",
                         "rep_performance", "email_campaign_performance", "funnel_conversion", "fct_crm_activities",
                         "pipeline_forecast"):
                marts[name] = int(wh.query(f"SELECT count(*) AS n FROM marts.{name}")["n"][0])
            headlines = headline_figures(wh, cfg.warehouse)
    finally:
        wh.close()
    table = Table("source table", "source rows", "raw rows", title="rows per stage" + (" (source created now)" if created else ""))
    for name, n in counts.items():
        table.add_row(name, f"{n:,}", f"{raw[name]:,}")
    deliveries = int(source.landing_summary(cfg.email_events_dir)["deliveries"].sum())
    table.add_row("webhook deliveries → raw.email_events", f"{deliveries:,}", f"{events:,} events, {quarantined:,} quarantined")
    out.print(table)
    if marts:
        mt = Table("mart", "rows", title=f"marts (as of {res.as_of})")
        for name, n in marts.items():
            mt.add_row(f"marts.{name}", f"{n:,}")
        out.print(mt)
        ht = Table("headline", "value", title="headline metrics (the semantic layer's metrics, and the marts)")
        for name, value in headlines.items():
            ht.add_row(name, "n/a" if value is None else f"{value:,}")
        out.print(ht)
    out.print(f"source:     psql '{redact(url)}'", highlight=False, soft_wrap=True)
    if cfg.warehouse == "duckdb":
        out.print(f"warehouse:  {cfg.duckdb_path}: `crm-warehouse sql` (read-only), e.g.", highlight=False, soft_wrap=True)
        out.print('            crm-warehouse sql "select period_type, metric_date, deals_won, won_value, win_rate from '
                  "marts.pipeline_metrics where period_type = 'quarterly' order by metric_date\"", highlight=False)
    if res.ok:
        from serving.report import build_report

        out.print(f"report:     file://{build_report(cfg)}  (`crm-warehouse report` rewrites it)", highlight=False,
                  soft_wrap=True)
        out.print(f"dbt docs:   file://{cfg.home / 'docs' / 'index.html'}  (every model and column, lineage)",
                  highlight=False, soft_wrap=True)
    out.print("ui:         `crm-warehouse ui`, then http://127.0.0.1:3000 (assets, checks, runs, the daily schedule)",
              highlight=False, soft_wrap=True)
    _print_outcome(res, time.perf_counter() - t0)
    return 0 if res.ok else 1


def cmd_webhooks_serve(cfg: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from ingest.webhooks.app import Credentials, create_app

    if not 0 < args.port < 65536:
        raise ValueError(f"--port {args.port}: give a TCP port between 1 and 65535")
    creds = Credentials.from_env()
    for problem in creds.problems:
        console.print(f"[bold yellow]warning:[/] {problem}", highlight=False, soft_wrap=True)
    logging.getLogger("crm_warehouse.webhooks").setLevel(logging.INFO)
    configured = ", ".join(k for k, v in creds.configured().items() if v) or "none (every request is refused)"
    console.print(f"webhook receiver on http://{args.host}:{args.port}/webhooks/<provider>; "
                  f"providers configured: {configured}; landing zone {cfg.email_events_dir}", highlight=False)
    uvicorn.run(create_app(cfg.email_events_dir, creds), host=args.host, port=args.port,
                log_level="warning", access_log=False)
    return 0


def cmd_refresh(cfg: Settings, args: argparse.Namespace) -> int:
    from crm_warehouse.pipeline import run_refresh, with_target

    cfg = with_target(cfg, args.target)
    as_of = _parse_day(args.as_of)
    resync = _resync_tables(args.resync)
    t0 = time.perf_counter()
    with console.status(f"refresh into the {cfg.warehouse} warehouse: ingest, then dbt build…") as status:
        res = run_refresh(cfg, full_refresh=args.full_refresh, resync=resync, as_of=as_of, progress=_progress(status, args.verbose),
                          wait=args.wait, allow_mass_delete=args.allow_mass_delete)
    out.print(_ingest_table(res.ingest, f"ingest into the {cfg.warehouse} warehouse"))
    _print_outcome(res, time.perf_counter() - t0)
    if cfg.warehouse == "postgres":
        _print_connection(cfg)
    return 0 if res.ok else 1


def _print_connection(cfg: Settings) -> None:
    """Where a BI tool finds the PostgreSQL warehouse just refreshed."""
    bi = ("bi_reader logs in with CRM_BI_READER_PASSWORD" if os.environ.get("CRM_BI_READER_PASSWORD") else
          "bi_reader cannot log in until a refresh runs with CRM_BI_READER_PASSWORD set")
    if cfg.warehouse_url:
        out.print(f"warehouse: {redact(cfg.warehouse_url)} (marts in schema marts; {bi})", highlight=False, soft_wrap=True)
        return
    from serving import warehouse_server

    out.print(f"warehouse: the embedded PostgreSQL under {cfg.warehouse_pgdata} ({bi})", highlight=False, soft_wrap=True)
    _print_server(warehouse_server.status(cfg))


def _resync_tables(names: list[str] | None) -> "bool | list[str]":
    """``--resync`` alone: every table; with names: those (raw or source names), checked before any work."""
    from ingest.tables import SPECS

    if names is None:
        return False
    if not names:
        return True
    known = {s.raw: s.raw for s in SPECS} | {s.source: s.raw for s in SPECS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"--resync: no source table {', '.join(unknown)}; the tables are "
                         + ", ".join(sorted(s.raw for s in SPECS)))
    return sorted({known[n] for n in names})


def cmd_raw_reset(cfg: Settings, args: argparse.Namespace) -> int:
    """Drop raw tables after saying what is lost, on confirmation (or --yes)."""
    from crm_warehouse.lock import writer_lock
    from crm_warehouse.pipeline import with_target

    cfg = with_target(cfg, args.target)
    with writer_lock(cfg, "a raw reset"):
        return _raw_reset(cfg, args)


def _raw_reset(cfg: Settings, args: argparse.Namespace) -> int:
    from ingest.raw_load import raw_holdings, reset_raw
    from ingest.warehouse import open_warehouse

    wh = open_warehouse(cfg)
    try:
        counts = raw_holdings(wh, args.tables or None)
        if args.tables and (missing := sorted(set(args.tables) - set(counts))):
            raise ValueError(f"raw has no table {', '.join(missing)}")
        if not counts:
            out.print("raw holds no table: nothing to reset")
            return 0
        forgotten = sum(d for _, d in counts.values())
        out.print(f"raw reset drops {len(counts)} raw table(s) ({sum(n for n, _ in counts.values()):,} live rows) with "
                  f"their ingest state and quarantine. {forgotten:,} rows the source has deleted are only here and "
                  "will be forgotten for good; the next refresh reads the rest again.", highlight=False)
        if not args.yes:
            if not sys.stdin.isatty():
                raise ValueError("raw reset needs confirmation: run it on a terminal or add --yes")
            if input("type 'reset' to go on: ").strip() != "reset":
                out.print("nothing dropped")
                return 1
        reset_raw(wh, list(counts))
    finally:
        wh.close()
    out.print(f"dropped raw.{', raw.'.join(counts)}")
    return 0


def _print_server(info) -> None:
    if not info.running:
        out.print("the warehouse server is not running: `crm-warehouse warehouse up`")
        return
    if info.host is None:
        out.print("the warehouse server runs for the project only (Unix socket): `crm-warehouse warehouse up` "
                  "opens it to BI tools on TCP")
        return
    out.print(f"host {info.host}  port {info.port}  database {info.database}  (no SSL: the embedded build has none; "
              "keep it on localhost or behind a TLS tunnel)", highlight=False)
    out.print(f"login roles: {', '.join(info.roles) or 'none'}; superuser postgres's password: {info.password_from}; "
              "bi_reader's: CRM_BI_READER_PASSWORD; tenant roles': the variable given to `bi grant --password-env`",
              highlight=False, soft_wrap=True)


def cmd_warehouse_up(cfg: Settings, args: argparse.Namespace) -> int:
    from serving import warehouse_server

    with console.status("starting the warehouse server…"):
        info = warehouse_server.up(cfg, host=args.host, port=args.port)
    _print_server(info)
    return 0


def cmd_warehouse_down(cfg: Settings, args: argparse.Namespace) -> int:
    from serving import warehouse_server

    out.print(warehouse_server.down(cfg))
    return 0


def cmd_warehouse_status(cfg: Settings, args: argparse.Namespace) -> int:
    from serving import warehouse_server

    info = warehouse_server.status(cfg)
    _print_server(info)
    return 0 if info.running else 1


def cmd_bi_grant(cfg: Settings, args: argparse.Namespace) -> int:
    """A login role that reads the marts of one company only (PostgreSQL warehouse)."""
    import uuid

    from ingest.postgres_server import WAREHOUSE_DB, connect, embedded_database_url
    from serving.bi_access import grant_tenant

    try:
        company = str(uuid.UUID(args.company_id))
    except ValueError:
        raise ValueError(f"--company-id must be a UUID, not {args.company_id!r}") from None
    password = os.environ.get(args.password_env)
    if not password:
        raise ValueError(f"the environment variable {args.password_env} (--password-env) is not set or empty")
    url = cfg.warehouse_url or embedded_database_url(cfg.warehouse_pgdata, WAREHOUSE_DB)
    with connect(url) as conn:
        covered = grant_tenant(conn, company, args.role, password)
        dbname = conn.info.dbname
    out.print(f"role {args.role} reads the {covered['tenant_scoped']} tenant-scoped marts, rows of company {company} only "
              f"(row-level security); database {dbname}", highlight=False)
    return 0


def cmd_report(cfg: Settings, args: argparse.Namespace) -> int:
    """The static HTML report of the headline marts under $CRM_HOME/report/."""
    from crm_warehouse.pipeline import with_target
    from serving.report import ReportError, build_report

    cfg = with_target(cfg, args.target)
    try:
        with console.status(f"reading the marts of the {cfg.warehouse} warehouse…"):
            path = build_report(cfg, company_id=args.company_id)
    except ReportError as err:
        console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
        return 1
    out.print(f"report: {path}", highlight=False, soft_wrap=True)
    out.print(f"        open file://{path} in a browser (self-contained: no network needed)", highlight=False,
              soft_wrap=True)
    return 0


def cmd_segments_export(cfg: Settings, args: argparse.Namespace) -> int:
    """A segment's members for a campaign, without anyone unsubscribed or opted out."""
    from crm_warehouse.pipeline import with_target
    from serving.report import ReportError
    from serving.segments import SegmentExportError, export_segment

    cfg = with_target(cfg, args.target)
    try:
        done = export_segment(cfg, args.segment, company_id=args.company_id, fmt=args.format,
                              output=Path(args.output) if args.output else None)
    except SegmentExportError as err:
        console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
        return 2
    except ReportError as err:
        console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
        return 1
    out.print(done.summary(), highlight=False, soft_wrap=True)
    return 0


def cmd_sql(cfg: Settings, args: argparse.Namespace) -> int:
    """SQL on the warehouse, read-only: the query given, a script on stdin, or a prompt on a terminal."""
    from crm_warehouse.pipeline import with_target
    from crm_warehouse.sql_shell import Session, print_result, statements

    cfg = with_target(cfg, args.target)
    session = Session(cfg)
    try:
        if args.query is not None or not sys.stdin.isatty():
            for statement in statements(args.query if args.query is not None else sys.stdin.read()):
                cols, rows = session.run(statement)
                if cols:
                    print_result(out, cols, rows, fmt=args.format, max_rows=args.max_rows)
            return 0
        console.print(f"read-only SQL on the {cfg.warehouse} warehouse; end a statement with ';', Ctrl-D to leave")
        buf = ""
        while True:
            try:
                line = input("sql> " if not buf else "...> ")
            except EOFError:
                return 0
            buf += line + "\n"
            if not line.rstrip().endswith(";"):
                continue
            for statement in statements(buf):
                try:
                    cols, rows = session.run(statement)
                    if cols:
                        print_result(out, cols, rows, fmt=args.format, max_rows=args.max_rows)
                except (duckdb.Error, psycopg.Error) as err:
                    console.print(f"[bold red]error:[/] {(str(err).strip().splitlines() or [''])[0]}", highlight=False)
            buf = ""
    finally:
        session.close()


def cmd_ui(cfg: Settings, args: argparse.Namespace) -> int:
    """`dagster dev` on the project's definitions (the webserver, and the daemon that runs the daily
    schedule and the freshness sensor once they are turned on), with the run history refresh keeps."""
    import subprocess

    from orchestration.dagster_storage import ensure_instance_config

    home = cfg.home / "dagster"
    ensure_instance_config(home)
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    exe = Path(sys.executable).with_name("dagster")
    console.print(f"Dagster UI on http://{args.host}:{args.port} (run history in {home}); the daemon runs the "
                  "daily schedule once it is turned on (Automation); Ctrl-C stops both", highlight=False, soft_wrap=True)
    proc = subprocess.Popen([str(exe), "dev", "-m", "orchestration.definitions", "-h", args.host, "-p", str(args.port),
                             "--log-level", "warning"],
                            env=env, cwd=str(Path(__file__).resolve().parents[1]))

    def stop(*_):  # SIGTERM stops the webserver too, and waits for it
        raise KeyboardInterrupt

    import signal

    signal.signal(signal.SIGTERM, stop)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait(20)
        return 0


ENVIRONMENT = """environment (secrets are read from here only, never printed):
  CRM_HOME                   where everything lives (default ./.crm)
  CRM_SOURCE_URL             the CRM's PostgreSQL (default: the embedded source under CRM_HOME)
  CRM_EMAIL_EVENTS_DIR       the webhook landing zone (default CRM_HOME/email_events)
  CRM_WAREHOUSE              duckdb (default) or postgres
  CRM_DUCKDB_PATH            the DuckDB warehouse file (default CRM_HOME/warehouse.duckdb)
  CRM_WAREHOUSE_URL          the PostgreSQL warehouse (default: the embedded one under CRM_HOME)
  CRM_WAREHOUSE_PASSWORD     the embedded warehouse server's superuser password
  CRM_BI_READER_PASSWORD     bi_reader's password (set by a postgres refresh)
  SENDGRID_WEBHOOK_PUBLIC_KEY, POSTMARK_WEBHOOK_USER, POSTMARK_WEBHOOK_PASSWORD, RESEND_WEBHOOK_SECRET
                             the providers' webhook credentials
  CRM_INGEST_LOOKBACK_HOURS (24), CRM_QUARANTINE_THRESHOLD (0.05), CRM_QUARANTINE_MIN_ROWS (10),
  CRM_FRESHNESS_HOURS (48), CRM_ALLOW_MASS_DELETE, CRM_EMAIL_CHUNK_MB (128)
                             ingest settings (README, "Configuration")
  CRM_MEMORY_LIMIT           memory DuckDB may use in the ingest, dbt and the report (default 4GB)"""


def _target_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", choices=["duckdb", "postgres"], default=None,
                        help="the warehouse to use (default: CRM_WAREHOUSE, else duckdb)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="crm-warehouse", description="BuildDesk CRM analytics warehouse",
                                epilog=ENVIRONMENT, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    src = sub.add_parser("source", help="the simulated operational BuildDesk database")
    ssub = src.add_subparsers(dest="source_command", required=True)
    up = ssub.add_parser("up", help="start and fill the operational source")
    up.add_argument("--scale", default="small", help="tiny, small, medium or large (default small)")
    up.add_argument("--seed", type=int, default=42, help="random seed: the same seed builds the same CRM (default 42)")
    up.add_argument("--history-days", type=int, default=365, help="days of simulated history before today (default 365)")
    up.add_argument("--end-date", default=None, help="last simulated day, YYYY-MM-DD (default today, UTC)")
    up.add_argument("--schema", default="live", choices=["live", "analysis"],
                    help="live: BuildDesk's production schema (default); analysis: the schema of the seed analysis")
    up.add_argument("--leads-variant", default="lead_status", choices=["lead_status", "status"],
                    help="with --schema analysis: which of the two `leads` definitions to create")
    up.set_defaults(func=cmd_source_up)
    adv = ssub.add_parser("advance", help="simulate more days of business")
    adv.add_argument("--days", type=int, default=1, help="simulated days of business to add (default 1)")
    adv.set_defaults(func=cmd_source_advance)
    down = ssub.add_parser("down", help="stop the embedded source server (data kept)")
    down.set_defaults(func=cmd_source_down)

    wh = sub.add_parser("webhooks", help="the provider webhook receiver")
    whsub = wh.add_subparsers(dest="webhooks_command", required=True)
    serve = whsub.add_parser("serve", help="receive SendGrid, Postmark and Resend webhooks into the landing zone")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8787, help="TCP port (default 8787)")
    serve.set_defaults(func=cmd_webhooks_serve)

    refresh = sub.add_parser("refresh", help="the daily job: ingest every source table and the webhook events, then dbt build")
    _target_option(refresh)
    refresh.add_argument("--full-refresh", action="store_true",
                         help="rebuild every dbt model from raw (raw is kept: it remembers rows the source deleted)")
    refresh.add_argument("--resync", nargs="*", metavar="TABLE", default=None,
                         help="re-read these source tables (all when none is named) whole and merge them into raw; "
                              "rows the source no longer has stay in raw, flagged deleted")
    refresh.add_argument("--as-of", default=None, metavar="YYYY-MM-DD",
                         help="the day the models are built for (a Dagster partition); default: the latest business "
                              "day in the data")
    refresh.add_argument("--wait", action="store_true",
                         help="if another run is writing this warehouse, wait for it instead of stopping")
    refresh.add_argument("-v", "--verbose", action="store_true",
                         help="one timestamped line per step (each table loaded, each e-mail chunk, each dbt node)")
    refresh.add_argument("--allow-mass-delete", action="store_true",
                         help="accept a run that flags more than half of a table's rows deleted (by default such a "
                              "table fails: a wrong database or a truncated table must not empty the warehouse)")
    refresh.set_defaults(func=cmd_refresh)

    raw = sub.add_parser("raw", help="the raw layer itself")
    rawsub = raw.add_subparsers(dest="raw_command", required=True)
    reset = rawsub.add_parser("reset", help="DROP raw tables (and their ingest state and quarantine): the rows the "
                                            "source has deleted since are lost for good")
    reset.add_argument("tables", nargs="*", metavar="TABLE", help="raw tables to drop (default: every one)")
    _target_option(reset)
    reset.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    reset.set_defaults(func=cmd_raw_reset)

    whs = sub.add_parser("warehouse", help="the embedded PostgreSQL warehouse as a server BI tools can reach")
    whsub = whs.add_subparsers(dest="warehouse_command", required=True)
    wup = whsub.add_parser("up", help="run it on TCP with password authentication for every role")
    wup.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0: every one)")
    wup.add_argument("--port", type=int, default=5433, help="TCP port (default 5433)")
    wup.set_defaults(func=cmd_warehouse_up)
    whsub.add_parser("down", help="stop it (data kept)").set_defaults(func=cmd_warehouse_down)
    whsub.add_parser("status", help="host, port, database and login roles").set_defaults(func=cmd_warehouse_status)

    bi = sub.add_parser("bi", help="access for BI tools to the PostgreSQL warehouse")
    bisub = bi.add_subparsers(dest="bi_command", required=True)
    grant = bisub.add_parser("grant", help="a login role that reads the marts of one company only")
    grant.add_argument("--company-id", required=True, metavar="UUID", help="the tenant (companies.id) whose rows the role may read")
    grant.add_argument("--role", required=True, help="the login role to create or update (not a pg_* role, not the owner)")
    grant.add_argument("--password-env", required=True, metavar="VAR", help="environment variable holding the password")
    grant.set_defaults(func=cmd_bi_grant)

    rep = sub.add_parser("report", help="write the static HTML report of the headline marts under $CRM_HOME/report/")
    _target_option(rep)
    rep.add_argument("--company-id", default=None, metavar="UUID", help="one tenant's report (company-<id>.html)")
    rep.set_defaults(func=cmd_report)

    seg = sub.add_parser("segments", help="engagement segments (marts.engagement_segments) as target lists")
    segsub = seg.add_subparsers(dest="segments_command", required=True)
    exp = segsub.add_parser("export", help="a segment's members with the fields a campaign needs, never anyone "
                                           "unsubscribed or opted out (says how many were left out and why)")
    exp.add_argument("--segment", required=True, help="customer_at_risk, customer, hot_untouched, engaged, nurturing "
                                                      "or dormant")
    exp.add_argument("--company-id", help="one tenant's members only (UUID)")
    exp.add_argument("--format", default="csv", choices=["csv", "parquet"], help="file format (default csv)")
    exp.add_argument("--output", help="file to write (default $CRM_HOME/segments/<segment>[-<company>].<format>)")
    _target_option(exp)
    exp.set_defaults(func=cmd_segments_export)

    sql_ = sub.add_parser("sql", help="SQL on the warehouse, read-only (no database client to install)",
                          description="Run SQL on the warehouse in a read-only session: the QUERY given, a script "
                                      "piped on stdin (statements end with ';'), or a prompt on a terminal.")
    sql_.add_argument("query", nargs="?", metavar="QUERY", help="the SQL to run (several statements: separate with ';')")
    _target_option(sql_)
    sql_.add_argument("--format", choices=["table", "csv"], default="table",
                      help="a table (at most --max-rows rows) or CSV (every row) on stdout")
    sql_.add_argument("--max-rows", type=int, default=50, metavar="N", help="rows a table shows (default 50)")
    sql_.set_defaults(func=cmd_sql)

    ui = sub.add_parser("ui", help="the Dagster UI on the same definitions (assets, jobs, run history)")
    ui.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    ui.add_argument("--port", type=int, default=3000, help="TCP port (default 3000)")
    ui.set_defaults(func=cmd_ui)

    demo = sub.add_parser("demo", help="source up (small) where none exists, then a summary")
    demo.add_argument("--seed", type=int, default=42, help="random seed of the simulated source (default 42)")
    demo.set_defaults(func=cmd_demo)
    return p


def _quiet_dagster(record: logging.LogRecord) -> bool:
    """Dagster's INFO chatter is left out, and so is dagster-dbt's warning for each dbt test on the score
    table (a dbt source, so not an asset check of Dagster's): the test still runs and fails the build."""
    if not record.name.startswith("dagster"):
        return True
    return record.levelno >= logging.WARNING and "Logging an `AssetObservation` instead of an `AssetCheckResult`" \
        not in record.getMessage()


def _stoppable_by_sigterm() -> None:
    """A process started in the background by a shell (or by any parent ignoring ^C) inherits SIGINT
    ignored, and Dagster maps SIGTERM to SIGINT's handler: `kill` would then be ignored by a refresh and by
    the `dagster dev` processes of `ui`; a parent in which that mapping already happened hands SIGTERM down
    ignored too. Both are put back (Python's ^C handler, SIGTERM's default), so SIGTERM stops the run, and
    the children started from here get the default dispositions again."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGTERM) is signal.SIG_IGN:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def main(argv: Sequence[str] | None = None) -> int:
    _stoppable_by_sigterm()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:  # Dagster's step-by-step INFO lines stay in its run log
        handler.addFilter(_quiet_dagster)
    logging.raiseExceptions = False  # a log handler failing (Dagster's event storage on a full disk) prints no traceback
    args = build_parser().parse_args(argv)
    try:
        cfg = settings()
        memory_limit(), email_chunk_bytes()  # a malformed tunable: one line before any work
        return args.func(cfg, args)
    except (SourceError, ValueError) as err:
        console.print(f"[bold red]error:[/] {redact(str(err))}", highlight=False, soft_wrap=True)
        return 2
    except (psycopg.Error, duckdb.Error) as err:  # a database refused something: its first line, no traceback
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        console.print(f"[bold red]error:[/] {redact(first)}", highlight=False, soft_wrap=True)
        return 1
    except OSError as err:  # a read-only CRM_HOME or warehouse file, a full disk: one line, not a traceback
        where = f" ({err.filename})" if getattr(err, "filename", None) else ""
        console.print(f"[bold red]error:[/] {err.strerror or err}{where}: check the permissions and free space of "
                      "CRM_HOME and the warehouse file", highlight=False, soft_wrap=True)
        return 1
    except KeyboardInterrupt:
        console.print("interrupted")
        return 130
    except Exception as err:  # Dagster's run storage (SQLite under CRM_HOME) failing: a full disk, most often
        if not _storage_error(err):
            raise
        console.print(f"[bold red]error:[/] Dagster's run storage under {settings().home / 'dagster'} failed "
                      f"({_first_line(err)}): check the free space and permissions of CRM_HOME", highlight=False,
                      soft_wrap=True)
        # at once: the open DuckDB sessions' destructors would write again at exit and abort the process
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)


def _storage_error(err: BaseException) -> bool:
    import sqlite3

    while err is not None:
        if isinstance(err, sqlite3.Error) or type(err).__module__.startswith("sqlalchemy"):
            return True
        err = err.__cause__ or err.__context__
    return False


def _first_line(err: BaseException) -> str:
    import sqlite3

    while err.__cause__ is not None and not isinstance(err, sqlite3.Error):
        err = err.__cause__
    return redact((str(err).strip().splitlines() or [type(err).__name__])[0])


if __name__ == "__main__":
    sys.exit(main())
