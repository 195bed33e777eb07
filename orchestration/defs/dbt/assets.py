"""Every dbt model, seed and snapshot as a Dagster asset (key <schema>/<name>), downstream of its
raw/<table> asset; dbt tests as asset checks. Partitioned by day: the partition is the as-of day
the models are built for (CRM_AS_OF), so a past day can be rebuilt or backfilled; the days are the
source's business days (orchestration/defs/partitions.py)."""

import dataclasses
import datetime as dt
import functools
import json
from typing import Any, Mapping

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource
from dagster_dbt.asset_utils import (DAGSTER_DBT_MANIFEST_METADATA_KEY, DAGSTER_DBT_PROJECT_METADATA_KEY,
                                     DAGSTER_DBT_TRANSLATOR_METADATA_KEY, DAGSTER_DBT_UNIQUE_ID_METADATA_KEY,
                                     build_dbt_specs)

from ingest.config import redact, temporary_env
from ingest.progress import report
from ingest.warehouse import open_published, open_warehouse
from orchestration.defs.dbt.project import dbt_env, dbt_project, ensure_manifest, refresh_catalog
from orchestration.defs.partitions import AS_OF_DAYS
from orchestration.resources import BuildConfig, CrmWarehouse
from quality import build_fingerprint, wap
from quality.check_results import dbt_results, record

