"""The headline metrics, defined once: the dbt semantic models and metrics of
``dbt_project/models/metrics/_metrics.yml``, compiled to SQL by MetricFlow and run by the caller on its own
read-only connection.

Why MetricFlow's SQL and not ``mf query``: ``mf`` runs through the dbt adapter, which opens the DuckDB file
read-write (one writer at a time, and no reader beside it): the report and the demo summary must read the
warehouse the way a BI tool does, beside others. MetricFlow compiles from the semantic manifest alone; the
relations are named by schema and table only, so the SQL runs on whatever file or database the caller opened.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from collections.abc import Sequence

from orchestration.defs.dbt.project import TARGET_DIR, ensure_manifest

QUARTER = "metric_time__quarter"
_UUID = re.compile(r"[0-9a-fA-F-]{36}")


@functools.lru_cache(maxsize=4)
def _engine(kind: str, manifest_mtime: float):
    from metricflow.engine.metricflow_engine import MetricFlowEngine
    from metricflow.protocols.sql_client import SqlEngine
    from metricflow.sql.render.duckdb_renderer import DuckDbSqlPlanRenderer
    from metricflow.sql.render.postgres import PostgresSQLSqlPlanRenderer
    from metricflow_semantics.model.dbt_manifest_parser import parse_manifest_from_dbt_generated_manifest
    from metricflow_semantics.model.semantic_manifest_lookup import SemanticManifestLookup

    raw = json.loads((TARGET_DIR / "semantic_manifest.json").read_text())
    relations = [sm["node_relation"] for sm in raw["semantic_models"]]
    relations += [ts["node_relation"] for ts in raw.get("project_configuration", {}).get("time_spines", [])]
    for rel in relations:  # schema.table: valid in any DuckDB file or PostgreSQL database holding the marts
        rel["database"] = None
        rel["relation_name"] = f'{rel["schema_name"]}.{rel["alias"]}'
    manifest = parse_manifest_from_dbt_generated_manifest(manifest_json_string=json.dumps(raw))

    class _Dialect:  # MetricFlow only needs the dialect to compile; the caller runs the SQL
        sql_engine_type = SqlEngine.DUCKDB if kind == "duckdb" else SqlEngine.POSTGRES
        sql_plan_renderer = DuckDbSqlPlanRenderer() if kind == "duckdb" else PostgresSQLSqlPlanRenderer()

        def query(self, *_a, **_k):
            raise NotImplementedError("serving.metrics compiles only")

        execute = dry_run = query

        def close(self) -> None:
            pass

        def render_bind_parameter_key(self, key: str) -> str:
            return key

    return MetricFlowEngine(SemanticManifestLookup(manifest), _Dialect())


def metric_names() -> list[str]:
    """The metrics the semantic layer defines."""
    ensure_manifest()
    return sorted(m["name"] for m in json.loads((TARGET_DIR / "semantic_manifest.json").read_text())["metrics"])


def metrics_sql(kind: str, metrics: Sequence[str], group_by: Sequence[str] = (), *,
                company_id: str | None = None, since: dt.date | None = None) -> str:
    """SELECT the metrics (columns named after them) grouped by ``group_by`` (e.g. ``metric_time__quarter``),
    for one tenant when ``company_id`` is given and from the day ``since`` on (by each metric's time: close
    date, creation, send time...), in the dialect of ``kind`` (duckdb or postgres)."""
    from metricflow.engine.metricflow_engine import MetricFlowQueryRequest

    manifest = ensure_manifest()
    where = []
    if company_id:
        if not _UUID.fullmatch(company_id):
            raise ValueError(f"company id must be a UUID, not {company_id!r}")
        where.append(f"{{{{ Entity('company') }}}} = '{company_id.lower()}'")
    if since is not None:
        where.append(f"{{{{ TimeDimension('metric_time', 'day') }}}} >= '{dt.date.fromisoformat(str(since)[:10])}'")
    engine = _engine(kind, (TARGET_DIR / "semantic_manifest.json").stat().st_mtime + manifest.stat().st_mtime)
    request = MetricFlowQueryRequest.create(metric_names=list(metrics), group_by_names=list(group_by),
                                            where_constraints=where or None)
    return engine.explain(request).sql_statement.sql
