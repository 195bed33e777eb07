"""Every dbt model, seed and snapshot as a Dagster asset (key <schema>/<name>), downstream of its
raw/<table> asset; dbt tests as asset checks. Partitioned by day: the partition is the as-of day
the models are built for (CRM_AS_OF), so a past day can be rebuilt or backfilled; the days are the
source's business days (orchestration/defs/partitions.py)."""

import dataclasses
import functools
import json
from typing import Any, Mapping

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets

from ingest.config import redact, temporary_env
from ingest.progress import report
from ingest.warehouse import open_warehouse
from orchestration.defs.dbt.project import dbt_env, dbt_project, ensure_manifest, refresh_catalog
from orchestration.defs.partitions import AS_OF_DAYS
from orchestration.resources import BuildConfig, CrmWarehouse
from quality import wap
from quality.check_results import dbt_results, record

class Translator(DagsterDbtTranslator):
    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return super().get_asset_key(dbt_resource_props)  # meta.dagster.asset_key: raw/<table>
        return dg.AssetKey([dbt_resource_props["schema"], dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return dbt_resource_props.get("schema") or "dbt"


@functools.cache
def stateful_relations(full_refresh: bool = False) -> list[tuple[str, str]]:
    """(schema, table) of the nodes whose content carries over between builds: incremental models
    and snapshots (what a PostgreSQL write–audit–publish build must start from). A full refresh
    rebuilds the incremental models from raw: only the snapshots' history carries over."""
    manifest = json.loads(ensure_manifest().read_text())
    return sorted((n["schema"], n.get("alias") or n["name"]) for n in manifest["nodes"].values()
                  if n["resource_type"] == "snapshot" or (
                      not full_refresh and n["resource_type"] == "model"
                      and n["config"].get("materialized") == "incremental"))


def _warehouse_url(cfg) -> str:
    from ingest.postgres_server import WAREHOUSE_DB, embedded_database_url

    return cfg.warehouse_url or embedded_database_url(cfg.warehouse_pgdata, WAREHOUSE_DB)


def failed_nodes(run_results: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(node, message) for every model, seed, snapshot or test that errored or failed."""
    out = []
    for r in run_results.get("results", []):
        if r.get("status") in ("error", "fail", "runtime error"):
            lines = [ln.strip() for ln in (r.get("message") or r.get("status") or "").strip().splitlines() if ln.strip()]
            out.append((r["unique_id"], redact(" ".join(lines[:2]) if lines else r["status"])))
    return out


# one as-of day per run (CRM_AS_OF is the run's partition key): a backfill of many days is many runs
@dbt_assets(manifest=ensure_manifest(), project=dbt_project, partitions_def=AS_OF_DAYS,
            dagster_dbt_translator=Translator(), name="dbt_models", backfill_policy=dg.BackfillPolicy.multi_run(1))
def dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, crm: CrmWarehouse, config: BuildConfig):
    from crm_warehouse.lock import writer_lock

    cfg = crm.settings()
    # copy, build and publish under the warehouse's writer lock: no other run writes in between
    with writer_lock(cfg, f"Dagster run {context.run_id[:8]} (dbt build)", wait=True, progress=context.log.info):
        yield from _build(context, dbt, cfg, config)


def _build(context: dg.AssetExecutionContext, dbt: DbtCliResource, cfg, config: BuildConfig):
    # the as-of day travels as CRM_AS_OF (read by int_as_of), not --vars: changed --vars make dbt
    # re-parse the whole project (seconds), a changed env var only the files that read it
    args = ["build"]
    if config.full_refresh:
        args.append("--full-refresh")
    if cfg.warehouse == "postgres":
        # dbt-postgres cannot build unit-test fixtures for inputs with array columns ("cast(null as
        # ARRAY)"); the same SQL's unit tests run on DuckDB, and the tests compare both targets' marts.
        args += ["--exclude", "test_type:unit"]
    context.log.info(f"dbt {' '.join(args)} on the {cfg.warehouse} warehouse")
    target_path = cfg.home / "dbt" / "target"  # run artefacts beside the warehouse, not in the repository
    # write–audit–publish (DuckDB): dbt builds and tests a copy of the warehouse file, which replaces
    # the published file only if the whole build passed (quality/wap.py)
    # write–audit–publish (PostgreSQL): dbt builds into shadow schemas <schema>__build (incremental
    # models and snapshots copied in first), swapped in by renaming the schemas in one transaction
    build = wap.start(cfg.duckdb_path) if cfg.warehouse == "duckdb" else None
    build_cfg = dataclasses.replace(cfg, duckdb_path=build.path) if build else cfg
    pg = None
    env = {**dbt_env(build_cfg), "CRM_AS_OF": context.partition_key}
    if cfg.warehouse == "postgres":
        from ingest.postgres_server import connect

        pg = connect(_warehouse_url(cfg), autocommit=True)
        copied = wap.pg_start(pg, stateful_relations(full_refresh="--full-refresh" in args))
        context.log.info(f"building into the shadow schemas *{wap.PG_SUFFIX}; carried over: {', '.join(copied) or 'none'}")
        env["CRM_SCHEMA_SUFFIX"] = wap.PG_SUFFIX
    events = []  # held back until the build is published: no materialization of a mart users cannot see
    try:
        with temporary_env(env):  # the dbt process inherits it
            invocation = dbt.cli(args, context=context, raise_on_error=False, target_path=target_path)
            try:
                events.extend(invocation.stream())
            finally:  # never leave dbt running (it holds the DuckDB file) when this step stops early
                if invocation.process.poll() is None:
                    invocation.process.terminate()
                    invocation.process.wait()
        run_results = invocation.get_artifact("run_results.json")
        failures = failed_nodes(run_results)
        ok = not failures and invocation.is_successful()
        rows = dbt_results(run_results, invocation.get_artifact("manifest.json"), run_id=context.run_id,
                           as_of=context.partition_key, schema_suffix=wap.PG_SUFFIX if pg is not None else "")
        recorded = False
        if build and ok:
            # the check history goes into the audited copy before it is published: after the publish
            # nothing needs the file to itself (analysts may open it read-only at once)
            report("publish: recording the check results in the audited build")
            wh = open_warehouse(build_cfg)
            try:
                record(wh, rows)
            finally:
                wh.close()
            recorded = True
            # the docs' catalogue too: `dbt docs generate` opens the file read-write, which the
            # published file (analysts may open it the moment it is published) may not allow
            if refresh_catalog(build_cfg, target_path, cfg.home / "docs"):
                context.log.info("dbt docs catalogue regenerated from the audited build (the columns changed)")
            report("publish: the audited build replaces the published warehouse file")
            wap.publish(build, cfg.duckdb_path)
            context.log.info(f"published the audited build to {cfg.duckdb_path}")
            report("publish: done")
        if pg is not None and ok:
            report("publish: the audited build's shadow schemas are renamed in")
            wap.pg_publish(pg)
            context.log.info("published the audited build: shadow schemas renamed in")
            report("publish: done")
    finally:
        if build:
            wap.discard(build.path)  # a failed or interrupted build: the published file was not touched
        if pg is not None:
            wap.pg_discard(pg)  # nothing left when published; the unpublished build dropped otherwise
            pg.close()
    if not recorded:
        wh = open_warehouse(cfg)
        try:
            record(wh, rows)  # the history of check results (ops.check_results), published or not
        finally:
            wh.close()
    if ok:
        yield from events
        return
    # blocked: the check results still reach Dagster, the materializations of the unpublished build do not
    yield from (e for e in events if isinstance(e, (dg.AssetCheckResult, dg.AssetObservation)))
    listed = "; ".join(f"{node}: {msg}" for node, msg in failures) or "see the dbt log"
    raise dg.Failure(description=f"dbt build failed: {listed}" + (
        "; nothing was published: the marts are as the last successful refresh left them"
        if build or pg is not None else ""),
        metadata={"failed": dg.MetadataValue.json([n for n, _ in failures])})
