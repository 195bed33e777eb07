"""The dbt project as Dagster sees it: where it lives, its manifest, and the environment dbt runs in."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from dagster_dbt import DbtProject
from psycopg.conninfo import conninfo_to_dict

from ingest.config import Settings, memory_limit, redact
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


def dbt_child_executable() -> str:
    """What Dagster runs as dbt: on Linux a wrapper (``dbt_child``) that makes dbt die with the process
    that started it (a refresh killed with SIGKILL leaves no dbt behind holding the warehouse file);
    elsewhere dbt itself."""
    real = dbt_executable()
    wrapper = Path(__file__).with_name("dbt_child")
    if not sys.platform.startswith("linux") or not os.access(wrapper, os.X_OK):
        return real
    os.environ.setdefault("CRM_DBT_EXECUTABLE", real)
    return str(wrapper)


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
    """`dbt parse` when the manifest is missing or older than a file of the project (a few seconds).

    Processes starting together (two test workers, a refresh beside `crm-warehouse ui`) take a
    lock: one parses, the others wait and then find the manifest fresh, instead of two `dbt parse`
    writing the same files at once or one reading a manifest the other is writing."""
    import fcntl

    manifest = TARGET_DIR / "manifest.json"

    def fresh() -> bool:
        return manifest.exists() and manifest.stat().st_mtime >= _newest_source_mtime()

    with contextlib.ExitStack() as held:
        try:  # a manifest being written is not read half-written
            TARGET_DIR.mkdir(parents=True, exist_ok=True)
            fcntl.flock(held.enter_context(open(TARGET_DIR / ".parse.lock", "w")), fcntl.LOCK_EX)
        except OSError:  # a read-only install: nobody parses into it, its manifest is read as it is
            pass
        if fresh():
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
           "CRM_MEMORY_LIMIT": memory_limit(),  # validated here: dbt gets the same limit as the ingest
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


def warehouse_columns_fingerprint(settings: Settings) -> str:
    """A hash of every (schema, relation, column, type) dbt docs' catalogue would describe: the
    warehouse's schemas but quarantine and ops. Equal fingerprints: the catalogue is the same."""
    import hashlib

    from ingest.warehouse import open_warehouse

    sql = ("SELECT table_schema, table_name, column_name, data_type, ordinal_position "
           "FROM information_schema.columns WHERE table_schema NOT IN "
           "('quarantine', 'ops', 'information_schema', 'pg_catalog', 'pg_toast') ORDER BY 1, 2, 5")
    if settings.warehouse == "duckdb":  # read-only: analysts may have the just-published file open
        import duckdb

        con = duckdb.connect(str(settings.duckdb_path), read_only=True)
        try:
            rows = con.execute(sql).fetchall()
        finally:
            con.close()
        return hashlib.sha256(repr(rows).encode()).hexdigest()
    wh = open_warehouse(settings)
    try:
        rows = wh.rows(sql)
    finally:
        wh.close()
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def _docs_page_template() -> Path:
    """dbt's docs page (``dbt/task/docs/index.html``), found without importing dbt."""
    import importlib.util

    spec = importlib.util.find_spec("dbt")
    return Path(next(iter(spec.submodule_search_locations))) / "task" / "docs" / "index.html"


def refresh_catalog(settings: Settings, target_path: Path, out_dir: Path) -> bool:
    """dbt docs' catalogue (every relation's columns and types, read from the warehouse by `dbt docs
    generate`: a dbt process, ~6 s on the medium tier) into ``out_dir``, regenerated only when the
    warehouse's columns changed since it was last written (a fingerprint of its information_schema).
    Returns whether it was regenerated.

    On DuckDB the dbt step calls it on its audited build copy before publishing it: `dbt docs generate`
    opens the file read-write, which the published file, open to analysts, may not allow."""
    fingerprint = warehouse_columns_fingerprint(settings)
    marker = out_dir / "catalog.fingerprint"
    if marker.exists() and marker.read_text() == fingerprint and (out_dir / "catalog.json").exists():
        return False
    env = {**os.environ, **dbt_env(settings)}
    proc = subprocess.run([dbt_executable(), "docs", "generate", "--no-compile", "--quiet",
                           "--project-dir", str(ROOT), "--profiles-dir", str(PROFILES_DIR),
                           "--target-path", str(target_path)], cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"dbt docs generate failed:\n{redact(proc.stdout[-3000:])}{redact(proc.stderr[-1000:])}")
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(target_path / "catalog.json", out_dir / "catalog.json")
    marker.write_text(fingerprint)
    return True


def write_docs_page(target_path: Path, out_dir: Path) -> Path:
    """The docs page the way `dbt docs generate --static` builds it: dbt's page template with the last
    build's manifest and the catalogue inlined; one self-contained HTML file."""
    manifest = (target_path / "manifest.json").read_text()
    catalog = (out_dir / "catalog.json").read_text()
    page = _docs_page_template().read_text()
    page = page.replace('"MANIFEST.JSON INLINE DATA"', manifest).replace('"CATALOG.JSON INLINE DATA"', catalog)
    shutil.copyfile(target_path / "manifest.json", out_dir / "manifest.json")
    (out_dir / "index.html").write_text(page)
    return out_dir / "index.html"


def generate_docs(settings: Settings, target_path: Path, out_dir: Path, *, catalog: bool = True) -> tuple[Path, bool]:
    """dbt docs for the last build: one self-contained HTML page (models, columns, tests, lineage
    from the sources) plus the JSON behind it, in ``out_dir``. Returns (the page, whether the
    catalogue was regenerated). ``catalog=False``: the catalogue is the one already there (on DuckDB
    the dbt step refreshed it from its build before publishing); nothing opens the warehouse."""
    regenerated = False
    if catalog or not (out_dir / "catalog.json").exists():
        regenerated = refresh_catalog(settings, target_path, out_dir)
    return write_docs_page(target_path, out_dir), regenerated
