"""Session fixtures: one embedded PostgreSQL per test session, a tiny source built once."""

from __future__ import annotations

import dataclasses
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

from ingest.config import Settings, settings
from ingest.postgres_server import start_embedded, stop_embedded

# the providers' real payloads (a copy of shared/email_event_samples, with their sources in SOURCES.tsv)
SAMPLES = Path(__file__).resolve().parent / "fixtures" / "email_event_samples"
END_DATE = "2026-06-30"  # in the past, so `advance` never writes future timestamps


def pytest_configure(config):
    # A test run stopped by SIGTERM (a CI timeout, `timeout`, ^C from a supervisor) still runs the
    # fixtures' teardown and atexit handlers, so no embedded server is left running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not SAMPLES.is_dir():
        raise pytest.UsageError(f"the provider samples are missing: expected {SAMPLES}")


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which turns the marks into the tests' groups
def pytest_collection_modifyitems(config, items):
    # With pytest-xdist (pyproject's addopts) each worker is a session of its own: the tests reading
    # one expensive session fixture (a refreshed warehouse: two dbt builds) run on one worker, which
    # builds it once.
    for item in items:
        for shared in ("built", "served"):
            if shared in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.xdist_group(shared))
                break


@pytest.fixture(scope="session")
def workdir():
    d = Path(tempfile.mkdtemp(prefix="crm-tests-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server(workdir):
    """The session's one embedded PostgreSQL server; tests get databases of their own in it."""
    pgdata = workdir / "pg"
    url = start_embedded(pgdata, stop_at_exit=True)
    yield url
    stop_embedded(pgdata)


def new_database(server_url: str, name: str) -> str:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    return server_url.replace("/postgres?", f"/{name}?")


def cfg_for(workdir: Path, url: str, tag: str) -> Settings:
    return settings({"CRM_HOME": str(workdir / tag), "CRM_SOURCE_URL": url,
                     "CRM_EMAIL_EVENTS_DIR": str(workdir / tag / "email_events")})


def make_source(server_url: str, workdir: Path, name: str, **up) -> tuple[Settings, str]:
    """A simulated source in a database ``name`` of the session's server: (settings, url)."""
    from simulator import source

    url = new_database(server_url, name)
    cfg = cfg_for(workdir, url, name)
    source.up(cfg, **{"scale": "tiny", "end_date": END_DATE, "schema_kind": "analysis", **up})
    return cfg, url


@pytest.fixture(scope="session")
def tiny_source(pg_server, workdir):
    """(settings, url) of a tiny source, seed 11, built once per session. Tests must not change it."""
    return make_source(pg_server, workdir, "tiny_source", seed=11)


@pytest.fixture()
def source_conn(tiny_source):
    with psycopg.connect(tiny_source[1]) as conn:
        yield conn


@pytest.fixture(scope="session")
def variant_source(pg_server, workdir):
    """(settings, url) of a tiny source with the later `leads` definition (`status` + project columns)."""
    return make_source(pg_server, workdir, "variant_source", seed=3, history_days=60, end_date="2026-01-31",
                       leads_variant="status")


def reader_without_bypassrls(url: str, role: str, rls_tables: tuple[str, ...]) -> str:
    """A login ``role`` that may read every table of the source at ``url`` but does not bypass row-level
    security, which ``rls_tables`` get (no policy: the role sees none of their rows). Returns its URL."""
    import re

    with psycopg.connect(url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is None:
            conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"GRANT USAGE ON SCHEMA public, auth, simulator TO {role}")
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public, auth, simulator TO {role}")
        for t in rls_tables:
            conn.execute(f"ALTER TABLE {t} ENABLE ROW LEVEL SECURITY")
    return re.sub(r"postgresql://[^@]*@", f"postgresql://{role}@", url)


def for_target(cfg, target: str, pg_server: str, name: str):
    if target == "duckdb":
        return dataclasses.replace(cfg, warehouse="duckdb", duckdb_path=cfg.home / f"{name}.duckdb")
    return dataclasses.replace(cfg, warehouse="postgres", warehouse_url=new_database(pg_server, name))


def assert_ok(res) -> None:
    assert res.ok, f"refresh failed: {res.failures} {res.checks_failed}"


@pytest.fixture(scope="session")
def built(pg_server, workdir, tiny_source):
    """The tiny source refreshed (ingest + dbt build) into a DuckDB and a PostgreSQL warehouse. Read-only for tests."""
    from crm_warehouse.pipeline import run_refresh

    cfg, url = tiny_source
    out = {}
    for target in ("duckdb", "postgres"):
        tcfg = for_target(cfg, target, pg_server, f"marts_{target}_{time.monotonic_ns()}")
        res = run_refresh(tcfg)
        assert_ok(res)
        out[target] = (tcfg, res)
    return out
