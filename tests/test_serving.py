"""The PostgreSQL warehouse as BI tools meet it: bi_reader and tenant roles, tried as a user would."""

from __future__ import annotations

import dataclasses
import re
import time

import psycopg
import pytest

from crm_warehouse.pipeline import run_refresh
from tests.conftest import new_database


@pytest.fixture(scope="module")
def served(pg_server, tiny_source):
    """A PostgreSQL warehouse refreshed from the tiny source (bi_access applied by the refresh)."""
    cfg, _ = tiny_source
    cfg = dataclasses.replace(cfg, warehouse="postgres", warehouse_url=new_database(pg_server, f"served_{time.monotonic_ns()}"))
    res = run_refresh(cfg)
    assert res.ok, res.failures
    assert "serving/bi_access" in res.built
    return cfg


def as_role(url: str, role: str):
    """A superuser connection that has become ``role`` (SET ROLE: privileges and RLS are the role's)."""
    conn = psycopg.connect(url, autocommit=True)
    conn.execute(f"SET ROLE {role}")
    return conn


def login(url: str, role: str, password: str):
    """A real login as ``role`` (what a BI tool does), not a superuser session that SET ROLE."""
    return psycopg.connect(url.replace("postgresql://postgres:@", f"postgresql://{role}:{password}@"), autocommit=True)


def denied(conn, statement: str) -> bool:
    try:
        conn.execute(statement)
    except psycopg.errors.InsufficientPrivilege:
        return True
    return False


def test_bi_reader_reads_marts_and_nothing_else(served):
    url = served.warehouse_url
    with psycopg.connect(url) as owner:
        deals = owner.execute("SELECT count(*) FROM marts.fct_deals").fetchone()[0]
    with as_role(url, "bi_reader") as conn:
        assert conn.execute("SELECT count(*) FROM marts.fct_deals").fetchone()[0] == deals  # every tenant
        assert conn.execute("SELECT count(*) FROM marts.email_campaign_performance").fetchone()[0] > 0
        for schema, table in [("raw", "leads"), ("staging", "stg_builddesk__leads"), ("intermediate", "int_as_of"),
                              ("ops", "ingest_state"), ("quarantine", "email_events"), ("snapshots", "snap_deals")]:
            assert denied(conn, f"SELECT 1 FROM {schema}.{table} LIMIT 1"), f"{schema}.{table}"
        assert denied(conn, "INSERT INTO marts.win_loss (deal_id) VALUES (gen_random_uuid())")
        assert denied(conn, "UPDATE marts.fct_deals SET status = 'won'")
        assert denied(conn, "DELETE FROM marts.fct_deals")
        assert denied(conn, "CREATE TABLE marts.mine (x int)")
        assert denied(conn, "CREATE TABLE public.mine (x int)")
        assert denied(conn, "CREATE TEMP TABLE mine (x int)")
        assert denied(conn, "CREATE SCHEMA mine")


def test_grants_wait_for_a_lock_and_retry_instead_of_failing(served):
    """A BI session holding a mart (what autovacuum or a long query does to the serving step): the grants
    wait at most the lock timeout, retry with back-off, and succeed once the lock is released; a lock
    held past every attempt fails with the server's own first line."""
    import threading

    from serving.bi_access import apply_with_retries

    url = served.warehouse_url
    holder = psycopg.connect(url)
    holder.execute("LOCK TABLE marts.fct_deals IN ACCESS SHARE MODE")  # a reader's lock, held open
    released = threading.Timer(2.5, holder.rollback)
    released.start()
    said: list[str] = []
    try:
        covered = apply_with_retries(lambda: psycopg.connect(url), log=said.append, lock_timeout="500ms", attempts=6)
    finally:
        released.join()
    assert covered["mart_tables"] >= 15 and said and "lock timeout" in said[0], said
    holder.execute("LOCK TABLE marts.fct_deals IN ACCESS SHARE MODE")
    try:
        with pytest.raises(psycopg.errors.LockNotAvailable):
            apply_with_retries(lambda: psycopg.connect(url), lock_timeout="200ms", attempts=2)
    finally:
        holder.rollback()
        holder.close()
    with as_role(url, "bi_reader") as conn:  # what the failed attempts left: access as the last success made it
        assert conn.execute("SELECT count(*) FROM marts.fct_deals").fetchone()[0] > 0


