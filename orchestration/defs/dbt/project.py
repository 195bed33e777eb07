"""The dbt project as Dagster sees it: where it lives, its manifest, and the environment dbt runs in."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from dagster_dbt import DbtProject
from psycopg.conninfo import conninfo_to_dict

from ingest.config import Settings, redact
from ingest.postgres_server import WAREHOUSE_DB, embedded_database_url

ROOT = Path(__file__).resolve().parents[3]
PROFILES_DIR = ROOT / "dbt_project"
TARGET_DIR = ROOT / "dbt_project" / "target"
SOURCES = [ROOT / "dbt_project.yml", *(ROOT / "dbt_project" / d for d in ("models", "macros", "seeds", "snapshots", "tests"))]

dbt_project = DbtProject(project_dir=ROOT, profiles_dir=PROFILES_DIR, target_path=Path("dbt_project/target"))


def dbt_executable() -> str:
    """The `dbt` next to this interpreter (the project's venv), else the one on PATH."""
    here = Path(sys.executable).parent / "dbt"
    return str(here) if here.exists() else (shutil.which("dbt") or "dbt")


def _newest_source_mtime() -> float:
    newest = 0.0
    for p in SOURCES:
        if p.is_file():
            newest = max(newest, p.stat().st_mtime)
        elif p.is_dir():
            for f in p.rglob("*"):
                if f.is_file():
                    newest = max(newest, f.stat().st_mtime)
    return newest


def ensure_manifest() -> Path:
    """`dbt parse` when the manifest is missing or older than a file of the project (a few seconds)."""
    manifest = TARGET_DIR / "manifest.json"
    if manifest.exists() and manifest.stat().st_mtime >= _newest_source_mtime():
        return manifest
    env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    proc = subprocess.run([dbt_executable(), "parse", "--quiet", "--project-dir", str(ROOT), "--profiles-dir",
                           str(PROFILES_DIR), "--target-path", str(TARGET_DIR)],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"dbt parse failed:\n{redact(proc.stdout[-4000:])}{redact(proc.stderr[-2000:])}")
    return manifest


def dbt_env(settings: Settings, target: str | None = None) -> dict[str, str]:
    """Variables profiles.yml reads: the target, the DuckDB path, or the PostgreSQL warehouse's
    connection split into fields (any libpq URL, Unix-socket ones included). Days are cut in UTC
    in SQL; PGTZ makes PostgreSQL sessions UTC as well."""
    target = target or settings.warehouse
    env = {"CRM_WAREHOUSE": target, "CRM_HOME": str(settings.home), "CRM_DUCKDB_PATH": str(settings.duckdb_path),
           "PGTZ": "UTC", "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    if target == "postgres":
        url = settings.warehouse_url or embedded_database_url(settings.warehouse_pgdata, WAREHOUSE_DB)
        info = conninfo_to_dict(url)
        env.update({
            "CRM_WH_HOST": str(info.get("host") or "localhost"),
            "CRM_WH_PORT": str(info.get("port") or "5432"),
            "CRM_WH_USER": str(info.get("user") or os.environ.get("USER", "postgres")),
            "CRM_WH_PASSWORD": str(info.get("password") or ""),
            "CRM_WH_DBNAME": str(info.get("dbname") or WAREHOUSE_DB),
        })
    return env


def generate_docs(settings: Settings, target_path: Path, out_dir: Path) -> Path:
    """`dbt docs generate --static` over the last build's artefacts (no recompilation): one
    self-contained HTML page (models, columns, tests, lineage from the sources) plus the JSON
    behind it, copied to ``out_dir``. Returns the page."""
    env = {**os.environ, **dbt_env(settings)}
    proc = subprocess.run([dbt_executable(), "docs", "generate", "--static", "--no-compile", "--quiet",
                           "--project-dir", str(ROOT), "--profiles-dir", str(PROFILES_DIR),
                           "--target-path", str(target_path)], cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"dbt docs generate failed:\n{redact(proc.stdout[-3000:])}{redact(proc.stderr[-1000:])}")
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("manifest.json", "catalog.json"):
        shutil.copyfile(target_path / name, out_dir / name)
    shutil.copyfile(target_path / "static_index.html", out_dir / "index.html")
    return out_dir / "index.html"
