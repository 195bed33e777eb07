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


def _assert_no_build_left(tcfg) -> None:
    """No DuckDB build copy beside the file, no PostgreSQL shadow schema: killed runs' builds were cleared."""
    if tcfg.warehouse == "duckdb":
        assert not list(tcfg.duckdb_path.parent.glob(f"{tcfg.duckdb_path.name}.build*"))
        return
    wh = open_warehouse(tcfg)
    try:
        assert wh.rows("SELECT nspname FROM pg_namespace WHERE right(nspname, 7) = '__build' "
                       "OR right(nspname, 5) = '__old'") == []
    finally:
        wh.close()


def _clone(pg_server: str, name: str) -> str:
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name} TEMPLATE tiny_source")
    return pg_server.replace("/postgres?", f"/{name}?")


def _ignore_sigint() -> None:
    """What a child of a background job inherits, or of a process where Dagster mapped SIGTERM to SIGINT's
    ignored handler (a pytest-xdist worker after an in-process run): both signals ignored."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


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
        # started as a shell starts a background job (SIGINT ignored): SIGTERM must still stop it
        proc = subprocess.Popen([sys.executable, "-m", "crm_warehouse.cli", "refresh", "--wait"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "COLUMNS": "200"},
                                preexec_fn=_ignore_sigint)
        try:
            deadline = time.monotonic() + 60
            seen = b""
            while b"waiting for a refresh" not in seen and time.monotonic() < deadline and proc.poll() is None:
                seen += proc.stdout.read1(4096)
            assert b"waiting for a refresh" in seen, seen
            assert proc.poll() is None and not tcfg.duckdb_path.exists()
        finally:
            proc.terminate()
            proc.wait(60)
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


# Where a refresh is killed: (stage, a line of the run's own `refresh -v` progress, which occurrence of it).
# Each run starts from what the previous killed one left; the last one runs to the end.
KILL_POINTS = [
    ("e-mail ingest", r"raw/email_events: .* loaded", 1),   # the first chunk committed
    ("e-mail ingest", r"raw/email_events: .* loaded", 3),   # three more chunks into the next run
    ("table ingest", r"raw/(?!email_events)\w+: .* written", 1),
    ("table ingest", r"raw/(?!email_events)\w+: .* written", 12),
    ("dbt build", r"\d+ of \d+ START", 1),
    ("dbt build", r"\d+ of \d+ (OK|PASS)", 120),
    ("publish", r"publish: recording the check results", 1),
    ("publish", r"publish: the audited build replaces", 1),
]


# PostgreSQL: one point per stage (its publish is a transaction renaming the shadow schemas)
PG_KILL_POINTS = [KILL_POINTS[0], KILL_POINTS[3], KILL_POINTS[5],
                  ("publish", r"publish: the audited build's shadow schemas are renamed in", 1)]


@pytest.mark.parametrize("target", ["duckdb", "postgres"])
def test_killed_at_every_stage_the_next_refresh_recovers_completely(tiny_source, pg_server, built, workdir, target):
    """`kill -9` of `crm-warehouse refresh` during the e-mail ingest, the table ingest, the dbt build
    and the publish, two points each, picked from the run's own progress lines: the next refresh
    completes, raw equals the source (nothing lost, nothing twice) and every mart equals a clean build
    of the same source; no build copy is left behind."""
    import re
    import signal

    from tests.test_marts import all_marts
    from tests.test_raw_ingest import assert_raw_equals_source

    cfg, url = tiny_source
    tcfg = for_target(cfg, target, pg_server, f"killed_{target}_{time.monotonic_ns()}")
    env = {**os.environ, "CRM_HOME": str(tcfg.home / f"killed-{target}"), "CRM_SOURCE_URL": url,
           "CRM_WAREHOUSE": target, "CRM_EMAIL_EVENTS_DIR": str(tcfg.email_events_dir),
           "CRM_DUCKDB_PATH": str(tcfg.duckdb_path), "CRM_WAREHOUSE_URL": tcfg.warehouse_url or "",
           "CRM_EMAIL_CHUNK_MB": "0.25"}  # the tiny landing zone (~2.8 MB) in a dozen chunks
    for stage, pattern, nth in KILL_POINTS if target == "duckdb" else PG_KILL_POINTS:
        proc = subprocess.Popen([sys.executable, "-m", "crm_warehouse.cli", "refresh", "-v"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        seen, lines = 0, []
        try:
            for line in proc.stderr:
                lines.append(line)
                if re.search(pattern, line):
                    seen += 1
                    if seen == nth:
                        os.kill(proc.pid, signal.SIGKILL)
                        break
        finally:
            if proc.poll() is None and seen < nth:
                proc.kill()
            proc.wait(30)
        assert seen == nth, f"{stage}: the run ended before {pattern!r} #{nth}:\n{''.join(lines[-20:])}"
        assert proc.returncode == -signal.SIGKILL, (stage, proc.returncode)
    done = subprocess.run([sys.executable, "-m", "crm_warehouse.cli", "refresh"], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0 and "ok in" in done.stdout, done.stderr[-3000:]
    wh = open_warehouse(tcfg)
    try:
        assert_raw_equals_source(wh, url)
        events = wh.rows("SELECT count(*), count(DISTINCT (provider, event_id)) FROM raw.email_events")[0]
    finally:
        wh.close()
    clean = open_warehouse(built[target][0])
    try:
        assert events == clean.rows("SELECT count(*), count(DISTINCT (provider, event_id)) FROM raw.email_events")[0]
    finally:
        clean.close()
    assert all_marts(tcfg) == all_marts(built[target][0])
    _assert_no_build_left(tcfg)


class _Run:
    """`crm-warehouse refresh` in a process group of its own, its stderr collected line by line."""

    def __init__(self, env: dict, *args: str):
        import threading

        self.proc = subprocess.Popen([sys.executable, "-m", "crm_warehouse.cli", "refresh", *args], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.lines: list[str] = []
        self.out = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)

    def saw(self, pattern: str) -> bool:
        import re

        return any(re.search(pattern, line) for line in list(self.lines))

    def until(self, pattern: str, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while not self.saw(pattern):
            assert self.proc.poll() is None and time.monotonic() < deadline, \
                f"never printed {pattern!r}:\n{''.join(self.lines[-20:])}"
            time.sleep(0.05)

    def finish(self, timeout: float = 600) -> int:
        self.out = self.proc.stdout.read()
        self.proc.wait(timeout)
        self._reader.join(10)
        return self.proc.returncode

    def signal_group(self, sig) -> None:
        os.killpg(self.proc.pid, sig)


@pytest.mark.parametrize("target", ["duckdb", "postgres"])
def test_two_refreshes_started_together_and_one_paused_mid_dbt(tiny_source, pg_server, workdir, target):
    """Two refreshes started at the same moment on one warehouse: one runs, the other says it waits.
    The running one is paused (SIGSTOP, with its dbt) in the middle of its dbt build while the source
    moves on a day; a third, without --wait, exits 2 naming it. Resumed, it publishes its own audited
    build; then the waiting one ingests the new day and publishes: raw equals the moved source."""
    import shutil
    import signal

    from simulator import advance
    from tests.test_raw_ingest import assert_raw_equals_source

    cfg, _ = tiny_source
    url = _clone(pg_server, f"concurrent_source_{target}")
    landing = workdir / f"concurrent-landing-{time.monotonic_ns()}"
    shutil.copytree(cfg.email_events_dir, landing)
    tcfg = for_target(cfg, target, pg_server, f"concurrent_{target}_{time.monotonic_ns()}")
    env = {**os.environ, "CRM_HOME": str(workdir / f"concurrent-home-{time.monotonic_ns()}"), "CRM_SOURCE_URL": url,
           "CRM_WAREHOUSE": target, "CRM_EMAIL_EVENTS_DIR": str(landing), "CRM_DUCKDB_PATH": str(tcfg.duckdb_path),
           "CRM_WAREHOUSE_URL": tcfg.warehouse_url or ""}
    runs = [_Run(env, "-v", "--wait"), _Run(env, "-v", "--wait")]
    try:
        deadline = time.monotonic() + 120
        while not any(r.saw("waiting for a refresh") for r in runs):
            assert time.monotonic() < deadline and all(r.proc.poll() is None for r in runs), \
                [r.lines[-5:] for r in runs]
            time.sleep(0.05)
        waiting = next(r for r in runs if r.saw("waiting for a refresh"))
        first = next(r for r in runs if r is not waiting)
        assert waiting.saw(f"pid {first.proc.pid}")
        first.until(r"\d+ of \d+ (OK|PASS)")  # its dbt is building its copy
        first.signal_group(signal.SIGSTOP)
        try:
            moved = advance.advance(url, landing, days=1)
            assert sum(moved.values()) > 0
            third = _Run(env)
            assert third.finish(120) == 2
            said = " ".join("".join(third.lines).split())
            assert f"being written by a refresh (pid {first.proc.pid}" in said and "--wait" in said
            assert not waiting.saw(r"ingest: every source table")  # still waiting, nothing done
        finally:
            first.signal_group(signal.SIGCONT)
        assert first.finish() == 0, "".join(first.lines[-30:])
        assert waiting.finish() == 0, "".join(waiting.lines[-30:])
        assert "ok in" in first.out and "ok in" in waiting.out
    finally:
        for r in runs:
            if r.proc.poll() is None:
                r.signal_group(signal.SIGKILL)
                r.proc.wait(30)
    # the waiting run read the moved source after the first had published: nothing of either was lost
    wh = open_warehouse(tcfg)
    try:
        assert_raw_equals_source(wh, url)
        leads_in_marts = wh.scalar("SELECT count(*) FROM marts.dim_leads WHERE NOT is_deleted")
        leads_in_raw = wh.scalar("SELECT count(*) FROM raw.leads WHERE _deleted_at IS NULL")
    finally:
        wh.close()
    assert leads_in_marts == leads_in_raw, (leads_in_marts, leads_in_raw)
    _assert_no_build_left(tcfg)
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE concurrent_source_{target} WITH (FORCE)")


def _without_root_overrides() -> None:
    """In the child before exec: root's power to write what its mode forbids is dropped, so a read-only
    directory is read-only to it too (the suite may run as root; an ordinary user needs nothing)."""
    import ctypes

    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, out of the bounding set: gone after exec
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_a_read_only_home_or_warehouse_file_is_one_line_before_any_work(tiny_source, pg_server, built, workdir):
    """A CRM_HOME the user cannot write, or a warehouse file that is read-only: `refresh` says so in
    one line and exits 1, without a traceback and without reading the source."""
    import shutil
    import stat

    cfg, url = tiny_source
    home = workdir / f"ro-home-{time.monotonic_ns()}"
    home.mkdir()
    base = {**os.environ, "CRM_SOURCE_URL": url, "CRM_WAREHOUSE": "duckdb",
            "CRM_EMAIL_EVENTS_DIR": str(cfg.email_events_dir)}
    try:
        home.chmod(0o555)
        proc = subprocess.run([sys.executable, "-m", "crm_warehouse.cli", "refresh"], preexec_fn=_without_root_overrides,
                              env={**base, "CRM_HOME": str(home)}, capture_output=True, text=True, timeout=120)
    finally:
        home.chmod(0o755)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "Permission denied" in proc.stderr and str(home) in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    # the warehouse file itself read-only (its directory writable): one line naming it, nothing changed
    db = home / "warehouse.duckdb"
    shutil.copyfile(built["duckdb"][0].duckdb_path, db)
    db.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    before = db.read_bytes()
    proc = subprocess.run([sys.executable, "-m", "crm_warehouse.cli", "refresh"], preexec_fn=_without_root_overrides,
                          env={**base, "CRM_HOME": str(home), "CRM_DUCKDB_PATH": str(db)},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "Permission denied" in proc.stderr and str(db) in proc.stderr, \
        proc.stderr[-2000:]
    assert db.read_bytes() == before


def test_a_full_disk_under_crm_home_ends_in_one_line(tiny_source, workdir):
    """Writes failing under CRM_HOME (the process's file-size limit stands in for a full disk: every write
    past 200 kB fails): `refresh` ends with one error line naming CRM_HOME and exits 1, no traceback."""
    import resource
    import signal

    cfg, url = tiny_source
    home = workdir / f"full-home-{time.monotonic_ns()}"

    def full_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write (EFBIG), not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))

    proc = subprocess.run([sys.executable, "-m", "crm_warehouse.cli", "refresh"], preexec_fn=full_disk,
                          env={**os.environ, "CRM_HOME": str(home), "CRM_SOURCE_URL": url, "CRM_WAREHOUSE": "duckdb",
                               "CRM_EMAIL_EVENTS_DIR": str(cfg.email_events_dir), "CRM_DUCKDB_PATH": str(home / "w.duckdb")},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "Stack Trace" not in proc.stderr, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and "free space" in last and str(home) in last, proc.stderr[-3000:]
