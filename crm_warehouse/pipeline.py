"""The daily refresh as the CLI runs it: the `ingest` job, then the `transform` job (dbt build)
for one as-of day, both in-process on the project's Dagster definitions and run history."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import io
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ingest.config import Settings, redact
from ingest.progress import reporting


@dataclass
class RefreshResult:
    ok: bool = True
    as_of: str | None = None
    failures: list[tuple[str, str]] = field(default_factory=list)     # (step or node, message)
    ingest: dict[str, dict] = field(default_factory=dict)              # asset -> metadata
    built: list[str] = field(default_factory=list)                     # dbt assets materialized
    checks_passed: int = 0
    checks_failed: list[str] = field(default_factory=list)
    stale_marts: list[str] = field(default_factory=list)               # marts' freshness checks failed
    fresh_marts: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    log_path: Path | None = None
    quality_docs: Path | None = None
    notes: list[str] = field(default_factory=list)
    dbt_skipped: str | None = None                                     # why the dbt build was skipped


_PROGRESS = re.compile(r"(\d+ of \d+ (?:START|OK|PASS|ERROR|FAIL|WARN|SKIP)\b.*?)"
                       r"(?:\s+\.*\s*\[([^\]]*)\]\s*$|\s\.{2,}.*$|$)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class _LogTee(io.TextIOBase):
    """Takes what dagster-dbt prints (dbt's log lines) to a log file, and reports its "N of M" lines, with
    dbt's own outcome and time (``[OK in 1.2s]``, on PostgreSQL ``[SELECT 1234 in 1.2s]``: rows written)."""

    def __init__(self, path: Path, progress: Callable[[str], None] | None):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = path.open("a", encoding="utf-8")
        self.progress = progress
        self.partial = ""

    def write(self, text: str) -> int:
        self.file.write(text)
        if self.progress:
            *lines, self.partial = (self.partial + text).split("\n")
            for line in lines:
                m = _PROGRESS.search(_ANSI.sub("", line))
                if m:
                    self.progress(m.group(1) + (f" ({m.group(2)})" if m.group(2) not in (None, "RUN") else ""))
        return len(text)

    def flush(self) -> None:
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def dagster_instance(cfg: Settings):
    import dagster as dg

    from orchestration.dagster_storage import ensure_instance_config

    home = cfg.home / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    if os.environ.setdefault("DAGSTER_HOME", str(home)) == str(home):  # one set elsewhere keeps its dagster.yaml
        ensure_instance_config(home)
    return dg.DagsterInstance.get()


def latest_business_day(cfg: Settings) -> str:
    """What ends the modelled history when no --as-of is given: the latest business day in raw (the rule of
    the dbt model int_as_of and of the partitions, orchestration/defs/partitions.py), so a simulated CRM is
    modelled up to its own today; today when raw holds no business event."""
    from ingest.warehouse import open_warehouse
    from orchestration.defs.partitions import business_days, today

    wh = open_warehouse(cfg)
    try:
        _, latest = business_days(wh)
    finally:
        wh.close()
    return (latest or today()).isoformat()


def _step_failures(result) -> list[tuple[str, str]]:
    import dagster as dg

    out = []
    for event in result.all_events:
        if event.event_type == dg.DagsterEventType.STEP_FAILURE:
            err = event.step_failure_data.error
            user = event.step_failure_data.user_failure_data
            msg = (user.description if user and user.description else None) or \
                  (err.cause.message if err and err.cause else (err.message if err else "failed"))
            msg = msg.strip()
            # the exception's own first line ("psycopg.errors.DeadlockDetected: deadlock detected"), not
            # its last (a server's HINT) nor the trace, which stays in the run's Dagster log
            out.append((event.step_key, redact(msg if user else (msg.splitlines()[0] if msg else "failed"))))
    return out


def run_refresh(cfg: Settings, *, full_refresh: bool = False, resync: "bool | list[str]" = False,
                as_of: str | None = None, ingest: bool = True, transform: bool = True,
                progress: Callable[[str], None] | None = None, wait: bool = False,
                allow_mass_delete: bool = False) -> RefreshResult:
    """Ingest, then dbt build for ``as_of``; dbt's log goes to $CRM_HOME/logs/refresh-<time>.log.

    Both jobs run with ``cfg`` as the ``crm`` resource's run config and the switches as their steps'
    run config (orchestration/resources.py): what the daily schedule runs, configured here.

    ``full_refresh``: dbt rebuilds every model from raw (raw is kept: it remembers rows the source has
    deleted). ``resync``: True or raw table names re-read whole from the source and merged into raw.
    The run holds the warehouse's writer lock throughout (``crm_warehouse.lock``): another run on the
    same warehouse raises ``WarehouseLocked``, or with ``wait`` waits for it."""
    from crm_warehouse.lock import writer_lock

    log_path = cfg.home / "logs" / f"refresh-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S}.log"
    with writer_lock(cfg, "a refresh", wait=wait, progress=progress):
        if cfg.warehouse == "duckdb" and cfg.duckdb_path.exists():
            open(cfg.duckdb_path, "r+b").close()  # a read-only warehouse file: PermissionError before any work
        if ingest:  # an unreachable source: one line (SourceError) before any work, not a failed run
            from ingest.postgres_server import connect, source_url

            connect(source_url(cfg)).close()
        tee = _LogTee(log_path, progress)
        try:
            with contextlib.redirect_stdout(tee), reporting(progress):
                res = _run_refresh(cfg, full_refresh=full_refresh, resync=resync, as_of=as_of, ingest=ingest,
                                   transform=transform, progress=progress, allow_mass_delete=allow_mass_delete)
        finally:
            tee.close()
    res.log_path = log_path
    return res


def _run_refresh(cfg: Settings, *, full_refresh: bool, resync: "bool | list[str]", as_of: str | None, ingest: bool,
                 transform: bool, progress: Callable[[str], None] | None, allow_mass_delete: bool) -> RefreshResult:
    instance = dagster_instance(cfg)
    try:
        return _refresh(cfg, instance, full_refresh=full_refresh, resync=resync, as_of=as_of, ingest=ingest,
                        transform=transform, progress=progress, allow_mass_delete=allow_mass_delete)
    finally:  # its storages' open files (the event log keeps a connection per database) are closed now
        instance.dispose()


def run_configs(cfg: Settings, *, full_refresh: bool = False, resync: "bool | list[str]" = False,
                allow_mass_delete: bool = False) -> tuple[dict, dict]:
    """The ingest job's and the transform job's run config: where (the ``crm`` resource) and what
    (each step's switches). No secret: Dagster stores run config and shows it in the UI."""
    from orchestration.resources import CrmWarehouse

    # Dagster's console logger prints each failure with its stack trace; the refresh's summary names
    # every failed step and dbt node in one line each, and the traces stay in the run's Dagster log
    common = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}},
              "resources": {"crm": {"config": CrmWarehouse.config_of(cfg)}}}
    ingest = {**common, "ops": {"raw_tables": {"config": {
        "resync": [] if not resync else ["all"] if resync is True else list(resync),
        "allow_mass_delete": allow_mass_delete}}}}
    transform = {**common, "ops": {"dbt_models": {"config": {"full_refresh": full_refresh}}}}
    return ingest, transform