def test_tenant_role_sees_only_its_company(served, monkeypatch, capsys):
    from crm_warehouse.cli import main

    url = served.warehouse_url
    with psycopg.connect(url) as owner:
        companies = [r[0] for r in owner.execute(
            "SELECT company_id, count(*) FROM marts.fct_deals GROUP BY 1 ORDER BY 2 DESC").fetchall()]
        mine, other = str(companies[0]), str(companies[1])
        my_deals = owner.execute("SELECT count(*) FROM marts.fct_deals WHERE company_id = %s", (mine,)).fetchone()[0]
    monkeypatch.setenv("CRM_WAREHOUSE_URL", url)
    monkeypatch.setenv("TENANT_PW", "s3cret-pw")
    assert main(["bi", "grant", "--company-id", mine, "--role", "tenant_a", "--password-env", "TENANT_PW"]) == 0
    assert main(["bi", "grant", "--company-id", mine, "--role", "tenant_a", "--password-env", "TENANT_PW"]) == 0  # idempotent
    assert "s3cret-pw" not in capsys.readouterr().out
    with login(url, "tenant_a", "s3cret-pw") as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == "tenant_a"
        assert conn.execute("SELECT count(*) FROM marts.fct_deals").fetchone()[0] == my_deals
        assert conn.execute("SELECT count(DISTINCT company_id) FROM marts.pipeline_metrics").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM marts.fct_deals WHERE company_id = %s", (other,)).fetchone()[0] == 0
        # a join and an aggregate see the same single tenant
        joined = conn.execute("SELECT DISTINCT d.company_id FROM marts.fct_deals d "
                              "JOIN marts.fct_deal_stage_transitions t ON t.deal_id = d.deal_id").fetchall()
        assert [str(r[0]) for r in joined] == [mine]
        assert [str(r[0]) for r in conn.execute("SELECT company_id FROM marts.win_loss GROUP BY 1").fetchall()] == [mine]
        # EXPLAIN ANALYZE of the other tenant's rows finds none
        plan = "\n".join(r[0] for r in conn.execute(
            "EXPLAIN (ANALYZE, COSTS OFF) SELECT * FROM marts.fct_deals WHERE company_id = %s", (other,)).fetchall())
        assert re.search(r"actual[^\n]*rows=0", plan), plan
        # not granted: BuildDesk's own campaigns, the raw layer; no way around the policy
        assert denied(conn, "SELECT 1 FROM marts.email_campaign_performance")
        assert denied(conn, "SELECT 1 FROM raw.deals")
        assert denied(conn, "SET ROLE bi_reader")
        assert denied(conn, "SELECT 1 FROM ops.bi_tenant_roles")
        assert denied(conn, "CREATE FUNCTION marts.peek(uuid) RETURNS boolean AS 'SELECT true' LANGUAGE sql")
        assert denied(conn, "ALTER TABLE marts.fct_deals DISABLE ROW LEVEL SECURITY")


def test_no_clear_text_personal_data_in_marts(served):
    """No mart column holds e-mail addresses, phone numbers or IP addresses."""
    url = served.warehouse_url
    with as_role(url, "bi_reader") as conn:
        cols = conn.execute("SELECT table_name, column_name FROM information_schema.columns "
                            "WHERE table_schema = 'marts' AND data_type IN ('text', 'character varying')").fetchall()
        assert cols
        for table, column in cols:
            hits = conn.execute(
                f'SELECT count(*) FROM marts."{table}" WHERE "{column}" ~ %s OR "{column}" ~ %s OR "{column}" ~ %s',
                (r"[^@\s]+@[^@\s]+\.[a-z]", r"^\+?[0-9 ()-]{10,}$", r"^\d{1,3}(\.\d{1,3}){3}$")).fetchone()[0]
            assert hits == 0, f"marts.{table}.{column}"


