"""Dagster wiring of the raw layer: one asset per BuildDesk source table (``raw/<table>``), the webhook
landing zone (``raw/email_events``) and the ingest gate's Great Expectations Data Docs
(``quality/data_docs``), all computed by one multi-asset that can run any subset of them
(``ingest_tables``: one warehouse connection, reads ahead).

The Data Docs are written at the end of the same step, whatever the gate decided: they are how a user
sees why a batch was blocked, and a separate asset downstream of the raw tables would be skipped in
exactly that case (Dagster does not run an asset whose parent failed)."""

import time

import dagster as dg

from ingest.postgres_server import source_url
from ingest.postgres_source import PostgresSource
from ingest.progress import rate, report as progress_report
from ingest.raw_load import IngestBlocked, freshness, ingest_tables, mass_delete_allowed, table_deps
from ingest.tables import SPECS, TableSpec
from ingest.warehouse import open_warehouse
from orchestration.defs.email.assets import EMAIL_EVENTS_KEY, EMAIL_EVENTS_SPEC, ingest_landing_zone
from orchestration.defs.partitions import business_days, ensure_as_of_days, today
from orchestration.resources import CrmWarehouse, IngestConfig
from quality.contract import FRESHNESS_TABLES

GATE_CHECK = "contract"

DATA_DOCS_KEY = dg.AssetKey(["quality", "data_docs"])

def _how(spec: TableSpec) -> str:
    return {"mutable": f"incremental on {spec.cursor} with a lookback window, merged on the primary key",
            "append": f"append-only, cursor on {spec.cursor} with overlap, de-duplicated on the key",
            "full": "full extract compared by key"}[spec.kind]


def _key(spec: TableSpec) -> dg.AssetKey:
    return dg.AssetKey(["raw", spec.raw])


RAW_SPECS = [dg.AssetSpec(
    key=_key(s), group_name="raw", kinds={"postgres", "duckdb"}, skippable=True,
    # parents first: cascaded deletes are flagged from them, reference rules read them
    deps=[dg.AssetKey(["raw", p]) for p in table_deps(s.raw)],
    description=f"{s.source} as extracted from the operational database ({_how(s)}); rows deleted in the source "
                f"carry _deleted_at; rows breaking the contract go to quarantine.{s.raw}.") for s in SPECS]
RAW_CHECKS = [c for s in SPECS for c in [dg.AssetCheckSpec(
    GATE_CHECK, asset=_key(s), blocking=True,
    description="the ingest gate: every extracted row checked against the table's expectation suite "
                "(quality.contract); failing rows quarantined, the batch blocked over the threshold")] + (
    [dg.AssetCheckSpec("freshness", asset=_key(s),
                       description="the newest row is at most CRM_FRESHNESS_HOURS (48) behind the source's clock: "
                                   "a source that stopped changing is noticed")] if s.raw in FRESHNESS_TABLES else [])]
DATA_DOCS_SPEC = dg.AssetSpec(
    key=DATA_DOCS_KEY, group_name="quality", kinds={"greatexpectations"}, skippable=True,
    deps=[_key(s) for s in SPECS] + [EMAIL_EVENTS_KEY],
    description="Great Expectations Data Docs of the ingest gate: each raw table's expectation suite and its "
                "latest validation (rows checked, failing rows with a sample), written after every ingest, "
                "blocked or not, under $CRM_HOME/quality_docs; readable offline")


@dg.multi_asset(name="raw_tables", specs=RAW_SPECS + [EMAIL_EVENTS_SPEC, DATA_DOCS_SPEC], check_specs=RAW_CHECKS,
                can_subset=True,
                description="Every BuildDesk source table into raw.<table> (one asset each, runnable alone or "
                            "together), through the ingest gate, in one process: DuckDB loads two tables at once (a "
                            "connection each); on PostgreSQL the next table's extraction is read ahead while the "
                            "current one merges (ingest.raw_load.ingest_tables); then the webhook landing zone's new "
                            "lines, then the gate's Data Docs")
