"""Dagster wiring of the raw layer: one asset per BuildDesk source table (``raw/<table>``), all computed by
one multi-asset that can run any subset of them (``ingest_tables``: one warehouse connection, reads ahead)."""

import time

import dagster as dg

from ingest.config import settings
from ingest.postgres_server import source_url
from ingest.postgres_source import PostgresSource
from ingest.progress import report as progress_report
from ingest.raw_load import IngestBlocked, freshness, ingest_tables, table_deps
from ingest.tables import SPECS, TableSpec
from ingest.warehouse import open_warehouse
from quality.contract import FRESHNESS_TABLES

GATE_CHECK = "contract"

FULL_REFRESH_TAG = "crm/full_refresh"   # dbt rebuilds every model from raw; raw itself is kept
RESYNC_TAG = "crm/resync"               # "all", or the comma-separated raw tables re-read whole and merged


def resync_of(tag: str | None) -> "bool | frozenset[str]":
    if not tag:
        return False
    return True if tag == "all" else frozenset(t.strip() for t in tag.split(",") if t.strip())


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


@dg.multi_asset(name="raw_tables", specs=RAW_SPECS, check_specs=RAW_CHECKS, can_subset=True,
                description="Every BuildDesk source table into raw.<table> (one asset each, runnable alone or "
                            "together), through the ingest gate, in one process: DuckDB loads two tables at once (a "
                            "connection each); on PostgreSQL the next table's extraction is read ahead while the "
                            "current one merges (ingest.raw_load.ingest_tables)")
def raw_tables(context: dg.AssetExecutionContext):
    from crm_warehouse.lock import writer_lock

    with writer_lock(settings(), f"Dagster run {context.run_id[:8]} (ingest)", wait=True, progress=context.log.info):
        yield from _raw_tables(context)


def _raw_tables(context: dg.AssetExecutionContext):
    cfg = settings()
    resync = resync_of(context.run.tags.get(RESYNC_TAG))
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

    failures: list[str] = []
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
                    f"{r.rows_live:,} live ({r.mode}, {r.seconds:.1f} s)")
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
    if failures:  # the other tables are in; the run's status says some are not
        raise dg.Failure(description="; ".join(failures),
                         metadata={"failed_tables": len(failures), "selected_tables": len(specs)})