def test_tenant_isolation_survives_role_grants(served, monkeypatch):
    """`GRANT tenant_role TO alice` (how teams share a role) gives alice that tenant's rows and no other's,
    with SET ROLE or without; a role granted SELECT some other way sees no row; the lookups say nothing
    about roles the caller's login cannot become."""
    from crm_warehouse.cli import main

    url = served.warehouse_url
    with psycopg.connect(url) as owner:
        companies = [str(r[0]) for r in owner.execute(
            "SELECT company_id, count(*) FROM marts.fct_deals GROUP BY 1 ORDER BY 2 DESC").fetchall()]
        mine, other = companies[0], companies[1]
        counts = dict(owner.execute("SELECT company_id::text, count(*) FROM marts.fct_deals GROUP BY 1").fetchall())
    monkeypatch.setenv("CRM_WAREHOUSE_URL", url)
    monkeypatch.setenv("TENANT_PW", "pw-a")
    assert main(["bi", "grant", "--company-id", mine, "--role", "share_a", "--password-env", "TENANT_PW"]) == 0
    assert main(["bi", "grant", "--company-id", other, "--role", "share_b", "--password-env", "TENANT_PW"]) == 0
    with psycopg.connect(url, autocommit=True) as owner:
        for role in ("alice", "stray"):
            owner.execute(f"DROP ROLE IF EXISTS {role}")
            owner.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'pw-x'")
        owner.execute("GRANT share_a TO alice")
        owner.execute("GRANT USAGE ON SCHEMA marts TO stray")
        owner.execute("GRANT SELECT ON marts.fct_deals TO stray")  # privileges from elsewhere, no tenant
    try:
        with login(url, "alice", "pw-x") as conn:
            assert conn.execute("SELECT count(*) FROM marts.fct_deals").fetchone()[0] == counts[mine]
            assert conn.execute("SELECT count(*) FROM marts.fct_deals WHERE company_id = %s", (other,)).fetchone()[0] == 0
            assert conn.execute("SELECT marts.bi_visible_companies('share_b')").fetchone()[0] == []
            assert conn.execute("SELECT marts.bi_reads_all('bi_reader')").fetchone()[0] is False
            conn.execute("SET ROLE share_a")
            assert conn.execute("SELECT count(*) FROM marts.fct_deals").fetchone()[0] == counts[mine]
            assert denied(conn, "SET ROLE share_b")
        with login(url, "share_a", "pw-a") as conn:
            assert [str(c) for c in conn.execute("SELECT marts.bi_visible_companies('share_a')").fetchone()[0]] == [mine]
            assert conn.execute("SELECT marts.bi_visible_companies('share_b')").fetchone()[0] == []
        with login(url, "stray", "pw-x") as conn:
            assert conn.execute("SELECT count(*) FROM marts.fct_deals").fetchone()[0] == 0
        with as_role(url, "bi_reader") as conn:  # bi_reader still reads every tenant
            assert conn.execute("SELECT count(*) FROM marts.fct_deals").fetchone()[0] == sum(counts.values())
    finally:
        with psycopg.connect(url, autocommit=True) as owner:
            for role in ("alice", "stray"):
                owner.execute(f"DROP OWNED BY {role}")
                owner.execute(f"DROP ROLE {role}")


def test_bad_cli_inputs_end_in_one_line(served, monkeypatch, capsys):
    """Reserved or owning role names, an unknown company, a day beyond the partitions: one line each, a
    non-zero status, no traceback and no work."""
    import uuid

    from crm_warehouse.cli import main

    monkeypatch.setenv("CRM_WAREHOUSE_URL", served.warehouse_url)
    monkeypatch.setenv("CRM_HOME", str(served.home))
    monkeypatch.setenv("TENANT_PW", "pw")
    with psycopg.connect(served.warehouse_url) as owner:
        company = str(owner.execute("SELECT company_id FROM marts.fct_deals LIMIT 1").fetchone()[0])
        me = owner.execute("SELECT current_user").fetchone()[0]
    for role, expect in (("pg_read_all_data", "PostgreSQL reserves"), (me, "owns the warehouse")):
        assert main(["bi", "grant", "--company-id", company, "--role", role, "--password-env", "TENANT_PW"]) == 2
        err = " ".join(capsys.readouterr().err.split())
        assert expect in err and "Traceback" not in err, err
    assert main(["report", "--target", "postgres", "--company-id", str(uuid.uuid4())]) == 1
    assert "has no rows in the marts" in " ".join(capsys.readouterr().err.split())
    assert main(["refresh", "--target", "postgres", "--as-of", "2099-01-01"]) == 2
    assert "--as-of 2099-01-01: give a day from 2000-01-01" in " ".join(capsys.readouterr().err.split())


