"""Raw remembers what the source deleted: nothing but `raw reset` drops it; one writer per warehouse."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time

import psycopg
import pytest

from crm_warehouse.cli import main
from crm_warehouse.lock import WarehouseLocked, lock_path, writer_lock
from ingest.postgres_source import PostgresSource
from ingest.raw_load import ingest_table
from ingest.tables import spec
from ingest.warehouse import open_warehouse
from tests.conftest import for_target


def _env(monkeypatch, cfg, url: str) -> None:
    for k, v in {"CRM_HOME": cfg.home, "CRM_SOURCE_URL": url, "CRM_EMAIL_EVENTS_DIR": cfg.email_events_dir,
                 "CRM_WAREHOUSE": "duckdb", "CRM_DUCKDB_PATH": cfg.duckdb_path}.items():
        monkeypatch.setenv(k, str(v))


def _clone(pg_server: str, name: str) -> str:
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name} TEMPLATE tiny_source")
    return pg_server.replace("/postgres?", f"/{name}?")


def test_a_second_writer_stops_with_one_line_or_waits(tiny_source, pg_server, monkeypatch, capsys):
    cfg, url = tiny_source
    tcfg = for_target(cfg, "duckdb", pg_server, f"locked_{time.monotonic_ns()}")
    _env(monkeypatch, tcfg, url)
    # another run holds the lock: an open file description of its own, as another process has
    path = lock_path(tcfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    holder = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(holder, fcntl.LOCK_EX)
    os.write(holder, json.dumps({"what": "a refresh", "pid": os.getpid(), "started": "now"}).encode())
    try:
        with pytest.raises(WarehouseLocked):
            with writer_lock(tcfg, "another refresh"):
                pass
        assert main(["refresh"]) == 2
        err = " ".join(capsys.readouterr().err.split())
        assert f"being written by a refresh (pid {os.getpid()}" in err and "--wait" in err
        # a second process with --wait queues behind the holder and says so, having done nothing yet
        proc = subprocess.Popen([sys.executable, "-m", "crm_warehouse.cli", "refresh", "--wait"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "COLUMNS": "200"})
        try:
            deadline = time.monotonic() + 60
            seen = b""
            while b"waiting for a refresh" not in seen and time.monotonic() < deadline and proc.poll() is None:
                seen += proc.stdout.read1(4096)
            assert b"waiting for a refresh" in seen, seen
            assert proc.poll() is None and not tcfg.duckdb_path.exists()
        finally:
            proc.terminate()
            proc.wait(30)
    finally:
        os.close(holder)
    assert lock_path(tcfg).exists()
    with writer_lock(tcfg, "a refresh"):  # released when its holder closed it
        with writer_lock(tcfg, "a Dagster step of the same refresh"):  # re-entrant within one process
            pass


def test_resync_of_an_unknown_table_is_refused_before_any_work(tiny_source, pg_server, monkeypatch, capsys):
    cfg, url = tiny_source
    tcfg = for_target(cfg, "duckdb", pg_server, f"resync_{time.monotonic_ns()}")
    _env(monkeypatch, tcfg, url)
    assert main(["refresh", "--resync", "leads", "invoices"]) == 2
    assert "no source table invoices" in " ".join(capsys.readouterr().err.split())
    assert not tcfg.duckdb_path.exists()


def test_raw_keeps_deleted_rows_until_a_reset_that_asks(tiny_source, pg_server, monkeypatch, capsys):
    cfg, _ = tiny_source
    url = _clone(pg_server, "never_lose_source")
    tcfg = for_target(cfg, "duckdb", pg_server, f"never_lose_{time.monotonic_ns()}")
    wh = open_warehouse(tcfg)
    src = PostgresSource(url)
    try:
        ingest_table(wh, src, spec("contacts"))
        with psycopg.connect(url) as conn:
            conn.execute("SET session_replication_role = replica")
            gone = conn.execute("DELETE FROM contacts WHERE id IN (SELECT id FROM contacts ORDER BY id LIMIT 7)").rowcount
        ingest_table(wh, src, spec("contacts"))
        ingest_table(wh, src, spec("contacts"), resync=True)  # re-read whole: the deleted rows stay, flagged
        assert wh.scalar("SELECT count(*) FROM raw.contacts WHERE _deleted_at IS NOT NULL") == gone
    finally:
        src.close()
        wh.close()
    _env(monkeypatch, tcfg, url)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False)
    assert main(["raw", "reset", "contacts"]) == 2
    captured = capsys.readouterr()
    out = " ".join((captured.out + captured.err).split())
    assert f"{gone:,} rows the source has deleted are only here and will be forgotten" in out
    assert "needs confirmation" in out
    wh = open_warehouse(tcfg)
    try:
        assert wh.scalar("SELECT count(*) FROM raw.contacts WHERE _deleted_at IS NOT NULL") == gone
    finally:
        wh.close()
    assert main(["raw", "reset", "contacts", "--yes"]) == 0
    wh = open_warehouse(tcfg)
    try:
        assert wh.scalar("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'raw' "
                         "AND table_name = 'contacts'") == 0
        assert wh.scalar("SELECT count(*) FROM ops.ingest_state WHERE table_name = 'contacts'") == 0
    finally:
        wh.close()
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute("DROP DATABASE never_lose_source WITH (FORCE)")


def test_a_killed_refresh_takes_its_dbt_child_with_it(tiny_source, pg_server):
    """`kill -9` of a refresh while dbt builds: the dbt process dies with it (it would otherwise hold the
    warehouse's build copy for seconds), and the next refresh completes."""
    import signal

    import psutil

    cfg, url = tiny_source
    tcfg = for_target(cfg, "duckdb", pg_server, f"killed_dbt_{time.monotonic_ns()}")
    env = {**os.environ, "CRM_HOME": str(tcfg.home), "CRM_SOURCE_URL": url, "CRM_WAREHOUSE": "duckdb",
           "CRM_EMAIL_EVENTS_DIR": str(tcfg.email_events_dir), "CRM_DUCKDB_PATH": str(tcfg.duckdb_path)}
    proc = subprocess.Popen([sys.executable, "-m", "crm_warehouse.cli", "refresh"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, dbt = time.monotonic() + 240, None
        while dbt is None and time.monotonic() < deadline and proc.poll() is None:
            for child in psutil.Process(proc.pid).children(recursive=True):
                try:
                    if "build" in child.cmdline() and any("dbt" in part for part in child.cmdline()):
                        dbt = child
                except psutil.NoSuchProcess:
                    pass
            time.sleep(0.2)
        assert dbt is not None, "the refresh never started dbt"
        time.sleep(1.0)  # dbt is building now
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        gone, _ = psutil.wait_procs([dbt], timeout=5)
        assert gone, "dbt outlived the refresh that started it"
    finally:
        if proc.poll() is None:
            proc.kill()
    from crm_warehouse.pipeline import run_refresh
    from tests.conftest import assert_ok

    assert_ok(run_refresh(tcfg))