def raw_tables(context: dg.AssetExecutionContext, crm: CrmWarehouse, config: IngestConfig):
    from crm_warehouse.lock import writer_lock

    cfg = crm.settings()
    selected = context.selected_asset_keys
    failures: list[str] = []
    with writer_lock(cfg, f"Dagster run {context.run_id[:8]} (ingest)", wait=True, progress=context.log.info):
        try:
            if any(k.path[0] == "raw" and k != EMAIL_EVENTS_KEY for k in selected):
                with mass_delete_allowed(config.allow_mass_delete):
                    yield from _raw_tables(context, cfg, config, failures)
            if EMAIL_EVENTS_KEY in selected:
                try:
                    yield ingest_landing_zone(context, cfg)
                except Exception as err:  # the tables are in; the run's status says the events are not
                    failures.append(f"raw.email_events: {str(err).strip().splitlines()[0] if str(err).strip() else err!r}")
                    context.log.exception(failures[-1])
        finally:
            if DATA_DOCS_KEY in selected:
                docs = _data_docs(context, cfg)
                if docs is not None:
                    yield docs
    if failures:  # the other tables are in; the run's status says some are not
        raise dg.Failure(description="; ".join(failures),
                         metadata={"failed_assets": len(failures), "selected_assets": len(selected)})


def _data_docs(context: dg.AssetExecutionContext, cfg) -> dg.MaterializeResult | None:
    """The Data Docs of the gate's latest results, and the as-of days raw now covers (Dagster's
    partitions of the dbt assets). A failure to write them is a warning: they are a record."""
    from quality.suites import build_data_docs

    t0 = time.monotonic()
    progress_report("Great Expectations Data Docs of the ingest gate")
    wh = open_warehouse(cfg)
    try:
        first, latest = business_days(wh)
        try:
            path, rebuilt = build_data_docs(cfg.home, wh)
        except Exception as err:  # noqa: BLE001 - reported, never fails the ingest
            context.log.warning(f"quality docs not rebuilt: {err}")
            path, rebuilt = None, False
    finally:
        wh.close()
    # the partitions whatever became of the docs
    added = ensure_as_of_days(context.instance, first, max(d for d in (latest, today()) if d))
    if path is None:
        return None
    context.log.info(f"Data Docs {'rebuilt' if rebuilt else 'kept (the gate found what it found last time)'}: "
                     f"{path}; {added} as-of day(s) added to the partitions")
    return dg.MaterializeResult(asset_key=DATA_DOCS_KEY, metadata={
        "path": dg.MetadataValue.path(str(path)), "seconds": round(time.monotonic() - t0, 2), "rebuilt": rebuilt,
        "first_business_day": str(first) if first else "none", "latest_business_day": str(latest) if latest else "none"})