def _refresh(cfg: Settings, instance, *, full_refresh: bool, resync: "bool | list[str]", as_of: str | None,
             ingest: bool, transform: bool, progress: Callable[[str], None] | None,
             allow_mass_delete: bool) -> RefreshResult:

    from orchestration.definitions import defs
    from orchestration.defs.ingest.assets import DATA_DOCS_KEY
    from orchestration.defs.partitions import ensure_as_of_days

    res = RefreshResult()
    ingest_config, transform_config = run_configs(cfg, full_refresh=full_refresh, resync=resync,
                                                  allow_mass_delete=allow_mass_delete)

    if ingest:
        t0 = time.perf_counter()
        if progress:
            progress("ingest: every source table and the webhook landing zone")
        loaded = defs.resolve_job_def("ingest").execute_in_process(
            instance=instance, raise_on_error=False, run_config=ingest_config)
        res.seconds["ingest"] = time.perf_counter() - t0
        res.failures += _step_failures(loaded)
        for event in loaded.get_asset_materialization_events():
            m = event.event_specific_data.materialization
            meta = {k: v.value for k, v in m.metadata.items()}
            if m.asset_key == DATA_DOCS_KEY:  # written by the ingest step, blocked or not
                res.quality_docs = Path(meta["path"])
                res.seconds["quality_docs"] = meta["seconds"]
                continue
            res.ingest["/".join(m.asset_key.path)] = meta
        if res.quality_docs is None:
            res.notes.append("quality docs not rebuilt: see the refresh's log")
        if note := unindexed_cursor_note(res.ingest):
            res.notes.append(note)
        res.notes += source_shape_notes(res.ingest)
        if not loaded.success:  # the models would read a partial raw layer: stop here
            res.ok = False
            return res
    if not transform:
        return res

    res.as_of = as_of or latest_business_day(cfg)
    ensure_as_of_days(instance, None, dt.date.fromisoformat(res.as_of))  # the run's partition exists first
    if progress:
        progress(f"dbt build as of {res.as_of}")
    t1 = time.perf_counter()
    built = defs.resolve_job_def("transform").execute_in_process(
        instance=instance, raise_on_error=False, run_config=transform_config, partition_key=res.as_of)
    res.seconds["transform"] = time.perf_counter() - t1
    res.failures += _step_failures(built)
    for e in built.get_asset_materialization_events():
        m = e.event_specific_data.materialization
        res.built.append("/".join(m.asset_key.path))
        if m.asset_key.path == ["marts", "lead_conversion_scores"] and "message" in m.metadata:
            res.notes.append(m.metadata["message"].value)  # the learned score says how it went (or why not)
    res.built.sort()
    for e in built.all_events:  # a build skipped because nothing it reads changed says so
        if e.event_type_value == "ASSET_OBSERVATION":
            meta = e.event_specific_data.asset_observation.metadata
            if "dbt_build" in meta:
                res.dbt_skipped = meta["message"].value
    for ev in built.get_asset_check_evaluations():
        if ev.check_name == "freshness_check":  # Dagster's last-update check on a mart, not a dbt test
            if ev.passed:
                res.fresh_marts += 1
            else:
                res.stale_marts.append(ev.asset_key.to_user_string())
            continue
        if ev.passed:
            res.checks_passed += 1
        else:
            res.checks_failed.append(f"{ev.asset_key.to_user_string()}:{ev.check_name}")
    res.ok = built.success
    return res