class Translator(DagsterDbtTranslator):
    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return super().get_asset_key(dbt_resource_props)  # meta.dagster.asset_key: raw/<table>
        return dg.AssetKey([dbt_resource_props["schema"], dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return dbt_resource_props.get("schema") or "dbt"


@functools.cache
def stateful_relations(full_refresh: bool = False) -> list[tuple[str, str, tuple[str, ...] | None]]:
    """(schema, table, grain) of the nodes whose content carries over between builds: incremental
    models (grain: the columns that tell their rows apart, meta.grain else the merge key) and snapshots
    (grain None): what a PostgreSQL write–audit–publish build must start from. A full refresh rebuilds
    the incremental models from raw: only the snapshots' history carries over."""
    manifest = json.loads(ensure_manifest().read_text())
    out = []
    for n in manifest["nodes"].values():
        if n["resource_type"] == "snapshot":
            out.append((n["schema"], n.get("alias") or n["name"], None))
        elif not full_refresh and n["resource_type"] == "model" and n["config"].get("materialized") == "incremental":
            grain = (n["config"].get("meta") or {}).get("grain") or n["config"].get("unique_key")
            out.append((n["schema"], n.get("alias") or n["name"], tuple([grain] if isinstance(grain, str) else grain)))
    return sorted(out, key=lambda r: r[:2])


def outdated_incremental_models(cfg) -> list[str]:
    """The incremental models whose published table lacks a column this version of the project declares for
    it (an upgrade that added one): their incremental build would stop on the schema change
    (``on_schema_change='fail'``), so the build that meets one rebuilds every model instead."""
    manifest = json.loads(ensure_manifest().read_text())
    declared = {(n["schema"], n.get("alias") or n["name"]): {c.lower() for c in n.get("columns", {})}
                for n in manifest["nodes"].values()
                if n["resource_type"] == "model" and n["config"].get("materialized") == "incremental"}
    if not declared or (cfg.warehouse == "duckdb" and not cfg.duckdb_path.exists()):
        return []
    sql = ("SELECT table_schema, table_name, column_name FROM information_schema.columns WHERE table_schema IN ("
           + ", ".join(f"'{s}'" for s in sorted({s for s, _ in declared})) + ")")
    wh = open_published(cfg)
    try:
        rows = wh.rows(sql)
    finally:
        wh.close()
    found: dict[tuple[str, str], set[str]] = {}
    for schema, table, column in rows:
        found.setdefault((schema, table), set()).add(column.lower())
    return sorted(f"{s}.{t}" for (s, t), cols in declared.items() if (s, t) in found and cols - found[(s, t)])


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


SCORES_KEY = dg.AssetKey(["marts", "lead_conversion_scores"])
SCORES_SOURCE = "source:scores.lead_conversion_scores+"  # the dbt nodes that read the learned score


def _specs() -> tuple[list[dg.AssetSpec], list[dg.AssetCheckSpec]]:
    """The dbt project's specs (what @dbt_assets would make) and the learned score's, which sits between
    dbt models: it reads the features dbt builds and dbt's lead_conversion_summary reads it (the dbt source
    scores.lead_conversion_scores carries its asset key, so that edge is dbt's own lineage)."""
    manifest = json.loads(ensure_manifest().read_text())
    specs, checks = build_dbt_specs(translator=Translator(), manifest=manifest, select="fqn:*", exclude="",
                                    selector="", io_manager_key=None, project=dbt_project)
    dbt_meta = specs[0].metadata
    source_id = next(uid for uid, s in manifest["sources"].items()
                     if (s["source_name"], s["name"]) == ("scores", "lead_conversion_scores"))
    scores = dg.AssetSpec(
        SCORES_KEY, group_name="marts", kinds={"python", "scikit-learn"}, skippable=True,
        deps=[dg.AssetKey(["intermediate", "int_lead_conversion_features"]), dg.AssetKey(["marts", "lead_score_history"])],
        description="The learned conversion score of every open lead (crm_warehouse/lead_conversion.py): trained "
                    "between the dbt builds of the step, inside its write-audit-publish build.",
        # dagster-dbt reads the manifest from the first spec of the asset and maps a selected key to a dbt
        # node: the score's node is its dbt source, which dbt does not build
        metadata={k: dbt_meta[k] for k in (DAGSTER_DBT_MANIFEST_METADATA_KEY, DAGSTER_DBT_TRANSLATOR_METADATA_KEY,
                                           DAGSTER_DBT_PROJECT_METADATA_KEY) if k in dbt_meta}
        | {DAGSTER_DBT_UNIQUE_ID_METADATA_KEY: source_id})
    return [*specs, scores], list(checks)


_SPECS, _CHECK_SPECS = _specs()


# one as-of day per run (CRM_AS_OF is the run's partition key): a backfill of many days is many runs.
# What @dbt_assets makes, with the learned score's spec added (and no default --select: the step passes
# its own selections to its two dbt builds)
@dg.multi_asset(specs=_SPECS, check_specs=_CHECK_SPECS, can_subset=True, name="dbt_models",
                partitions_def=AS_OF_DAYS, backfill_policy=dg.BackfillPolicy.multi_run(1),
                allow_arbitrary_check_specs=True)
def dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, crm: CrmWarehouse, config: BuildConfig):
    from crm_warehouse.lock import writer_lock

    cfg = crm.settings()
    # copy, build and publish under the warehouse's writer lock: no other run writes in between
    with writer_lock(cfg, f"Dagster run {context.run_id[:8]} (dbt build)", wait=True, progress=context.log.info):
        yield from _build(context, dbt, cfg, config)


def _dbt_build(context, dbt: DbtCliResource, args: list[str], target_path) -> tuple[list, dict, dict, bool]:
    """One dbt invocation: its Dagster events, run results and manifest, and whether it succeeded."""
    context.log.info(f"dbt {' '.join(args)}")
    invocation = dbt.cli(args, context=context, raise_on_error=False, target_path=target_path)
    events = []
    try:
        events.extend(invocation.stream())
    finally:  # never leave dbt running (it holds the DuckDB file) when this step stops early
        if invocation.process.poll() is None:
            invocation.process.terminate()
            invocation.process.wait()
    return (events, invocation.get_artifact("run_results.json"), invocation.get_artifact("manifest.json"),
            invocation.is_successful())


def _event_id(e) -> tuple:
    if isinstance(e, dg.Output):
        return ("output", e.output_name)
    if isinstance(e, dg.AssetCheckResult):
        return ("check", e.asset_key, e.check_name)
    return ("other", id(e))


def _score(context, build_cfg, suffix: str):
    """Train and score into the build (the DuckDB copy, or the shadow schemas): never fails the step. A
    failure writes no scores and says why (the rest of the refresh goes on, as with too few outcomes)."""
    from crm_warehouse import lead_conversion

    as_of = dt.date.fromisoformat(context.partition_key)
    report("learned conversion score: training and scoring in the build")
    wh = open_warehouse(build_cfg)
    try:
        try:
            run = lead_conversion.score_warehouse(wh, run_id=context.run_id, as_of=as_of, suffix=suffix)
        except Exception as e:  # noqa: BLE001 - reported, recorded, and the build goes on without scores
            context.log.error(f"learned conversion score failed: {redact(repr(e))}")
            run = lead_conversion.failed_run(context.run_id, as_of, redact(f"{type(e).__name__}: {e}"))
            lead_conversion.write(wh, run, suffix)
    finally:
        wh.close()
    context.log.info(run.line)
    return run


def _build(context: dg.AssetExecutionContext, dbt: DbtCliResource, cfg, config: BuildConfig):
    # the as-of day travels as CRM_AS_OF (read by int_as_of), not --vars: changed --vars make dbt
    # re-parse the whole project (seconds), a changed env var only the files that read it
    args = ["build"]
    full_refresh = config.full_refresh
    if full_refresh:
        args.append("--full-refresh")
    excludes = []
    if cfg.warehouse == "postgres":
        # dbt-postgres cannot build unit-test fixtures for inputs with array columns ("cast(null as
        # ARRAY)"); the same SQL's unit tests run on DuckDB, and the tests compare both targets' marts.
        excludes.append("test_type:unit")
    # the learned score sits between dbt models: dbt builds all it does not feed, Python trains and scores
    # into the same build, dbt builds and tests what reads the score; then the build is published
    scoring = SCORES_KEY in context.selected_asset_keys
    # nothing the build reads changed since the last published build: it would publish the same marts
    # (a --full-refresh builds anyway, and records its digest like any whole build, so the next run may skip)
    digest = None
    if context.selected_asset_keys == set(context.assets_def.keys):
        try:
            digest, last = build_fingerprint.published_state(cfg, as_of=context.partition_key)
        except Exception as e:  # noqa: BLE001 - a digest that cannot be read only costs the skip: build
            context.log.warning(f"the build's digest could not be read ({redact(repr(e))}): building")
            digest, last = None, None
        if not full_refresh and last is not None and digest == last[0]:
            message = (f"dbt build skipped: nothing it reads changed since the published build of run {last[1][:8]} "
                       f"(the raw tables, the dbt project, the as-of day {context.partition_key}); "
                       "`refresh --full-refresh` builds anyway")
            context.log.info(message)
            report(message)
            yield dg.AssetObservation(asset_key=SCORES_KEY, metadata={"dbt_build": "skipped", "message": message})
            return
    if not full_refresh and (outdated := outdated_incremental_models(cfg)):
        full_refresh = True
        args.append("--full-refresh")
        message = (f"{', '.join(outdated)}: the published table lacks columns this version of the project builds; "
                   "this build rebuilds every model from raw (as `refresh --full-refresh`)")
        context.log.warning(message)
        report(message)
    first = args + ["--exclude", " ".join(excludes + ([SCORES_SOURCE] if scoring else []))] if excludes or scoring else args
    then = args + (["--exclude", " ".join(excludes)] if excludes else []) + ["--select", SCORES_SOURCE]
    context.log.info(f"dbt build on the {cfg.warehouse} warehouse" + (", the learned score between two builds" if scoring else ""))
    target_path = cfg.home / "dbt" / "target"  # run artefacts beside the warehouse, not in the repository
    # write–audit–publish (DuckDB): dbt builds and tests a copy of the warehouse file, which replaces
    # the published file only if the whole build passed (quality/wap.py)
    # write–audit–publish (PostgreSQL): dbt builds into shadow schemas <schema>__build (snapshots copied
    # in first; incremental models built as a delta of their published table, macros/wap_delta.sql),
    # swapped in by renaming the schemas in one transaction
    build = wap.start(cfg.duckdb_path) if cfg.warehouse == "duckdb" else None
    build_cfg = dataclasses.replace(cfg, duckdb_path=build.path) if build else cfg
    pg = None
    env = {**dbt_env(build_cfg), "CRM_AS_OF": context.partition_key}
    if cfg.warehouse == "postgres":
        from ingest.postgres_server import connect

        pg = connect(_warehouse_url(cfg), autocommit=True)
        copied, deltas = wap.pg_start(pg, stateful_relations(full_refresh="--full-refresh" in args))
        context.log.info(f"building into the shadow schemas *{wap.PG_SUFFIX}; copied: {', '.join(copied) or 'none'}; "
                         f"built as a delta of the published table: {', '.join(deltas) or 'none'}")
        env["CRM_SCHEMA_SUFFIX"] = wap.PG_SUFFIX
    suffix = wap.PG_SUFFIX if pg is not None else ""
    events = []  # held back until the build is published: no materialization of a mart users cannot see
    scored = None
    rows = []
    try:
        with temporary_env(env):  # the dbt processes inherit it
            evs, run_results, manifest, ok = _dbt_build(context, dbt, first, target_path)
            events += evs
            failures = failed_nodes(run_results)
            rows += dbt_results(run_results, manifest, run_id=context.run_id, as_of=context.partition_key,
                                schema_suffix=suffix)
            if scoring and ok and not failures:
                scored = _score(context, build_cfg, suffix)
                # before what reads it: a multi-asset yields its outputs in dependency order
                events.append(dg.Output(None, output_name=context.assets_def.get_output_name_for_asset_key(SCORES_KEY),
                                        metadata=scored.metadata))
                evs, run_results, manifest, ok = _dbt_build(context, dbt, then, target_path)
                seen = {_event_id(e) for e in events}  # a subset run selects its nodes in both builds
                events += [e for e in evs if _event_id(e) not in seen]
                failures += failed_nodes(run_results)
                rows += dbt_results(run_results, manifest, run_id=context.run_id, as_of=context.partition_key,
                                    schema_suffix=suffix)
        ok = ok and not failures
        recorded = False
        if build and ok:
            # the check history goes into the audited copy before it is published: after the publish
            # nothing needs the file to itself (analysts may open it read-only at once)
            report("publish: recording the check results in the audited build")
            wh = open_warehouse(build_cfg)
            try:
                _record(wh, rows, scored)
                if digest is not None:  # published together with the marts it describes
                    build_fingerprint.record(wh, run_id=context.run_id, as_of=context.partition_key, digest=digest)
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
            if digest is not None:
                wh = open_warehouse(cfg)
                try:
                    build_fingerprint.record(wh, run_id=context.run_id, as_of=context.partition_key, digest=digest)
                finally:
                    wh.close()
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
            _record(wh, rows, scored)  # the history of check results (ops.check_results), published or not
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


def _record(wh, rows: list[dict], scored) -> None:
    """ops.check_results (every check of the run) and ops.lead_conversion_model_runs (the model's run)."""
    from crm_warehouse import lead_conversion

    record(wh, rows)
    if scored is not None:
        lead_conversion.record(wh, scored)
