"""Configuration from the environment (PRODUCT.md's variables). Nothing else reads os.environ."""

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
