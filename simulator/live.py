"""BuildDesk's live CRM schema (``source up --schema live``, the default), and the simulator's rows
made to fit it.

The schema is built from the listing of the production database in ``live_schema/`` (a copy of
``shared/source_schema/live/``: columns, types, NOT NULLs, defaults, enum types, constraints,
indexes, triggers), not restated by hand: what the listing says is what the source gets.

- Enum types, then every table with its columns, NOT NULLs, defaults, primary keys, UNIQUE and CHECK
  constraints; ``auth.users.confirmed_at`` is the generated column Supabase makes it.
- The tables outside the CRM that foreign keys name (``sites``, ``projects``, ``project_phases``,
  ``tenants``) exist with an ``id`` (and ``projects.company_id``): opaque parents, one site for the
  deployment, a project per company for its tasks.
- After the bulk load: the foreign keys and the listed indexes (those of constraints come with them),
  then the triggers by name. The listing gives trigger functions by name only; their bodies are the
  analysis' (``update_updated_at_column``, ``update_lead_score`` with its spelling defect) and, for
  ``update_campaign_stats``, the campaign counters the app keeps (``email_campaigns.total_*``).

``LiveRows.fit`` turns a frame the simulator generated (the analysis' columns) into the live table's:
known renames (``industry`` → ``industry_type``, ``title`` → ``name``, ``trial_ends_at`` →
``trial_end_date``; ``probability_percent`` beside ``probability_weight``), values the live system
writes itself (roles such as ``estimator``, demo type ``standard``, task status ``pending``),
``site_id``, project tasks, and no column the live table lacks (``leads.company_id``: the lead's
tenant is kept in ``simulator.lead_tenants``, outside BuildDesk's schema, for the tests to check the
warehouse's derivation against).
"""

from __future__ import annotations

import csv
import functools
import uuid
from collections import defaultdict
from pathlib import Path

import polars as pl

from simulator.vec import copy_frame

LIVE_DIR = Path(__file__).resolve().parent / "live_schema"
SITE_ID = "517e0000-0000-4000-8000-000000000001"  # the deployment's one Supabase site
OPAQUE_PARENTS = """
CREATE TABLE IF NOT EXISTS public.sites (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), name text);
CREATE TABLE IF NOT EXISTS public.tenants (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), name text);
CREATE TABLE IF NOT EXISTS public.projects (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), company_id uuid, name text);
CREATE TABLE IF NOT EXISTS public.project_phases (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), project_id uuid, name text);
"""


