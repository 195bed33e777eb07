"""Dagster wiring of the raw layer: one asset per BuildDesk source table (``raw/<table>``)."""

import time

import dagster as dg

from ingest.config import settings
from ingest.postgres_server import source_url
from ingest.postgres_source import PostgresSource
from ingest.raw_load import ingest_table
from ingest.tables import CASCADE_PARENTS, SPECS, TableSpec
from ingest.warehouse import open_warehouse

FULL_REFRESH_TAG = "crm/full_refresh"


def raw_table_asset(spec: TableSpec) -> dg.AssetsDefinition:
    how = {"mutable": f"incremental on {spec.cursor} with a lookback window, merged on the primary key",
           "append": f"append-only, cursor on {spec.cursor} with overlap, de-duplicated on the key",
           "full": "full extract compared by key"}[spec.kind]

    @dg.asset(key=["raw", spec.raw], group_name="raw", kinds={"postgres", "duckdb"},
              deps=[dg.AssetKey(["raw", p]) for p in CASCADE_PARENTS.get(spec.raw, ())],
              description=f"{spec.source} as extracted from the operational database ({how}); "
                          "rows deleted in the source carry _deleted_at.")
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
            r = ingest_table(wh, src, spec, full_refresh=full, progress=progress)
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
        })

    return _asset


raw_table_assets = [raw_table_asset(s) for s in SPECS]