def test_warehouse_server_for_bi_tools_over_tcp(tiny_source, monkeypatch, capsys):
    """`warehouse up`: the embedded PostgreSQL warehouse on TCP with password authentication for every
    role; a refresh into it; bi_reader with the right password reads the marts, with a wrong one is
    refused, like the superuser without its password; a tenant role sees its rows only."""
    import socket

    from crm_warehouse.cli import main
    from ingest.config import settings
    from serving.warehouse_server import superuser_password

    cfg, url = tiny_source
    home = cfg.home.parent / f"wh_server_{time.monotonic_ns()}"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    for k, v in {"CRM_HOME": home, "CRM_SOURCE_URL": url, "CRM_EMAIL_EVENTS_DIR": cfg.email_events_dir,
                 "CRM_WAREHOUSE": "postgres", "CRM_BI_READER_PASSWORD": "bi-secret", "TENANT_PW": "t-secret"}.items():
        monkeypatch.setenv(k, str(v))
    monkeypatch.delenv("CRM_WAREHOUSE_URL", raising=False)
    monkeypatch.delenv("CRM_MEMORY_LIMIT", raising=False)
    try:
        assert main(["warehouse", "up", "--port", str(port)]) == 0
        shown = capsys.readouterr().out
        assert f"port {port}" in shown and "database warehouse" in shown and "bi-secret" not in shown
        assert main(["refresh"]) == 0  # its end says where a BI tool connects
        shown = " ".join(capsys.readouterr().out.split())
        assert f"host 127.0.0.1 port {port} database warehouse" in shown, shown[-1500:]
        assert "bi_reader logs in with CRM_BI_READER_PASSWORD" in shown and "bi-secret" not in shown
        tcp = f"postgresql://{{}}@127.0.0.1:{port}/warehouse"
        with psycopg.connect(tcp.format("bi_reader:bi-secret")) as conn:
            deals = conn.execute("SELECT count(*) FROM marts.fct_deals").fetchone()[0]
            company = str(conn.execute("SELECT company_id FROM marts.fct_deals LIMIT 1").fetchone()[0])
            assert deals > 0
        for who in ("bi_reader:wrong", "postgres:", "postgres:wrong"):
            with pytest.raises(psycopg.OperationalError):
                psycopg.connect(tcp.format(who), connect_timeout=5).close()
        assert main(["bi", "grant", "--company-id", company, "--role", "tcp_tenant", "--password-env", "TENANT_PW"]) == 0
        with psycopg.connect(tcp.format("tcp_tenant:t-secret")) as conn:
            assert {str(r[0]) for r in conn.execute("SELECT DISTINCT company_id FROM marts.fct_deals")} == {company}
        assert main(["warehouse", "status"]) == 0
        assert "tcp_tenant" in capsys.readouterr().out
        # the server BI tools reach is the one sized from CRM_MEMORY_LIMIT (default 4GB)
        with psycopg.connect(tcp.format(f"postgres:{superuser_password(settings())[0]}")) as conn:
            shown = {k: conn.execute(f"SHOW {k}").fetchone()[0] for k in ("work_mem", "wal_level")}
        assert shown == {"work_mem": "59MB", "wal_level": "minimal"}, shown
    finally:
        main(["warehouse", "down"])
    assert main(["warehouse", "status"]) == 1


def test_the_embedded_warehouse_server_is_sized_from_the_memory_limit(tmp_path, monkeypatch):
    """The project's embedded warehouse server runs with shared buffers, per-sort memory and index-build
    memory from CRM_MEMORY_LIMIT, and without WAL for tables made and filled in one transaction (PostgreSQL's
    defaults: 128MB, 4MB, 64MB, replica). A new limit reaches it at the next connection: the settings a reload
    applies at once; those needing a restart by a restart, but not while another client is connected (it
    keeps its session; they apply once it has gone)."""
    from ingest.postgres_server import WAREHOUSE_DB, embedded_database_url, stop_embedded, warehouse_server_settings

    assert warehouse_server_settings(4 * 1000**3) == {
        "shared_buffers": "953MB", "effective_cache_size": "3814MB", "work_mem": "59MB",
        "maintenance_work_mem": "476MB", "wal_level": "minimal", "max_wal_senders": "0"}
    assert warehouse_server_settings(512 * 1024**2)["work_mem"] == "8MB"
    assert warehouse_server_settings(64 * 1024**2)["shared_buffers"] == "128MB"  # never below the default

    def shown(url: str) -> dict[str, str]:
        with psycopg.connect(url) as conn:
            return {k: conn.execute(f"SHOW {k}").fetchone()[0]
                    for k in ("shared_buffers", "work_mem", "maintenance_work_mem", "wal_level")}

    pgdata = tmp_path / "warehouse-pg"
    try:
        monkeypatch.setenv("CRM_MEMORY_LIMIT", "1GiB")
        url = embedded_database_url(pgdata, WAREHOUSE_DB)
        assert shown(url) == {"shared_buffers": "256MB", "work_mem": "16MB", "maintenance_work_mem": "128MB",
                              "wal_level": "minimal"}
        monkeypatch.setenv("CRM_MEMORY_LIMIT", "2GiB")
        with psycopg.connect(url) as reader:
            pid = reader.execute("SELECT pg_backend_pid()").fetchone()[0]
            url = embedded_database_url(pgdata, WAREHOUSE_DB)
            assert shown(url)["work_mem"] == "32MB" and shown(url)["shared_buffers"] == "256MB"
            assert reader.execute("SELECT pg_backend_pid()").fetchone()[0] == pid  # not restarted under it
        with psycopg.connect(url) as conn:  # a closed session's backend ends a moment after the close
            for _ in range(100):
                if not conn.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
                                    "AND pid <> pg_backend_pid()").fetchone()[0]:
                    break
                time.sleep(0.05)
        url = embedded_database_url(pgdata, WAREHOUSE_DB)
        assert shown(url)["shared_buffers"] == "512MB"
    finally:
        stop_embedded(pgdata)
