"""The simulated operational source: schema, integrity, business behaviour, webhook shapes."""

from __future__ import annotations

import json

import numpy as np
import psycopg
import pytest

from simulator import generate, schema
from simulator.scales import get_scale
from tests.conftest import SAMPLES, make_source, new_database

PK_EXCEPTIONS = {"email_preferences": "user_id"}


def test_every_table_present_with_its_primary_key(source_conn):
    rows = source_conn.execute("""
        SELECT n.nspname || '.' || c.relname, a.attname
        FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(k.conkey)
        WHERE k.contype = 'p' AND n.nspname IN ('public', 'auth')""").fetchall()
    pks = dict(rows)
    for table in schema.SOURCE_TABLES:
        name = schema.qualified(table)
        assert name in pks, f"{name} missing or without primary key"
        assert pks[name] == PK_EXCEPTIONS.get(table, "id")
    # the operational schema holds exactly BuildDesk's tables; bookkeeping is elsewhere
    public = {r[0] for r in source_conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}
    assert public == {t for t in schema.SOURCE_TABLES if "." not in t}


def test_foreign_keys_declared_and_no_orphans(source_conn):
    declared = source_conn.execute(
        "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND convalidated").fetchone()[0]
    assert declared == len(schema.FOREIGN_KEYS)
    for table, column, ref, _ in schema.FOREIGN_KEYS:
        orphans = source_conn.execute(
            f"SELECT count(*) FROM {schema.qualified(table)} t WHERE t.{column} IS NOT NULL "
            f"AND NOT EXISTS (SELECT 1 FROM {schema.qualified(ref)} r WHERE r.id = t.{column})").fetchone()[0]
        assert orphans == 0, f"{table}.{column} has {orphans} orphans"


