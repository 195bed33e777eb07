"""Serving: who may read the warehouse, re-applied after every dbt build (PostgreSQL target)."""

import os
import warnings

import dagster as dg
from dagster_shared.utils.warnings import BetaWarning

from ingest.postgres_server import WAREHOUSE_DB, connect, embedded_database_url
from orchestration.defs.dbt.assets import dbt_models
from orchestration.defs.dbt.project import generate_docs
from orchestration.defs.partitions import AS_OF_DAYS
from orchestration.resources import CrmWarehouse
from serving.bi_access import apply_with_retries

MART_KEYS = [k for k in dbt_models.keys if k.path[0] == "marts"]

# one as-of day per run, like the dbt step they follow (a job mixing policies warns on every run); the
# parameter is "beta" in Dagster 1.13, and says so on every import unless told not to
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=BetaWarning)


@dg.asset(key=["serving", "bi_access"], deps=MART_KEYS, partitions_def=AS_OF_DAYS, group_name="serving",
          backfill_policy=dg.BackfillPolicy.multi_run(1),
          description="bi_reader and tenant roles: grants on marts, row-level security per tenant (postgres target)")
def bi_access(context: dg.AssetExecutionContext, crm: CrmWarehouse) -> dg.MaterializeResult:
    cfg = crm.settings()
    if cfg.warehouse != "postgres":
        return dg.MaterializeResult(metadata={"applied": False, "why": "the DuckDB warehouse is a file: no roles"})
    url = cfg.warehouse_url or embedded_database_url(cfg.warehouse_pgdata, WAREHOUSE_DB)
    covered = apply_with_retries(lambda: connect(url), os.environ.get("CRM_BI_READER_PASSWORD") or None,
                                 log=context.log.warning)
    context.log.info(f"bi_reader and {covered['tenant_roles']} tenant role(s) on {covered['mart_tables']} mart tables")
    return dg.MaterializeResult(metadata={"applied": True, **covered})


@dg.asset(key=["serving", "dbt_docs"], deps=MART_KEYS, partitions_def=AS_OF_DAYS, group_name="serving",
          backfill_policy=dg.BackfillPolicy.multi_run(1),
          description="dbt docs (every model and column described, lineage from the source tables) under $CRM_HOME/docs")
def dbt_docs(context: dg.AssetExecutionContext, crm: CrmWarehouse) -> dg.MaterializeResult:
    cfg = crm.settings()
    target = cfg.home / "dbt" / "target"
    # DuckDB: the dbt step refreshed the catalogue from its build before publishing; nothing here opens
    # the published file (analysts may have it open)
    path, regenerated = generate_docs(cfg, target, cfg.home / "docs", catalog=cfg.warehouse != "duckdb")
    context.log.info(f"dbt docs: {path}" + (" (catalogue regenerated)" if regenerated else ""))
    return dg.MaterializeResult(metadata={"path": str(path), "catalog_regenerated": regenerated})


SEGMENT_KEYS = [k for k in MART_KEYS if k.path[-1] in ("lead_segments", "contact_segments")]


@dg.asset(key=["serving", "segment_exports"], deps=SEGMENT_KEYS, partitions_def=AS_OF_DAYS, group_name="serving",
          backfill_policy=dg.BackfillPolicy.multi_run(1),
          description="every engagement segment's sendable members (no one unsubscribed or opted out) as CSV under "
                      "$CRM_HOME/segments, the lists `crm-warehouse segments export` writes")
def segment_exports(context: dg.AssetExecutionContext, crm: CrmWarehouse) -> dg.MaterializeResult:
    from serving.segments import SEGMENTS, export_segment

    cfg = crm.settings()
    done = [export_segment(cfg, segment) for segment in SEGMENTS]
    for d in done:
        context.log.info(d.summary())
    return dg.MaterializeResult(metadata={
        "written": sum(d.written for d in done),
        "left_out": sum(sum(d.left_out.values()) for d in done),
        **{f"{d.segment}": f"{d.written} written, {sum(d.left_out.values())} left out" for d in done},
    })
