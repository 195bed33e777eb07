"""Configuration from the environment: PRODUCT.md's variables (``settings``) and the resource tunables
(``memory_limit``, ``email_chunk_bytes``). A few run-time switches are read where they act (the ingest's
``CRM_INGEST_LOOKBACK_HOURS`` and ``CRM_ALLOW_MASS_DELETE``, the gate's thresholds, secrets)."""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    home: Path
    source_url: str | None
    email_events_dir: Path
    warehouse: str
    duckdb_path: Path
    warehouse_url: str | None

    @property
    def source_pgdata(self) -> Path:
        return self.home / "source-pg"

    @property
    def warehouse_pgdata(self) -> Path:
        return self.home / "warehouse-pg"


def settings(env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ) if env is None else env
    home = Path(env.get("CRM_HOME") or "./.crm").expanduser().absolute()
    warehouse = (env.get("CRM_WAREHOUSE") or "duckdb").strip().lower()
    if warehouse not in ("duckdb", "postgres"):
        raise ValueError(f"CRM_WAREHOUSE must be 'duckdb' or 'postgres', not {warehouse!r}")
    return Settings(
        home=home,
        source_url=env.get("CRM_SOURCE_URL") or None,
        email_events_dir=Path(env.get("CRM_EMAIL_EVENTS_DIR") or home / "email_events").expanduser().absolute(),
        warehouse=warehouse,
        duckdb_path=Path(env.get("CRM_DUCKDB_PATH") or home / "warehouse.duckdb").expanduser().absolute(),
        warehouse_url=env.get("CRM_WAREHOUSE_URL") or None,
    )


# medium tier (777 MB of landing lines, 1.38 M events), one run each: 64 MB chunks 44.7-49.3 s and +1.5 GB peak,
# 128 MB 31.6 s and +2.3 GB, 256 MB 24.0 s and +4.0 GB, everything at once 32.7 s and +9.3 GB (docs/benchmarks.md)
DEFAULT_CHUNK_BYTES = 128 * 1024 * 1024
DEFAULT_MEMORY_LIMIT = "4GB"   # DuckDB's share on a 2-core, 8 GB machine: the rest for Python, Arrow and the servers
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(KB|MB|GB|TB|KIB|MIB|GIB|TIB)\s*$", re.IGNORECASE)


def memory_limit(env: dict[str, str] | None = None) -> str:
    """``CRM_MEMORY_LIMIT`` (default 4GB): the memory DuckDB may use in every process that opens the
    warehouse (the ingest, dbt's build, the report); beyond it DuckDB spills to its temporary directory
    beside the file. A size such as 4GB or 512MB."""
    env = os.environ if env is None else env
    value = (env.get("CRM_MEMORY_LIMIT") or DEFAULT_MEMORY_LIMIT).strip()
    m = _SIZE.match(value)
    if not m or float(m[1]) <= 0:
        raise ValueError(f"CRM_MEMORY_LIMIT must be a size such as 4GB or 512MB, not {value!r}")
    return f"{m[1]}{m[2].upper()}"


_UNITS = {"KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4,
          "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3, "TIB": 1024**4}


def memory_limit_bytes(env: dict[str, str] | None = None) -> int:
    """``CRM_MEMORY_LIMIT`` in bytes (DuckDB's reading: GB = 1000^3, GiB = 1024^3)."""
    m = _SIZE.match(memory_limit(env))
    return int(float(m[1]) * _UNITS[m[2].upper()])


def email_chunk_bytes(env: dict[str, str] | None = None) -> int:
    """``CRM_EMAIL_CHUNK_MB`` (default 128): how much of the webhook landing zone one transaction reads."""
    env = os.environ if env is None else env
    value = (env.get("CRM_EMAIL_CHUNK_MB") or "").strip()
    if not value:
        return DEFAULT_CHUNK_BYTES
    try:
        mb = float(value)
    except ValueError:
        mb = 0
    if mb <= 0:
        raise ValueError(f"CRM_EMAIL_CHUNK_MB must be a positive number of megabytes, not {value!r}")
    return max(1, int(mb * 1024 * 1024))


_PASSWORD_IN_URL = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@?#]*:)(?P<pw>[^@/?#]*)@", re.IGNORECASE)
_PASSWORD_PARAM = re.compile(r"(?P<head>(?:[?&]|\s|^)password=)(?P<pw>[^&\s]*)", re.IGNORECASE)


def redact(text: str) -> str:
    """Hide passwords in PostgreSQL URLs and key=value connection strings."""
    text = _PASSWORD_IN_URL.sub(lambda m: f"{m['head']}***@" if m["pw"] else m[0], text)
    return _PASSWORD_PARAM.sub(lambda m: f"{m['head']}***", text)


@contextlib.contextmanager
def temporary_env(values: dict[str, str | None]):
    """Set (or, for None, unset) environment variables for the duration; restore them after."""
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