def source_shape_notes(ingest: dict[str, dict]) -> list[str]:
    """What the source lacks or holds beyond the contract, from the ``raw/<table>`` metadata: tables
    absent (skipped), contract columns absent (null in staging), values the contract does not document
    (loaded as they are). One line each, for the end of ``refresh``."""
    notes = []
    absent = sorted(m["source_table"] for m in ingest.values() if m.get("mode") == "absent")
    if absent:
        notes.append(f"the source has no table {', '.join(absent)}: skipped, their staging models are empty")
    missing = sorted(f"{m['source_table']} ({m['missing_columns']})" for m in ingest.values()
                     if m.get("missing_columns", "none") != "none")
    if missing:
        notes.append("contract columns the source lacks, null in staging: " + "; ".join(missing))
    odd = sorted(f"{m['source_table']}: {m['undocumented_values']}" for m in ingest.values()
                 if m.get("undocumented_values", "none") != "none")
    if odd:
        notes.append("values the contract does not document, loaded as they are (warnings in ops.check_results): "
                     + "; ".join(odd))
    return notes


# Below this size a whole-table read of the source on every run is not worth a note.
UNINDEXED_NOTE_MB = 32


def unindexed_cursor_note(ingest: dict[str, dict]) -> str | None:
    """The source tables every incremental run reads whole, because no index leads with their cursor
    column (``raw/<table>`` metadata ``cursor_indexed``), largest first; None when there is none of
    ``UNINDEXED_NOTE_MB`` or more. On the medium tier, indexes on the five largest such tables made a
    simulated day's run 14 % faster and cost the source 27 % less CPU (docs/ingest-performance.md)."""
    big = sorted(((m["source_mb"], m["source_table"], m["cursor_column"]) for m in ingest.values()
                  if m.get("cursor_indexed") == "no" and m.get("source_mb", 0) >= UNINDEXED_NOTE_MB), reverse=True)
    if not big:
        return None
    tables = ", ".join(f"{t} ({c}, {mb:,.0f} MB)" for mb, t, c in big)
    mb, t, c = big[0]
    return (f"every incremental run reads these source tables whole, as no index in the source leads with "
            f"their cursor column: {tables}. An index on each (e.g. CREATE INDEX CONCURRENTLY ON {t} ({c})) "
            "lets the source read only the rows changed since the last run.")


def with_target(cfg: Settings, target: str | None) -> Settings:
    return dataclasses.replace(cfg, warehouse=target) if target else cfg
