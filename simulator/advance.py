"""`crm-warehouse source advance --days N`: N more days of business, written as the app would.

Each simulated day is one committed step (the state's clock moves with it), in this order:
new leads and their web activity (inserted with the live ``update_lead_score()`` trigger),
demo requests, lead status changes, new deals from qualified leads, stage moves and closes,
rep reassignments, deal activities, hard deletes of spam leads (with the cascades), and the
day's email sends, whose provider events are appended to the landing zone together with some
late, duplicate and malformed deliveries.

Updates go through the operational triggers, whose clock is the simulator's (``builddesk_sim.now``).
One "slow" transaction per day started before midnight and commits after the rest of the day:
its rows carry an ``updated_at`` older than rows already committed, the late-commit case an
``updated_at`` cursor must survive.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path
from typing import Callable

import numpy as np
import polars as pl
import psycopg

from ingest.postgres_server import SourceError, connect
from simulator import email, history, live
from simulator.generate import strip_private
from simulator.scales import get_scale
from simulator.source import read_state
from simulator.vec import US_PER_DAY, US_PER_HOUR, copy_frame, day_weights, objs, ts, uuids

Progress = Callable[[str], None]
LATE_COMMIT_HOURS = 8  # how long before the day's start the slow transaction began


def _us(t: dt.datetime) -> int:
    return int(t.timestamp() * 1_000_000)


def _iso(us: int) -> str:
    return dt.datetime.fromtimestamp(us / 1e6, tz=dt.timezone.utc).isoformat()


def _uuids_as_text(conn: psycopg.Connection) -> psycopg.Connection:
    from psycopg.types.string import TextLoader

    conn.adapters.register_loader("uuid", TextLoader)
    return conn


def _frame(conn: psycopg.Connection, sql: str, params=None) -> pl.DataFrame:
    cur = conn.execute(sql, params)
    cols = [d.name for d in cur.description]
    rows = cur.fetchall()
    return pl.DataFrame(rows, schema=cols, orient="row", infer_schema_length=None) if rows else pl.DataFrame(
        {c: [] for c in cols})


def _ids_temp(conn: psycopg.Connection, name: str, df: pl.DataFrame, types: dict[str, str]) -> None:
    """Load ``df`` into a temporary table ``name`` for set-based UPDATE … FROM."""
    conn.execute(f"DROP TABLE IF EXISTS {name}")
    conn.execute(f"CREATE TEMP TABLE {name} ({', '.join(f'{c} {t}' for c, t in types.items())}) ON COMMIT DROP")
    copy_frame(conn, name, df.select(list(types)))


def advance(url: str, landing_dir: Path, *, days: int = 1, progress: Progress = lambda _: None) -> dict[str, int]:
    if days < 1:
        raise SourceError(f"--days {days}: give at least 1")
    totals: Counter[str] = Counter()
    for _ in range(days):
        with connect(url) as conn:
            state = read_state(conn)
            if state is None:
                raise SourceError("the source has no simulator state: run `crm-warehouse source up` first")
            conn.execute("SELECT clock FROM simulator.state FOR UPDATE")
            day = Day(conn, url, state, landing_dir)
            progress(f"simulating {day.d0:%Y-%m-%d}")
            counts = day.run()
            conn.execute("UPDATE simulator.state SET clock = %s, advances = advances + 1", (day.d1,))
            conn.execute("INSERT INTO simulator.advance_log (advance, from_clock, to_clock, counts) VALUES (%s, %s, %s, %s)",
                         (state.advances + 1, day.d0, day.d1, json.dumps(counts)))
            conn.commit()
        day.land()  # after the commit: a crash before it leaves the day unsimulated, not half-written
        totals.update(counts)
    return dict(totals)


class Day:
    def __init__(self, conn: psycopg.Connection, url: str, state, landing_dir: Path) -> None:
        self.conn, self.url, self.state, self.landing_dir = _uuids_as_text(conn), url, state, landing_dir
        self.scale = get_scale(state.scale)
        self.no = state.advances + 1
        self.rng = np.random.default_rng([state.seed, self.no])
        self.d0 = state.clock
        self.d1 = state.clock + dt.timedelta(days=1)
        self.u0, self.u1 = _us(self.d0), _us(self.d1)
        self.w = history.Window(self.u0, self.u1)
        self.status_col = "lead_status" if state.leads_variant == "lead_status" else "status"
        self.live = state.schema == "live"
        self.rows = live.LiveRows() if self.live else None
        self.per_day = float(day_weights(self.u0, 1)[0]) / 0.8  # mean weight ~0.8
        self.counts: Counter[str] = Counter()
        self.lines: pl.DataFrame | None = None
        self.companies = _frame(conn, "SELECT id, created_at FROM companies ORDER BY id")
        # a lead's tenant: leads.company_id, or (live schema, which has none) the simulator's own record
        self.lead_company = ("(SELECT t.company_id FROM simulator.lead_tenants t WHERE t.lead_id = l.id)"
                             if self.live else "l.company_id")
        profiles = _frame(conn, "SELECT id, company_id, role FROM user_profiles ORDER BY id")
        self.rep_mat, self.rep_n = history.reps_of(profiles, self.companies)

    def copy(self, table: str, frame: pl.DataFrame) -> None:
        """COPY generated rows into ``table``, fitted to the live schema where the source has it."""
        if self.rows is not None:
            frame = self.rows.fit(self.conn, table, frame)
        copy_frame(self.conn, table, frame)

    def n(self, yearly: float) -> int:
        return int(self.rng.poisson(yearly / 365.0 * self.per_day))

    def at(self, hours: float) -> None:
        """Set the triggers' clock for the statements that follow."""
        self.conn.execute("SELECT set_config('builddesk_sim.now', %s, false)", (_iso(self.u0 + int(hours * US_PER_HOUR)),))

    def run(self) -> dict[str, int]:
        self.late_commit()
        self.at(17.5)
        self.new_leads()
        self.lead_updates()
        self.new_deals()
        self.stage_moves()
        self.reassign()
        self.deal_activities()
        self.hard_deletes()
        self.emails()
        return {k: int(v) for k, v in self.counts.items()}

    # ----------------------------------------------------------------- leads

    def new_leads(self) -> None:
        rng, conn = self.rng, self.conn
        n = max(self.n(self.scale.leads), 1)
        offset = 100_000_000 + self.no * 100_000
        leads = history.leads(rng, n, self.w, self.companies, self.rep_mat, self.rep_n,
                              self.state.leads_variant, email_offset=offset)
        leads = leads.with_columns(updated_at=pl.col("created_at"))
        self.copy("public.leads", strip_private(leads))
        self.counts["leads inserted"] += n
        # web activity of today's leads and of recently active ones, through the live trigger
        recent = _frame(conn, """SELECT id, created_at, 0 AS _source_idx FROM leads
                                 WHERE last_activity_at >= %s - interval '21 days' AND created_at < %s""",
                        (self.d0, self.d0))
        k = min(recent.height, max(1, n * 3))
        if k:
            recent = recent[np.sort(rng.choice(recent.height, size=k, replace=False))]
        total = max(self.n(self.scale.lead_activities), 1)
        new_acts = history.lead_activities(rng, leads, int(total * 0.6), self.w)
        old_acts = history.lead_activities(rng, recent.with_columns(pl.col("_source_idx").cast(pl.Int64)), int(total * 0.4), self.w,
                                           from_us=np.full(recent.height, self.u0, dtype=np.int64)) if k else pl.DataFrame()
        parts = [a for a in (new_acts, old_acts) if a.height]
        if not parts:  # a quiet day at the tiny tier: no web activity, so no requests either
            return
        acts = pl.concat(parts).sort("created_at")
        self.copy("public.lead_activities", acts)
        self.counts["lead_activities inserted"] += acts.height
        req = history.lead_requests(rng, leads.filter(pl.col("id").is_in(acts["lead_id"].implode())), acts, self.w,
                                    self.rep_mat, self.rep_n)
        for table, frame in req.items():
            self.copy(f"public.{table}", frame)
            self.counts[f"{table} inserted"] += frame.height
        demo_leads = acts.filter(pl.col("activity_type") == "demo_request")["lead_id"].unique().to_list()
        conn.execute(f"""UPDATE leads SET requested_demo = true,
                           {self.status_col} = CASE WHEN {self.status_col} IN ('converted', 'lost') THEN {self.status_col}
                                                   ELSE 'demo_scheduled' END
                         WHERE id = ANY(%s::uuid[])""", (demo_leads,))
        flags = {"pricing_viewed": "viewed_pricing", "resource_downloaded": "downloaded_resource",
                 "signup_started": "started_signup"}
        for atype, col in flags.items():
            ids = acts.filter(pl.col("activity_type") == atype)["lead_id"].unique().to_list()
            conn.execute(f"UPDATE leads SET {col} = true WHERE id = ANY(%s::uuid[]) AND NOT {col}", (ids,))

    def lead_updates(self) -> None:
        """Reps work their leads: statuses move, demos get held, priorities change."""
        s, conn = self.status_col, self.conn
        salt = f"{self.state.seed}-{self.no}"
        pct = "(('x' || substr(md5(id::text || %s), 1, 8))::bit(32)::int & 2147483647) %% 1000"
        moves = [
            (f"{s} = 'contacted'", f"{s} = 'new' AND created_at < %s - interval '1 day'", 300),
            (f"{s} = 'qualified'", f"{s} = 'contacted'", 20),
            (f"{s} = 'lost'", f"{s} = 'contacted' AND created_at < %s - interval '45 days'", 15),
        ]
        for set_sql, where, per_mille in moves:
            params = (self.d0, salt + set_sql, per_mille) if "%s" in where else (salt + set_sql, per_mille)
            cur = conn.execute(f"UPDATE leads SET {set_sql} WHERE {where} AND {pct} < %s", params)
            self.counts["leads updated"] += cur.rowcount
        cur = conn.execute(f"""UPDATE demo_requests SET
              status = CASE WHEN {pct} < 700 THEN 'completed' WHEN {pct} < 850 THEN 'no_show' ELSE 'cancelled' END,
              completed_at = CASE WHEN {pct} < 700 THEN scheduled_at + interval '45 minutes' END,
              cancelled_at = CASE WHEN {pct} >= 850 THEN scheduled_at - interval '1 hour' END
            WHERE status = 'scheduled' AND scheduled_at < %s - interval '45 minutes'""", (salt, salt, salt, salt, self.d1))
        self.counts["demo_requests updated"] += cur.rowcount

    # ----------------------------------------------------------------- deals

    def _stages(self) -> pl.DataFrame:
        # live: a company's second pipeline is numbered from 101 (UNIQUE (company_id, stage_order))
        return _frame(self.conn, """SELECT id, template_id, stage_order % 100 AS stage_order, probability_weight, expected_duration_days,
                                           is_won_stage, is_lost_stage, is_final_stage FROM pipeline_stages""")

    def new_deals(self) -> None:
        rng, conn, s = self.rng, self.conn, self.status_col
        n = self.n(self.scale.deals)
        cand = _frame(conn, f"""
            SELECT l.id, {self.lead_company} AS company_id, l.assigned_to, l.first_name, l.last_name, l.email, l.phone, l.job_title,
                   l.company_name, l.lead_source, l.created_at
            FROM leads l WHERE l.{s} IN ('qualified', 'demo_scheduled')
              AND NOT EXISTS (SELECT 1 FROM deals d WHERE d.lead_id = l.id) ORDER BY l.id""")
        n = min(n, cand.height)
        if n == 0:
            return
        pick_idx = np.sort(rng.choice(cand.height, size=n, replace=False))
        c = cand[pick_idx]
        created = self.u0 + (rng.uniform(8, 20, size=n) * US_PER_HOUR).astype(np.int64)
        templates = _frame(conn, "SELECT id, company_id FROM pipeline_templates WHERE is_default")
        tmpl = c.select("company_id").join(templates, on="company_id", how="left")["id"]
        stages = self._stages()
        first = stages.filter(pl.col("stage_order") == 1).select(template_id="template_id", stage_id="id",
                                                                  prob="probability_weight")
        st = pl.DataFrame({"template_id": tmpl}).join(first, on="template_id", how="left")
        value = np.round(rng.lognormal(10.1, 0.7, size=n), 2)
        deal_ids, contact_ids = uuids(rng, n), uuids(rng, n)
        contacts = pl.DataFrame({
            "id": contact_ids, "company_id": c["company_id"], "first_name": c["first_name"], "last_name": c["last_name"],
            "email": c["email"], "phone": c["phone"], "job_title": c["job_title"], "company_name": c["company_name"],
            "contact_type": ["decision_maker"] * n, "lead_source": c["lead_source"],
            "assigned_to": c["assigned_to"], "created_by": c["assigned_to"],
            "created_at": ts(created), "updated_at": ts(created),
        })
        deals = pl.DataFrame({
            "id": deal_ids, "company_id": c["company_id"], "lead_id": c["id"], "contact_id": contact_ids,
            "pipeline_template_id": tmpl, "current_stage_id": st["stage_id"],
            "name": "New project for " + c["company_name"], "deal_type": ["standard"] * n,
            "estimated_value": value, "weighted_value": np.round(value * st["prob"].to_numpy() / 100, 2),
            "days_in_pipeline": [0] * n,
            "expected_close_date": ts(created + 45 * US_PER_DAY).dt.date(), "primary_contact_id": contact_ids,
            "account_manager_id": c["assigned_to"], "sales_rep_id": c["assigned_to"], "status": ["active"] * n,
            "source": c["lead_source"], "created_by": c["assigned_to"],
            "created_at": ts(created), "updated_at": ts(created),
        })
        hist = pl.DataFrame({
            "id": uuids(rng, n), "deal_id": deal_ids, "from_stage_id": pl.Series([None] * n, dtype=pl.String),
            "to_stage_id": st["stage_id"], "moved_by": c["assigned_to"], "moved_at": ts(created),
            "notes": ["Deal created"] * n, "auto_moved": [False] * n, "value_after": value,
            "probability_after": st["prob"],
        })
        self.copy("public.contacts", contacts)
        self.copy("public.deals", deals)
        self.copy("public.deal_stage_history", hist)
        cur = conn.execute(f"UPDATE leads SET {s} = 'converted' WHERE id = ANY(%s::uuid[])", (c["id"].to_list(),))
        self.counts["deals inserted"] += n
        self.counts["contacts inserted"] += n
        self.counts["deal_stage_history inserted"] += n
        self.counts["leads updated"] += cur.rowcount

    def stage_moves(self) -> None:
        rng, conn = self.rng, self.conn
        open_deals = _frame(conn, """
            SELECT d.id, d.sales_rep_id, d.estimated_value, d.source, d.created_at, s.template_id,
                   s.stage_order % 100 AS stage_order, s.probability_weight AS prob, s.expected_duration_days AS mean_days,
                   (SELECT max(moved_at) FROM deal_stage_history h WHERE h.deal_id = d.id) AS last_move
            FROM deals d JOIN pipeline_stages s ON s.id = d.current_stage_id
            WHERE d.status = 'active' ORDER BY d.id""")
        if open_deals.height == 0:
            return
        stages = self._stages()
        k = stages.filter(~pl.col("is_final_stage")).group_by("template_id").agg(k=pl.len())
        d = open_deals.join(k, on="template_id", how="left")
        m = d.height
        p_move = 1.0 / (d["mean_days"].fill_null(7).to_numpy() * 1.6)
        move = rng.random(m) < p_move
        d = d.filter(pl.Series(move))
        m = d.height
        if m == 0:
            return
        order, kk = d["stage_order"].to_numpy(), d["k"].to_numpy()
        u = rng.random(m)
        src_idx = np.array([history.LEAD_SOURCES.index(x) if x in history.LEAD_SOURCES else 0 for x in d["source"].to_list()])
        win = rng.random(m) < history.SOURCE_WIN_RATE[src_idx] * 1.2
        at_end = order >= kk
        new_order = np.where(at_end, np.where(win, kk + 1, kk + 2),
                             np.where(u < 0.08, kk + 2, np.where((u < 0.16) & (order > 1), order - 1, order + 1)))
        d = d.with_columns(new_order=pl.Series(new_order))
        d = d.join(stages.select("template_id", new_order="stage_order", new_stage="id", new_prob="probability_weight",
                                 won="is_won_stage", lost="is_lost_stage"), on=["template_id", "new_order"], how="left")
        moved = self.u0 + (rng.uniform(8, 20, size=m) * US_PER_HOUR).astype(np.int64)
        last = d["last_move"].cast(pl.Datetime("us")).cast(pl.Int64).to_numpy()
        moved = np.maximum(moved, last + 60_000_000)
        value = d["estimated_value"].cast(pl.Float64).to_numpy()
        new_value = np.round(np.where(rng.random(m) < 0.15, value * rng.uniform(0.85, 1.2, size=m), value), 2)
        won, lost = d["won"].to_numpy(), d["lost"].to_numpy()
        status = np.where(won, "won", np.where(lost, "lost", "active"))
        hist = pl.DataFrame({
            "id": uuids(rng, m), "deal_id": d["id"], "from_stage_id": stages.join(
                d.select("template_id", "stage_order"), on=["template_id", "stage_order"], how="right")["id"],
            "to_stage_id": d["new_stage"], "moved_by": d["sales_rep_id"], "moved_at": ts(moved),
            "days_in_previous_stage": ((moved - last) // US_PER_DAY).astype(np.int64),
            "auto_moved": [False] * m, "value_before": value, "value_after": new_value,
            "probability_before": d["prob"], "probability_after": d["new_prob"],
        })
        self.copy("public.deal_stage_history", hist)
        upd = pl.DataFrame({
            "id": d["id"], "stage_id": d["new_stage"], "status": status, "value": new_value,
            "weighted": np.round(new_value * d["new_prob"].to_numpy() / 100, 2),
            "close_date": pl.select(pl.when(pl.Series(won | lost)).then(ts(moved).dt.date())).to_series(),
            "actual": pl.Series(np.where(won, np.round(new_value * rng.uniform(0.9, 1.05, size=m), 2), np.nan)).fill_nan(None),
            "won_reason": pl.Series(objs(np.where(won, history.pick(rng, history.WON_REASONS, m), None)), dtype=pl.String),
            "lost_reason": pl.Series(objs(np.where(lost, history.pick(rng, history.LOST_REASONS, m), None)), dtype=pl.String),
        })
        _ids_temp(conn, "moves", upd, {"id": "uuid", "stage_id": "uuid", "status": "text", "value": "numeric",
                                       "weighted": "numeric", "close_date": "date", "actual": "numeric",
                                       "won_reason": "text", "lost_reason": "text"})
        derived = ("" if self.live else  # the live deals table has no derived columns
                   ", weighted_value = m.weighted, days_in_pipeline = (coalesce(m.close_date, %s::date) - d.created_at::date)")
        conn.execute(f"""UPDATE deals d SET current_stage_id = m.stage_id, status = m.status, estimated_value = m.value,
                          actual_close_date = m.close_date, actual_value = m.actual,
                          won_reason = m.won_reason, lost_reason = m.lost_reason,
                          lost_to_competitor = CASE WHEN m.lost_reason = 'went_with_competitor' THEN 'Buildertrend' END
                          {derived}
                        FROM moves m WHERE m.id = d.id""", () if self.live else (self.d0.date(),))
        self.counts["deal_stage_history inserted"] += m
        self.counts["deals updated"] += m
        self.counts["deals closed"] += int((won | lost).sum())

    def reassign(self) -> None:
        """A rep leaves a territory: some open deals change hands."""
        rng, conn = self.rng, self.conn
        d = _frame(conn, "SELECT d.id, d.company_id FROM deals d WHERE status = 'active' ORDER BY id")
        if d.height == 0:
            return
        d = d.filter(pl.Series(rng.random(d.height) < 0.01))
        if d.height == 0:
            return
        cidx = {c: i for i, c in enumerate(self.companies["id"].to_list())}
        reps = history.pick_rep(rng, self.rep_mat, self.rep_n, np.array([cidx[c] for c in d["company_id"].to_list()]))
        _ids_temp(conn, "reassign", d.with_columns(rep=pl.Series(objs(reps), dtype=pl.String)), {"id": "uuid", "rep": "uuid"})
        cur = conn.execute("UPDATE deals d SET sales_rep_id = r.rep FROM reassign r WHERE r.id = d.id")
        self.counts["deals reassigned"] += cur.rowcount

    def deal_activities(self) -> None:
        d = _frame(self.conn, """SELECT id, company_id, contact_id, sales_rep_id, status, created_at,
                                        actual_close_date, updated_at FROM deals WHERE status = 'active' ORDER BY id""")
        if d.height == 0:
            return
        d = d.with_columns(created_at=ts(np.full(d.height, self.u0)), updated_at=ts(np.full(d.height, self.u1 - 1)),
                           actual_close_date=pl.lit(None, dtype=pl.Date))
        acts = history.deal_activities(self.rng, d.sample(fraction=0.25, seed=int(self.rng.integers(1 << 31))), self.w)
        acts = acts.filter(pl.col("activity_type") != "contract_signed")
        acts = acts.with_columns(created_at=pl.max_horizontal(pl.col("created_at"), pl.lit(self.d0.replace(tzinfo=None))))
        self.copy("public.deal_activities", acts)
        self.counts["deal_activities inserted"] += acts.height

    def hard_deletes(self) -> None:
        """Spam leads are deleted for good (activities cascade); old finished tasks are purged."""
        conn = self.conn
        spam = _frame(conn, """SELECT id FROM leads l WHERE created_at >= %s - interval '7 days'
                                 AND NOT EXISTS (SELECT 1 FROM deals d WHERE d.lead_id = l.id) ORDER BY id""", (self.d0,))
        if spam.height:
            # a few spam leads every day (at least one while there are recent leads)
            k = max(1, int(self.rng.binomial(spam.height, 0.03)))
            ids = spam["id"].gather(np.sort(self.rng.choice(spam.height, size=k, replace=False))).to_list()
            acts = conn.execute("SELECT count(*) FROM lead_activities WHERE lead_id = ANY(%s::uuid[])", (ids,)).fetchone()[0]
            if self.live:  # the live schema's request foreign keys have no ON DELETE: the app removes them first
                for table in ("demo_requests", "sales_contact_requests"):
                    gone = conn.execute(f"DELETE FROM {table} WHERE lead_id = ANY(%s::uuid[])", (ids,))
                    self.counts[f"{table} deleted"] += gone.rowcount
            cur = conn.execute("DELETE FROM leads WHERE id = ANY(%s::uuid[])", (ids,))
            self.counts["leads deleted"] += cur.rowcount
            self.counts["lead_activities deleted (cascade)"] += acts
        done_at = "updated_at" if self.live else "completed_at"  # live project tasks have no completed_at
        cur = conn.execute(f"""DELETE FROM tasks WHERE id IN (SELECT id FROM tasks WHERE status = 'completed'
                                AND {done_at} < %s - interval '120 days' ORDER BY id LIMIT 5)""", (self.d0,))
        self.counts["tasks deleted"] += cur.rowcount

    def late_commit(self) -> None:
        """A long batch transaction that began yesterday afternoon commits only today.

        Its rows get yesterday's ``now()`` as ``updated_at``: older than rows an ingest may already
        have seen, though they were not visible then. A plain ``updated_at`` cursor misses them.
        """
        with connect(self.url) as slow:
            _uuids_as_text(slow)
            began = self.u0 - LATE_COMMIT_HOURS * US_PER_HOUR
            slow.execute("SELECT set_config('builddesk_sim.now', %s, false)", (_iso(began),))
            ids = _frame(slow, "SELECT id FROM leads WHERE created_at < %s ORDER BY id", (_iso(began),))["id"]
            if ids.len() == 0:
                return
            chosen = ids.gather(np.sort(self.rng.choice(ids.len(), size=min(5, ids.len()), replace=False))).to_list()
            cur = slow.execute("UPDATE leads SET priority = 'high', tags = array_append(tags, 'enriched') "
                               "WHERE id = ANY(%s::uuid[])", (chosen,))
            self.counts["leads updated late (old updated_at)"] += cur.rowcount
            slow.commit()

    # ----------------------------------------------------------------- email

    def emails(self) -> None:
        rng, conn = self.rng, self.conn
        n = max(self.n(self.scale.email_events / 3.0), 1)
        camp = _frame(conn, """SELECT id, campaign_name, subject_line, from_email, template_id, ab_test_variant,
                                      ab_test_traffic_percentage, campaign_type FROM email_campaigns WHERE is_active ORDER BY campaign_name""")
        leads = _frame(conn, "SELECT id, email, first_name, created_at FROM leads ORDER BY created_at DESC LIMIT 20000")
        users = _frame(conn, "SELECT id, email FROM auth.users ORDER BY id")
        leads = leads.with_columns(pl.col("created_at").cast(pl.Datetime("us")))
        sends = email.sends(rng, n, self.w, camp, leads, users)
        ev = email.fates(rng, sends, self.u1)
        app = email.app_tables(rng, sends, ev, camp.with_columns(updated_at=pl.lit(None, dtype=pl.Datetime("us"))),
                               users.with_columns(created_at=pl.lit(None, dtype=pl.Datetime("us"))), self.u1)
        for table in ("email_sends", "email_queue", "email_clicks", "email_unsubscribes"):
            self.copy(f"public.{table}", app[table])
            self.counts[f"{table} inserted"] += app[table].height
        totals = app["email_campaigns"].filter(pl.col("total_sent") > 0).select(
            "id", "total_sent", "total_delivered", "total_opened", "total_clicked", "total_unsubscribed",
            "total_bounced", "total_complained", "last_sent_at")
        if self.live:  # the live schema's update_campaign_stats() trigger counted them as the sends arrived
            totals = totals.clear()
        _ids_temp(conn, "camp_totals", totals, {"id": "uuid", **{c: "int" for c in totals.columns[1:-1]},
                                                "last_sent_at": "timestamptz"})
        conn.execute("""UPDATE email_campaigns c SET total_sent = c.total_sent + t.total_sent,
                          total_delivered = c.total_delivered + t.total_delivered, total_opened = c.total_opened + t.total_opened,
                          total_clicked = c.total_clicked + t.total_clicked,
                          total_unsubscribed = c.total_unsubscribed + t.total_unsubscribed,
                          total_bounced = c.total_bounced + t.total_bounced,
                          total_complained = c.total_complained + t.total_complained, last_sent_at = t.last_sent_at
                        FROM camp_totals t WHERE t.id = c.id""")
        bodies = email.provider_bodies(ev, sends, rng)
        deliveries = email.deliveries(bodies, rng, late_share=0.03)
        # at-least-once: ~2% of deliveries are retried (same body, same svix-id), minutes to hours later
        retry = rng.random(deliveries.height) < 0.02
        retry[rng.integers(deliveries.height)] = True  # at least one retry a day
        dup = deliveries.filter(pl.Series(retry))
        dup = dup.with_columns(received_us=pl.col("received_us") + pl.Series(
            (rng.exponential(3600, size=dup.height) * 1e6).astype(np.int64) + 60_000_000))
        lines = email.landing_lines(pl.concat([deliveries, dup]))
        self.lines = malform(rng, lines)
        self.counts["webhook deliveries"] += deliveries.height
        self.counts["webhook duplicates"] += dup.height
        self.counts["webhook malformed"] += int(self.lines["malformed"].sum())

    def land(self) -> None:
        if self.lines is not None and self.lines.height:
            email.write_landing(self.lines, self.landing_dir, f"adv{self.no:05d}")


BROKEN = [
    # what a truncated write, a proxy error page and a provider change leave in the landing zone
    lambda line: line[: max(10, len(line) // 2)],
    lambda line: json.dumps({**json.loads(line), "body": "<html>502 Bad Gateway</html>"}),
    lambda line: line.replace('\\"sg_event_id\\"', '\\"sg_event_idx\\"').replace('\\"RecordType\\"', '\\"Record\\"')
    .replace('\\"type\\":\\"email.', '\\"type\\":\\"emailx.'),
]


def malform(rng: np.random.Generator, lines: pl.DataFrame, share: float = 0.004) -> pl.DataFrame:
    """Replace a small share of lines by broken ones (marked, for the counts and the tests)."""
    bad = rng.random(lines.height) < share
    if lines.height:
        bad[rng.integers(lines.height)] = True  # at least one a day: the parser must always cope
    kinds = rng.integers(0, len(BROKEN), size=lines.height)
    texts = lines["line"].to_list()
    for i in np.nonzero(bad)[0]:
        texts[i] = BROKEN[kinds[i]](texts[i])
    return lines.with_columns(line=pl.Series(texts), malformed=pl.Series(bad))
