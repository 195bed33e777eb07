"""Dagster wiring of the raw layer: one asset per BuildDesk source table (``raw/<table>``)."""

import time

import dagster as dg

from ingest.config import settings
from ingest.postgres_server import source_url
from ingest.postgres_source import PostgresSource
from ingest.raw_load import IngestBlocked, freshness, ingest_table
from ingest.tables import CASCADE_PARENTS, SPECS, TableSpec
from ingest.warehouse import open_warehouse
from quality.contract import FRESHNESS_TABLES, reference_parents

GATE_CHECK = "contract"

FULL_REFRESH_TAG = "crm/full_refresh"


def raw_table_asset(spec: TableSpec) -> dg.AssetsDefinition:
    how = {"mutable": f"incremental on {spec.cursor} with a lookback window, merged on the primary key",
           "append": f"append-only, cursor on {spec.cursor} with overlap, de-duplicated on the key",
           "full": "full extract compared by key"}[spec.kind]

    @dg.asset(key=["raw", spec.raw], group_name="raw", kinds={"postgres", "duckdb"},
              # parents first: cascaded deletes are flagged from them, reference rules read them
              deps=[dg.AssetKey(["raw", p]) for p in dict.fromkeys(
                  CASCADE_PARENTS.get(spec.raw, ()) + reference_parents(spec.raw))],
              check_specs=[dg.AssetCheckSpec(
                  GATE_CHECK, asset=dg.AssetKey(["raw", spec.raw]), blocking=True,
                  description="the ingest gate: every extracted row checked against the table's expectation "
                              "suite (quality.contract); failing rows quarantined, the batch blocked over the "
                              "threshold")] + ([dg.AssetCheckSpec(
                  "freshness", asset=dg.AssetKey(["raw", spec.raw]),
                  description="the newest row is at most CRM_FRESHNESS_HOURS (48) behind the source's clock: "
                              "a source that stopped changing is noticed")] if spec.raw in FRESHNESS_TABLES else []),
              description=f"{spec.source} as extracted from the operational database ({how}); "
                          "rows deleted in the source carry _deleted_at; rows breaking the contract go to "
                          f"quarantine.{spec.raw}.")
    def _asset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        cfg = settings()
        full = context.run.tags.get(FULL_REFRESH_TAG) == "true"
        src = PostgresSource(source_url(cfg))
        wh = open_warehouse(cfg)
        last = [0.0]

        def progress(message: str) -> None:  # long extractions report every few seconds
            if time.monotonic() - last[0] > 3:
                last[0] = time.monotonic()
                context.log.info(message)

        try:
            r = ingest_table(wh, src, spec, full_refresh=full, progress=progress, run_id=context.run_id)
        except IngestBlocked as blocked:
            raise dg.Failure(description=str(blocked), metadata={
                "rows_quarantined": blocked.result.rows_quarantined,
                "rows_extracted": blocked.result.rows_extracted,
                "failing_rules": ", ".join(sorted(blocked.result.rule_failures)) or "none"}) from None
        finally:
            wh.close()
            src.close()
        context.log.info(f"raw.{spec.raw}: {r.rows_extracted:,} read, {r.rows_written:,} written, "
                         f"{r.rows_deleted:,} newly deleted, {r.rows_live:,} live ({r.mode}, {r.seconds:.1f} s)")
        return dg.MaterializeResult(metadata={
            "mode": r.mode, "rows_extracted": r.rows_extracted, "rows_written": r.rows_written,
            "rows_deleted": r.rows_deleted, "row_count": r.rows_live,
            "watermark": str(r.cursor_value) if r.cursor_value else "none",
            "columns_added": ", ".join(r.columns_added) or "none", "batch_id": r.batch_id,
            "target": cfg.warehouse, "seconds": round(r.seconds, 2),
            "rows_quarantined": r.rows_quarantined, "gate_seconds": round(r.gate_seconds, 3),
        }, check_results=[dg.AssetCheckResult(
            check_name=GATE_CHECK, passed=r.rows_quarantined == 0,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"rules": len(r.rules_checked), "rows_quarantined": r.rows_quarantined,
                      "threshold": r.threshold,
                      "failing_rules": ", ".join(f"{n} ({c})" for n, c in sorted(r.rule_failures.items())) or "none",
                      "not_evaluated": "; ".join(f"{n}: {w}" for n, w in r.gate_skipped) or "none"})] + [
            dg.AssetCheckResult(check_name="freshness", passed=f[0], severity=dg.AssetCheckSeverity.WARN,
                                description=f[1]) for f in [freshness(r)] if f is not None])

    return _asset


raw_table_assets = [raw_table_asset(s) for s in SPECS]