def _raw_tables(context: dg.AssetExecutionContext, cfg, config: IngestConfig, failures: list[str]):
    resync = config.resync_of()
    selected = context.selected_asset_keys
    checks = context.selected_asset_check_keys
    specs = [s for s in SPECS if _key(s) in selected]
    src = PostgresSource(source_url(cfg))
    wh = open_warehouse(cfg)
    last = [0.0]

    def progress(message: str) -> None:  # long extractions report every few seconds
        if time.monotonic() - last[0] > 3:
            last[0] = time.monotonic()
            context.log.info(message)

    try:
        for spec, r in ingest_tables(wh, src, specs, resync=resync, progress=progress, run_id=context.run_id):
            key = _key(spec)
            if isinstance(r, IngestBlocked):
                failures.append(str(r))
                b = r.result
                if dg.AssetCheckKey(key, GATE_CHECK) in checks:
                    yield dg.AssetCheckResult(
                        asset_key=key, check_name=GATE_CHECK, passed=False, severity=dg.AssetCheckSeverity.ERROR,
                        description=str(r), metadata={
                            "rows_quarantined": b.rows_quarantined, "rows_extracted": b.rows_extracted,
                            "threshold": b.threshold,
                            "failing_rules": ", ".join(f"{n} ({c})" for n, c in sorted(b.rule_failures.items()))})
                continue
            if isinstance(r, Exception):
                failures.append(str(r) if str(r).startswith(f"raw.{spec.raw}") else f"raw.{spec.raw}: {r}")
                context.log.error(failures[-1])
                continue
            if r.status == "absent":
                context.log.warning(f"raw.{spec.raw}: the source has no table {spec.source}; skipped (staging "
                                    "yields it empty with the contract's columns)")
                yield dg.MaterializeResult(asset_key=key, metadata={
                    "mode": "absent", "source_table": spec.source, "target": cfg.warehouse,
                    "note": f"{spec.source} does not exist in the source: nothing read, raw.{spec.raw} left as it was",
                }, check_results=[c for c in [dg.AssetCheckResult(
                    asset_key=key, check_name=GATE_CHECK, passed=True, severity=dg.AssetCheckSeverity.WARN,
                    description=f"not evaluated: {spec.source} is absent from the source")] + [
                    dg.AssetCheckResult(asset_key=key, check_name="freshness", passed=False,
                                        severity=dg.AssetCheckSeverity.WARN,
                                        description=f"{spec.source} is absent from the source")
                    for _ in [1] if spec.raw in FRESHNESS_TABLES]
                    if dg.AssetCheckKey(key, c.check_name) in checks])
                continue
            done = (f"{r.rows_extracted:,} read, {r.rows_written:,} written, {r.rows_deleted:,} newly deleted, "
                    f"{r.rows_live:,} live ({r.mode}, {r.seconds:.1f} s, {rate(r.rows_extracted, r.seconds)})")
            context.log.info(f"raw.{spec.raw}: {done}")
            progress_report(f"raw/{spec.raw}: {done}")
            yield dg.MaterializeResult(asset_key=key, metadata={
                "mode": r.mode, "rows_extracted": r.rows_extracted, "rows_written": r.rows_written,
                "rows_deleted": r.rows_deleted, "row_count": r.rows_live,
                "watermark": str(r.cursor_value) if r.cursor_value else "none",
                "columns_added": ", ".join(r.columns_added) or "none", "batch_id": r.batch_id,
                "target": cfg.warehouse, "seconds": round(r.seconds, 2),
                "rows_quarantined": r.rows_quarantined, "gate_seconds": round(r.gate_seconds, 3),
                "cursor_indexed": "n/a" if r.cursor_indexed is None else "yes" if r.cursor_indexed else "no",
                "source_table": spec.source, "cursor_column": r.cursor_column or "none", "read_mode": r.kind or "none",
                "missing_columns": ", ".join(r.missing_columns) or "none",
                "undocumented_values": "; ".join(f"{n} ({c:,}: {', '.join(v)})" for n, (c, v) in sorted(r.warnings.items()))
                or "none", "source_mb": round(r.source_bytes / 2**20, 1),
            }, check_results=[c for c in [dg.AssetCheckResult(
                asset_key=key, check_name=GATE_CHECK, passed=r.rows_quarantined == 0,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"rules": len(r.rules_checked), "rows_quarantined": r.rows_quarantined,
                          "threshold": r.threshold,
                          "failing_rules": ", ".join(f"{n} ({c})" for n, c in sorted(r.rule_failures.items())) or "none",
                          "not_evaluated": "; ".join(f"{n}: {w}" for n, w in r.gate_skipped) or "none"})] + [
                dg.AssetCheckResult(asset_key=key, check_name="freshness", passed=f[0],
                                    severity=dg.AssetCheckSeverity.WARN, description=f[1])
                for f in [freshness(r)] if f is not None]
                if dg.AssetCheckKey(key, c.check_name) in checks])
    finally:
        wh.close()
        src.close()