def _tsv(name: str) -> list[dict[str, str]]:
    with open(LIVE_DIR / name, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


@functools.cache
def columns() -> dict[str, list[tuple[str, str, bool, str]]]:
    """qualified table → [(column, type, not null, default)] in the listing's order."""
    out: dict[str, list[tuple[str, str, bool, str]]] = defaultdict(list)
    for r in _tsv("columns.tsv"):
        out[r["table"]].append((r["column"], r["type"], r["not_null"] == "yes", r["default"]))
    return dict(out)


@functools.cache
def enums() -> dict[str, tuple[str, ...]]:
    return {r["type"]: tuple(v.strip() for v in r["values"].split(",")) for r in _tsv("enums.tsv")}


@functools.cache
def constraints() -> list[dict[str, str]]:
    return _tsv("constraints.tsv")


def tables_sql() -> str:
    parts = ["CREATE SCHEMA IF NOT EXISTS auth;", OPAQUE_PARENTS]
    for name, values in enums().items():
        parts.append(f"CREATE TYPE public.{name} AS ENUM ({', '.join(repr(v) for v in values)});")
    inline = defaultdict(list)
    for c in constraints():
        if c["kind"] in ("primary key", "unique", "check"):
            inline[c["table"]].append(f"CONSTRAINT {c['name']} {c['definition']}")
    for table, cols in columns().items():
        lines = []
        for name, typ, not_null, default in cols:
            if default.startswith("LEAST("):  # auth.users.confirmed_at: a generated column in Supabase
                lines.append(f'"{name}" {typ} GENERATED ALWAYS AS ({default}) STORED')
                continue
            lines.append(f'"{name}" {typ}' + (" NOT NULL" if not_null else "") + (f" DEFAULT {default}" if default else ""))
        parts.append(f"CREATE TABLE {table} (\n  " + ",\n  ".join(lines + inline[table]) + "\n);")
    return "\n".join(parts)


def constraints_sql() -> str:
    named = {c["name"] for c in constraints()}
    parts = [f"ALTER TABLE {c['table']} ADD CONSTRAINT {c['name']} {c['definition']};"
             for c in constraints() if c["kind"] == "foreign key"]
    for r in _tsv("indexes_triggers.tsv"):
        if r["kind"] != "index":
            continue
        name = r["definition"].split(" INDEX ", 1)[1].split(" ON ", 1)[0]
        if name not in named:  # a constraint's own index exists already
            parts.append(r["definition"] + ";")
    return "\n".join(parts)


TRIGGER_FUNCTIONS = """
CREATE OR REPLACE FUNCTION public.update_campaign_stats() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  -- the app's campaign counters: a send counts once in each total when its time is first set
  IF NEW.campaign_id IS NULL THEN
    RETURN NEW;
  END IF;
  UPDATE public.email_campaigns c SET
    total_sent = c.total_sent + (NEW.sent_at IS NOT NULL AND (TG_OP = 'INSERT' OR OLD.sent_at IS NULL))::int,
    total_delivered = c.total_delivered + (NEW.delivered_at IS NOT NULL AND (TG_OP = 'INSERT' OR OLD.delivered_at IS NULL))::int,
    total_opened = c.total_opened + (NEW.opened_at IS NOT NULL AND (TG_OP = 'INSERT' OR OLD.opened_at IS NULL))::int,
    total_clicked = c.total_clicked + (NEW.clicked_at IS NOT NULL AND (TG_OP = 'INSERT' OR OLD.clicked_at IS NULL))::int,
    total_bounced = c.total_bounced + (NEW.bounced_at IS NOT NULL AND (TG_OP = 'INSERT' OR OLD.bounced_at IS NULL))::int,
    total_unsubscribed = c.total_unsubscribed + (NEW.unsubscribed_at IS NOT NULL AND (TG_OP = 'INSERT' OR OLD.unsubscribed_at IS NULL))::int,
    total_complained = c.total_complained + (NEW.complained_at IS NOT NULL AND (TG_OP = 'INSERT' OR OLD.complained_at IS NULL))::int,
    last_sent_at = greatest(c.last_sent_at, NEW.sent_at)
  WHERE c.id = NEW.campaign_id;
  RETURN NEW;
END;
$$;
"""


def triggers_sql(head: str) -> str:
    """``head``: the analysis' trigger functions (clock, updated_at, lead score); then the live ones."""
    parts = [head.split("CREATE TRIGGER", 1)[0], TRIGGER_FUNCTIONS]
    parts += [r["definition"] + ";" for r in _tsv("indexes_triggers.tsv") if r["kind"] == "trigger"]
    return "\n".join(parts)


def qualified(table: str) -> str:
    return table if "." in table else f"public.{table}"


INDUSTRY = {"residential": "residential", "commercial": "commercial", "specialty_trade": "specialty_trades",
            "remodeling": "residential"}


def project_id(company_id: str) -> str:
    """The one project per company that holds its tasks (live tasks are project tasks)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"builddesk-project/{company_id}"))


def _id_bits(col: str = "id") -> pl.Expr:
    """A number drawn from a row's UUID: the live-only columns are derived from it, not from the
    generator's random stream, so adding them changes no other generated value."""
    return pl.col(col).cast(pl.String).str.slice(0, 8).str.to_integer(base=16)


def lead_follow_up(f: pl.DataFrame, status: str) -> dict[str, pl.Expr]:
    """The live leads' rep-workflow columns: an open lead (new, contacted, qualified, demo scheduled) has
    its next follow-up 2-20 days after it arrived, a lead past "new" was last contacted 0-2 days after;
    temperature follows priority; about a third of leads are the decision maker."""
    bits, day = _id_bits(), pl.col("created_at").dt.date()
    open_ = pl.col(status).is_in(["new", "contacted", "qualified", "demo_scheduled"])
    return {
        "next_follow_up_date": pl.when(open_).then(day + pl.duration(days=2 + bits % 19)).otherwise(None),
        "last_contact_date": pl.when(pl.col(status) != "new").then(day + pl.duration(days=(bits // 256) % 3))
        .otherwise(None),
        "lead_temperature": pl.col("priority").replace_strict({"hot": "hot", "high": "warm"}, default="cold"),
        "decision_maker": (bits // 16) % 3 == 0,
    }


class LiveRows:
    """Fits generated frames to the live tables (``fit``) and records what the live schema drops."""

    def __init__(self) -> None:
        self.cols = {t: [c[0] for c in cs] for t, cs in columns().items()}
        self.generated = {t: {c[0] for c in cs if c[3].startswith("LEAST(")} for t, cs in columns().items()}

    def setup(self, conn) -> None:
        """The opaque parents' rows: the deployment's site. Projects come with companies (``fit``)."""
        conn.execute("INSERT INTO public.sites (id, name) VALUES (%s, 'BuildDesk') ON CONFLICT DO NOTHING", (SITE_ID,))

    def fit(self, conn, table: str, frame: pl.DataFrame) -> pl.DataFrame:
        q = qualified(table)
        name = q.rpartition(".")[2]
        f = frame
        if name == "companies":
            f = f.with_columns(industry_type=pl.col("industry").replace_strict(INDUSTRY, default=None))
            if "trial_ends_at" in f.columns:
                f = f.with_columns(trial_end_date=pl.col("trial_ends_at"))
            if f.height:
                conn.execute("INSERT INTO public.projects (id, company_id, name) SELECT p, c, 'CRM follow-up' FROM "
                             "unnest(%s::uuid[], %s::uuid[]) AS x(p, c) ON CONFLICT DO NOTHING",
                             ([project_id(c) for c in f["id"].to_list()], f["id"].to_list()))
        elif name == "user_profiles":
            # the live enum has 17 roles; field supervisors are recorded as estimators there
            f = f.with_columns(role=pl.when(pl.col("role") == "field_supervisor").then(pl.lit("estimator"))
                               .otherwise(pl.col("role")))
        elif name == "leads":
            if f.height:
                copy_frame(conn, "simulator.lead_tenants", f.select(lead_id=pl.col("id"), company_id=pl.col("company_id")))
            status = next((c for c in ("status", "lead_status") if c in f.columns), None)
            if status:  # both columns hold the status as the lead is created (new leads: their defaults)
                f = f.with_columns(status=pl.col(status), lead_status=pl.col(status))
            if status and {"id", "created_at", "priority"} <= set(f.columns):
                f = f.with_columns(**lead_follow_up(f, status))
        elif name == "demo_requests" and "demo_type" in f.columns:
            f = f.with_columns(demo_type=pl.col("demo_type").replace("standard_30min", "standard"))
        elif name == "tasks":
            f = f.with_columns(name=pl.col("title"), project_id=pl.col("company_id").map_elements(
                project_id, return_dtype=pl.String))
            if "status" in f.columns:
                f = f.with_columns(status=pl.col("status").replace("open", "pending"))
        elif name == "pipeline_stages":
            # UNIQUE (company_id, stage_order) in the live schema: a company's second pipeline's
            # stages are numbered from 101 (the order within a pipeline is kept)
            rank = (pl.col("template_id").rank("dense").over("company_id") - 1).cast(pl.Int32)
            f = f.with_columns(stage_order=pl.col("stage_order") + 100 * rank,
                               probability_percent=pl.col("probability_weight"))
        if "site_id" in self.cols[q] and "site_id" not in f.columns:
            f = f.with_columns(site_id=pl.lit(SITE_ID))
        keep = [c for c in self.cols[q] if c in f.columns and c not in self.generated[q]]
        return f.select(keep)
