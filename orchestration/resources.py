"""What the assets are configured with, the way a Dagster deployment configures them: one resource,
``crm`` (where the warehouse, the landing zone and the project's home are), and each step's run
config (``IngestConfig``, ``BuildConfig``: what this run does). ``crm-warehouse refresh`` passes both
as the run's config; the daily schedule in ``dagster dev`` (``crm-warehouse ui``) runs with the
resource's defaults, read from the environment the UI was started in (PRODUCT.md's variables), so
the two do the same work.

Secrets never travel in run config (Dagster stores and shows it): a source or warehouse URL holding a
password is read from the environment only (``CRM_SOURCE_URL``, ``CRM_WAREHOUSE_URL``); passwords and
the gate's thresholds are read from the environment where they act."""

from __future__ import annotations

import os

import dagster as dg
from pydantic import Field

from ingest.config import Settings, redact, settings


class CrmWarehouse(dg.ConfigurableResource):
    """The project's home, the warehouse written and the webhook landing zone read. A field left
    unset takes its environment variable, then PRODUCT.md's default."""

    home: str | None = Field(default=None, description="CRM_HOME: run history, logs, docs (default ./.crm)")
    warehouse: str | None = Field(default=None, description="CRM_WAREHOUSE: duckdb or postgres (default duckdb)")
    duckdb_path: str | None = Field(default=None,
                                    description="CRM_DUCKDB_PATH: the DuckDB warehouse file (default $CRM_HOME/warehouse.duckdb)")
    email_events_dir: str | None = Field(default=None,
                                         description="CRM_EMAIL_EVENTS_DIR: the webhook landing zone (default $CRM_HOME/email_events)")
    source_url: str | None = Field(default=None, description=(
        "CRM_SOURCE_URL without a password (one with a password only from the environment); default: the "
        "embedded source under $CRM_HOME"))
    warehouse_url: str | None = Field(default=None, description=(
        "CRM_WAREHOUSE_URL without a password (one with a password only from the environment); default: the "
        "embedded warehouse server under $CRM_HOME"))

    def settings(self) -> Settings:
        env = dict(os.environ)
        for var, value in (("CRM_HOME", self.home), ("CRM_WAREHOUSE", self.warehouse),
                           ("CRM_DUCKDB_PATH", self.duckdb_path), ("CRM_EMAIL_EVENTS_DIR", self.email_events_dir),
                           ("CRM_SOURCE_URL", self.source_url), ("CRM_WAREHOUSE_URL", self.warehouse_url)):
            if value:
                env[var] = value
        return settings(env)

    @classmethod
    def config_of(cls, cfg: Settings) -> dict:
        """The resource's run config saying what ``cfg`` says. A URL equal to its environment variable
        is left to it; another one must hold no password (run config is stored and shown)."""
        out = {"home": str(cfg.home), "warehouse": cfg.warehouse, "duckdb_path": str(cfg.duckdb_path),
               "email_events_dir": str(cfg.email_events_dir)}
        for field, var, url in (("source_url", "CRM_SOURCE_URL", cfg.source_url),
                                ("warehouse_url", "CRM_WAREHOUSE_URL", cfg.warehouse_url)):
            if url and url != os.environ.get(var):
                if redact(url) != url:
                    raise ValueError(f"a {field} with a password is read from {var} only: set it there")
                out[field] = url
        return out


class IngestConfig(dg.Config):
    """The ingest step's switches (``crm-warehouse refresh --resync/--allow-mass-delete``)."""

    resync: list[str] = Field(default_factory=list, description=(
        "raw tables re-read whole from the source and merged into raw (never dropped); ['all'] for every table"))
    allow_mass_delete: bool = Field(default=False, description=(
        "accept a run that flags more than half of a table's live rows deleted (CRM_ALLOW_MASS_DELETE=1 does too)"))

    def resync_of(self) -> "bool | frozenset[str]":
        if not self.resync:
            return False
        return True if "all" in self.resync else frozenset(t.strip() for t in self.resync if t.strip())


class BuildConfig(dg.Config):
    """The dbt step's switches (``crm-warehouse refresh --full-refresh``)."""

    full_refresh: bool = Field(default=False, description=(
        "dbt rebuilds every incremental model from raw (raw itself is kept: it remembers rows the source deleted)"))