def test_enumerations_within_their_values(source_conn):
    cols = {(t, c) for t, c in source_conn.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'")}
    checked = 0
    for (table, column), values in schema.ENUMS.items():
        if (table, column) not in cols:
            continue  # the other leads variant
        bad = source_conn.execute(
            f"SELECT count(*) FROM public.{table} WHERE {column} IS NOT NULL AND NOT ({column} = ANY(%s))",
            (list(values),)).fetchone()[0]
        assert bad == 0, f"{table}.{column}"
        checked += 1
    assert checked >= 40


def test_scale_tiny_sizes(tiny_source, source_conn):
    sc = get_scale("tiny")
    n = dict(source_conn.execute("""
        SELECT 'companies', count(*) FROM companies UNION ALL SELECT 'leads', count(*) FROM leads
        UNION ALL SELECT 'acts', count(*) FROM lead_activities UNION ALL SELECT 'deals', count(*) FROM deals""").fetchall())
    assert n["companies"] == sc.tenants
    assert n["leads"] == sc.leads
    assert n["deals"] == sc.deals
    assert 0.8 * sc.lead_activities <= n["acts"] <= 1.2 * sc.lead_activities
    events = 0
    for f in tiny_source[0].email_events_dir.rglob("*.ndjson"):
        for line in f.read_text().splitlines():
            body = json.loads(json.loads(line)["body"])
            events += len(body) if isinstance(body, list) else 1
    assert 0.7 * sc.email_events <= events <= 1.3 * sc.email_events


def test_last_stage_move_is_the_current_stage(source_conn):
    mismatched = source_conn.execute("""
        SELECT count(*) FROM deals d
        JOIN LATERAL (SELECT to_stage_id FROM deal_stage_history h WHERE h.deal_id = d.id
                      ORDER BY moved_at DESC LIMIT 1) last ON true
        WHERE last.to_stage_id IS DISTINCT FROM d.current_stage_id""").fetchone()[0]
    without_history = source_conn.execute(
        "SELECT count(*) FROM deals d WHERE NOT EXISTS (SELECT 1 FROM deal_stage_history h WHERE h.deal_id = d.id)").fetchone()[0]
    assert (mismatched, without_history) == (0, 0)
    # every move's from-stage is the previous move's to-stage, within the deal's own pipeline
    broken = source_conn.execute("""
        SELECT count(*) FROM (
          SELECT h.from_stage_id, lag(h.to_stage_id) OVER (PARTITION BY h.deal_id ORDER BY h.moved_at) prev,
                 s.template_id = d.pipeline_template_id AS same_pipeline
          FROM deal_stage_history h JOIN deals d ON d.id = h.deal_id JOIN pipeline_stages s ON s.id = h.to_stage_id) x
        WHERE from_stage_id IS DISTINCT FROM prev OR NOT same_pipeline""").fetchone()[0]
    assert broken == 0


def test_closed_deals_sit_on_closing_stages(source_conn):
    rows = source_conn.execute("""
        SELECT d.status, s.is_won_stage, s.is_lost_stage, d.actual_close_date IS NOT NULL, count(*)
        FROM deals d JOIN pipeline_stages s ON s.id = d.current_stage_id GROUP BY 1, 2, 3, 4""").fetchall()
    seen = {r[0] for r in rows}
    assert {"won", "lost", "active"} <= seen
    for status, won, lost, closed, _ in rows:
        if status == "won":
            assert won and closed
        elif status == "lost":
            assert lost and closed
        else:
            assert not won and not lost and not closed
    backward = source_conn.execute("""
        SELECT count(*) FROM deal_stage_history h JOIN pipeline_stages f ON f.id = h.from_stage_id
        JOIN pipeline_stages t ON t.id = h.to_stage_id WHERE t.stage_order < f.stage_order""").fetchone()[0]
    assert backward > 0, "some deals move back a stage"


def test_lead_score_is_what_the_trigger_computes(source_conn):
    diff = source_conn.execute(f"""
        SELECT count(*) FROM leads l LEFT JOIN (
          SELECT lead_id, sum(CASE activity_type {' '.join(f"WHEN '{k}' THEN {v}" for k, v in schema.TRIGGER_SCORE_WEIGHTS.items())} ELSE 0 END) s
          FROM lead_activities GROUP BY lead_id) a ON a.lead_id = l.id
        WHERE l.lead_score <> coalesce(a.s, 0)""").fetchone()[0]
    assert diff == 0
    # the real defect is present: email engagement exists but never scored
    email_acts = source_conn.execute(
        "SELECT count(*) FROM lead_activities WHERE activity_type IN ('email_open', 'email_click')").fetchone()[0]
    assert email_acts > 0


def test_trigger_is_live_and_misses_email_spelling(tiny_source, pg_server):
    """Inserting activities fires the real update_lead_score() trigger, with its spelling defect."""
    with psycopg.connect(tiny_source[1]) as conn:
        lead_id, before = conn.execute("SELECT id, lead_score FROM leads ORDER BY id LIMIT 1").fetchone()
        for t in ("demo_request", "email_open", "email_click", "page_view"):
            conn.execute("INSERT INTO lead_activities (lead_id, activity_type) VALUES (%s, %s)", (lead_id, t))
        after = conn.execute("SELECT lead_score FROM leads WHERE id = %s", (lead_id,)).fetchone()[0]
        conn.rollback()  # leave the shared source unchanged
    assert after - before == 50 + 1


def test_source_rhythm_and_conversion(source_conn):
    weekday, weekend = source_conn.execute("""
        SELECT count(*) FILTER (WHERE dow BETWEEN 1 AND 5) / 5.0, count(*) FILTER (WHERE dow IN (0, 6)) / 2.0
        FROM (SELECT extract(dow FROM created_at AT TIME ZONE 'UTC') dow FROM leads) d""").fetchone()
    assert weekday > 2 * weekend  # leads per weekday vs per weekend day
    rates = dict(source_conn.execute("""
        SELECT lead_source, avg((EXISTS (SELECT 1 FROM deals d WHERE d.lead_id = l.id))::int)
        FROM leads l GROUP BY 1""").fetchall())
    assert rates["referral"] > rates["cold_outreach"]


SENDGRID_DOCUMENTED_EXTRA = {"sg_machine_open", "bounce_classification"}  # documented, not in the samples


def _sample_keys(prefix: str) -> set[str]:
    keys: set[str] = set()
    for f in SAMPLES.glob(f"{prefix}_*.json"):
        d = json.loads(f.read_text())
        for e in d if isinstance(d, list) else [d]:
            keys |= set(e)
    return keys


def test_webhook_lines_match_provider_shapes(tiny_source):
    root = tiny_source[0].email_events_dir
    sg_keys = _sample_keys("sendgrid") | SENDGRID_DOCUMENTED_EXTRA
    pm_keys = _sample_keys("postmark")
    rs_types = {json.loads(f.read_text())["type"] for f in SAMPLES.glob("resend_*.json")}
    time_field = {"Delivery": "DeliveredAt", "Bounce": "BouncedAt", "SpamComplaint": "BouncedAt",
                  "Open": "ReceivedAt", "Click": "ReceivedAt", "SubscriptionChange": "ChangedAt"}
    counts = {"sendgrid": 0, "postmark": 0, "resend": 0}
    for provider in counts:
        files = list((root / provider).glob("dt=*/*.ndjson"))
        assert files, provider
        for f in files:
            assert f.parent.name.startswith("dt=") and f.name[:2].isdigit()
            for line in f.read_text().splitlines():
                d = json.loads(line)
                assert set(d) == {"provider", "received_at", "headers", "body"} and d["provider"] == provider
                assert f.parent.name == "dt=" + d["received_at"][:10] and f.name[:2] == d["received_at"][11:13]
                body = json.loads(d["body"])
                counts[provider] += 1
                if provider == "sendgrid":
                    assert isinstance(body, list) and body
                    for e in body:
                        assert {"email", "timestamp", "event", "sg_event_id", "sg_message_id"} <= set(e)
                        assert set(e) <= sg_keys, set(e) - sg_keys
                elif provider == "postmark":
                    assert isinstance(body, dict) and body["RecordType"] in time_field
                    assert time_field[body["RecordType"]] in body and "MessageID" in body
                    assert set(body) <= pm_keys, set(body) - pm_keys
                else:
                    assert d["headers"]["svix-id"].startswith("msg_")
                    assert body["type"] in rs_types | {"email.sent"}
                    assert body["data"]["email_id"] and body["created_at"].endswith("Z")
    assert all(n > 50 for n in counts.values()), counts


def test_sends_join_provider_events(tiny_source, source_conn):
    """Every delivered send has a delivery event carrying its (provider, provider id)."""
    sends = source_conn.execute(
        "SELECT email_provider, email_provider_id FROM email_sends WHERE status = 'delivered'").fetchall()
    ids = set()
    for f in tiny_source[0].email_events_dir.rglob("*.ndjson"):
        for line in f.read_text().splitlines():
            d = json.loads(line)
            body = json.loads(d["body"])
            if d["provider"] == "sendgrid":
                ids |= {("sendgrid", e["sg_message_id"].split(".")[0]) for e in body if e["event"] == "delivered"}
            elif d["provider"] == "postmark" and body["RecordType"] == "Delivery":
                ids.add(("postmark", body["MessageID"]))
            elif d["provider"] == "resend" and body["type"] == "email.delivered":
                ids.add(("resend", body["data"]["email_id"]))
    missing = [s for s in sends if s not in ids]
    assert sends and not missing


def test_same_seed_same_data_other_seed_other_data():
    sc = get_scale("tiny")
    end_us = int(np.datetime64("2026-03-01", "us").astype(np.int64))
    a = generate.build(sc, 5, end_us, 120, "lead_status")
    b = generate.build(sc, 5, end_us, 120, "lead_status")
    c = generate.build(sc, 6, end_us, 120, "lead_status")
    for table in ("leads", "lead_activities", "deals", "deal_stage_history", "email_sends"):
        assert a.tables[table].equals(b.tables[table]), table
    assert a.landing["line"].equals(b.landing["line"])
    assert not a.tables["leads"]["id"].equals(c.tables["leads"]["id"])
    # nothing after the end of the history
    assert a.tables["lead_activities"]["created_at"].max() < np.datetime64(end_us, "us")
    assert a.tables["deal_stage_history"]["moved_at"].max() < np.datetime64(end_us, "us")


@pytest.mark.parametrize("seed,end,days", [(1, "2026-10-31", 365), (2, "2026-02-01", 31), (3, "2025-12-31", 90),
                                           (42, "2026-10-31", 365), (5, "2026-07-15", 200)])
def test_every_deal_has_a_path_whatever_the_seed_and_window(seed, end, days):
    """Regression: deals of leads created on the last day were dated past the end and lost their path."""
    end_us = int(np.datetime64(end, "us").astype(np.int64))
    h = generate.build(get_scale("tiny"), seed, end_us, days, "lead_status")
    deals, hist = h.tables["deals"], h.tables["deal_stage_history"]
    assert set(deals["id"]) == set(hist["deal_id"])
    assert deals["created_at"].max() < np.datetime64(end_us, "us")


def test_leads_status_variant(variant_source):
    with psycopg.connect(variant_source[1]) as conn:
        cols = {r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'leads'")}
        statuses = {r[0] for r in conn.execute("SELECT DISTINCT status FROM leads")}
    assert "status" in cols and "lead_status" not in cols
    assert {"project_type", "estimated_budget"} <= cols
    assert "converted" in statuses


@pytest.fixture(scope="module")
def advanced(pg_server, workdir):
    """A tiny source of its own, snapshotted, then advanced by 3 days."""
    from simulator import advance

    cfg, url = make_source(pg_server, workdir, "advanced_source", seed=21)
    with psycopg.connect(url) as conn:
        before = {
            "leads": dict(conn.execute("SELECT id::text, updated_at FROM leads").fetchall()),
            "acts": dict(conn.execute("SELECT id::text, lead_id::text FROM lead_activities").fetchall()),
            "deals": dict(conn.execute("SELECT id::text, updated_at FROM deals").fetchall()),
            "history": conn.execute("SELECT count(*) FROM deal_stage_history").fetchone()[0],
            "clock": conn.execute("SELECT clock FROM simulator.state").fetchone()[0],
        }
    files_before = {p: p.stat().st_size for p in cfg.email_events_dir.rglob("*.ndjson")}
    counts = advance.advance(url, cfg.email_events_dir, days=3)
    return cfg, url, before, files_before, counts


def test_advance_adds_changes_and_deletes(advanced):
    cfg, url, before, _, counts = advanced
    with psycopg.connect(url) as conn:
        leads = dict(conn.execute("SELECT id::text, updated_at FROM leads").fetchall())
        acts = {r[0] for r in conn.execute("SELECT id::text FROM lead_activities")}
        clock = conn.execute("SELECT clock FROM simulator.state").fetchone()[0]
        history = conn.execute("SELECT count(*) FROM deal_stage_history").fetchone()[0]
    assert (clock - before["clock"]).days == 3
    added = set(leads) - set(before["leads"])
    deleted = set(before["leads"]) - set(leads)
    changed = {k for k in set(leads) & set(before["leads"]) if leads[k] != before["leads"][k]}
    assert added and changed and deleted
    assert len(deleted) + counts["leads inserted"] - len(added) == counts["leads deleted"]
    # the cascade: activities of deleted leads are gone with them
    orphaned = [a for a, lead in before["acts"].items() if lead in deleted and a in acts]
    assert not orphaned and counts["lead_activities deleted (cascade)"] > 0
    assert history > before["history"]
    # updated_at follows the simulated clock, never the wall clock
    assert max(leads.values()) <= clock


def test_advance_keeps_operational_invariants(advanced):
    _, url, *_ = advanced
    with psycopg.connect(url) as conn:
        score_diff = conn.execute(f"""
            SELECT count(*) FROM leads l LEFT JOIN (
              SELECT lead_id, sum(CASE activity_type {' '.join(f"WHEN '{k}' THEN {v}" for k, v in schema.TRIGGER_SCORE_WEIGHTS.items())} ELSE 0 END) s
              FROM lead_activities GROUP BY lead_id) a ON a.lead_id = l.id
            WHERE l.lead_score <> coalesce(a.s, 0)""").fetchone()[0]
        stage_mismatch = conn.execute("""
            SELECT count(*) FROM deals d JOIN LATERAL (SELECT to_stage_id FROM deal_stage_history h
              WHERE h.deal_id = d.id ORDER BY moved_at DESC LIMIT 1) last ON true
            WHERE last.to_stage_id IS DISTINCT FROM d.current_stage_id""").fetchone()[0]
        closed_wrong = conn.execute("""
            SELECT count(*) FROM deals d JOIN pipeline_stages s ON s.id = d.current_stage_id
            WHERE (d.status = 'won') <> s.is_won_stage OR (d.status = 'lost') <> s.is_lost_stage
               OR (d.status IN ('won', 'lost')) <> (d.actual_close_date IS NOT NULL)""").fetchone()[0]
    assert (score_diff, stage_mismatch, closed_wrong) == (0, 0, 0)


def test_advance_commits_some_rows_late_with_older_updated_at(advanced):
    """Rows changed by the advance whose updated_at is older than the newest updated_at seen before
    it: an ingest cursor that stood at that maximum would skip them."""
    _, url, before, _, counts = advanced
    watermark = max(before["leads"].values())
    with psycopg.connect(url) as conn:
        leads = dict(conn.execute("SELECT id::text, updated_at FROM leads").fetchall())
    behind = [k for k, t in leads.items() if k in before["leads"] and t != before["leads"][k] and t < watermark]
    assert counts["leads updated late (old updated_at)"] > 0 and behind


def test_advance_lands_new_late_duplicate_and_malformed_deliveries(advanced):
    cfg, _, before, files_before, counts = advanced
    new_lines = []
    for f in cfg.email_events_dir.rglob("*.ndjson"):
        data = f.read_bytes()[files_before.get(f, 0):]
        new_lines += data.decode().splitlines()
    assert len(new_lines) == counts["webhook deliveries"] + counts["webhook duplicates"]
    parsed, bad = [], 0
    for line in new_lines:
        try:
            d = json.loads(line)
            parsed.append((d, json.loads(d["body"])))
        except (ValueError, KeyError):
            bad += 1
    assert counts["webhook malformed"] >= 3 and bad >= 1
    bodies = [d["body"] for d, _ in parsed]
    assert len(bodies) > len(set(bodies)), "retried deliveries repeat a body"
    clock = before["clock"].timestamp()
    sendgrid_times = [e["timestamp"] for d, b in parsed if d["provider"] == "sendgrid" and isinstance(b, list)
                      for e in b if isinstance(e.get("timestamp"), int)]
    assert sendgrid_times and min(sendgrid_times) >= clock - 1  # events of the new days only


def test_source_up_on_existing_source_is_a_no_op(tiny_source):
    from simulator import source

    cfg, url = tiny_source
    again, created = source.up(cfg, scale="small", seed=99)
    assert again == url and created is False


def _cli(args: list[str], env: dict[str, str], monkeypatch, capsys) -> tuple[int, str]:
    from crm_warehouse.cli import main

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    code = main(args)
    return code, capsys.readouterr().err


def test_bad_input_gives_one_line_errors(pg_server, workdir, monkeypatch, capsys):
    home = workdir / "bad"
    env = {"CRM_HOME": str(home)}
    code, err = _cli(["source", "up", "--scale", "huge"], env, monkeypatch, capsys)
    assert code != 0 and "unknown scale 'huge'" in err and "tiny" in err
    code, err = _cli(["source", "up", "--scale", "tiny", "--end-date", "31/01/2026"], env, monkeypatch, capsys)
    assert code != 0 and "YYYY-MM-DD" in err
    assert not (home / "source-pg").exists(), "nothing half-created"
    # a database that is unreachable, with a password that must not be printed
    code, err = _cli(["source", "up", "--scale", "tiny"],
                     {**env, "CRM_SOURCE_URL": "postgresql://bob:s3cret@127.0.0.1:1/nowhere"}, monkeypatch, capsys)
    assert code != 0 and "cannot connect" in err and "s3cret" not in err
    # a foreign, non-empty database is refused and left untouched
    url = new_database(pg_server, "foreign_db")
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE public.invoices (id int primary key)")
        conn.commit()
    code, err = _cli(["source", "up", "--scale", "tiny"], {**env, "CRM_SOURCE_URL": url}, monkeypatch, capsys)
    assert code != 0 and "public.invoices" in err and "empty database" in err
    with psycopg.connect(url) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema')")]
    assert tables == ["invoices"]
    code, err = _cli(["source", "advance", "--days", "1"], {**env, "CRM_SOURCE_URL": url}, monkeypatch, capsys)
    assert code != 0 and "source up" in err


def test_chunked_generation_loads_a_consistent_source(pg_server, workdir, monkeypatch):
    """The large tiers are generated tenant chunk by tenant chunk: same integrity, totals add up."""
    monkeypatch.setattr(generate, "LEADS_PER_CHUNK", 250)
    sc = get_scale("tiny")
    assert generate.chunk_count(sc) == 2
    _, url = make_source(pg_server, workdir, "chunked_source", seed=61, history_days=90)
    with psycopg.connect(url) as conn:  # foreign keys were validated when source up added them
        n = dict(conn.execute("""
            SELECT 'leads', count(*) FROM leads UNION ALL SELECT 'deals', count(*) FROM deals
            UNION ALL SELECT 'users', count(*) FROM auth.users UNION ALL SELECT 'prefs', count(*) FROM email_preferences
            UNION ALL SELECT 'sent', sum(total_sent) FROM email_campaigns UNION ALL SELECT 'sends', count(*) FROM email_sends
            UNION ALL SELECT 'companies_with_leads', count(DISTINCT company_id) FROM leads""").fetchall())
    assert n["leads"] == sc.leads and n["deals"] == sc.deals
    assert n["prefs"] == n["users"] and n["sent"] == n["sends"] > 0
    assert n["companies_with_leads"] == sc.tenants


def test_every_command_option_is_described_and_help_lists_the_environment(capsys):
    """`--help` of every command describes every option; the top-level help lists the environment
    variables the product reads (the ones the code reads, found in its source)."""
    import argparse
    import re
    from pathlib import Path

    from crm_warehouse.cli import build_parser, main

    undescribed = []

    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, path + [name])
            elif not isinstance(action, argparse._HelpAction) and not action.help:
                undescribed.append(" ".join(path + (action.option_strings or [action.dest])))

    walk(build_parser(), [])
    assert not undescribed, undescribed
    with pytest.raises(SystemExit):
        main(["--help"])
    shown = capsys.readouterr().out
    root = Path(__file__).resolve().parents[1]
    read = set()
    for folder in ("ingest", "crm_warehouse", "orchestration", "serving", "quality"):
        for f in (root / folder).rglob("*.py"):
            read |= set(re.findall(r"\b((?:CRM|SENDGRID|POSTMARK|RESEND)_[A-Z_]+)\b", f.read_text()))
    internal = {"CRM_AS_OF", "CRM_SCHEMA_SUFFIX", "CRM_DBT_EXECUTABLE"}  # the refresh sets them for its dbt child
    read = {v for v in read if not v.startswith("CRM_WH_")} - internal
    assert read and not {v for v in read if v not in shown}, sorted(v for v in read if v not in shown)
