"""The one Dagster Definitions object; each domain's assets live under defs/<domain>/."""

import datetime as dt
import warnings

import dagster as dg
from dagster_shared.utils.warnings import SupersessionWarning
from dagster_dbt import DbtCliResource

from orchestration.defs.dbt.assets import dbt_models
from orchestration.defs.dbt.project import dbt_child_executable, dbt_project
from orchestration.defs.ingest.assets import DATA_DOCS_KEY, raw_tables
from orchestration.defs.partitions import ensure_as_of_days
from orchestration.defs.serving.assets import bi_access, dbt_docs, segment_exports
from orchestration.resources import CrmWarehouse

# Freshness of the marts (Dagster's own last-update checks, evaluated by a sensor): a mart not
# rebuilt for 26 hours means the daily refresh has stopped. Raw tables carry their own data-time
# freshness check (the newest row against the source's clock; orchestration/defs/ingest).
# (Dagster 1.13 marks these builders superseded by FreshnessPolicy, which needs its daemon to evaluate
# anything; the checks and their sensor work as they are, so the notice is not printed on every run.)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", SupersessionWarning)
    mart_freshness_checks = dg.build_last_update_freshness_checks(
        assets=[k for k in dbt_models.keys if k.path[0] == "marts"], lower_bound_delta=dt.timedelta(hours=26))
    freshness_sensor = dg.build_sensor_for_freshness_checks(freshness_checks=mart_freshness_checks,
                                                            name="mart_freshness_sensor")

# Every job runs in one process, one step at a time: a DuckDB warehouse file has a single writer.
# The marts' freshness checks run at the end of every build (and on the sensor's ticks in `dagster dev`):
# every check the UI shows has been evaluated after a refresh.
ingest_job = dg.define_asset_job("ingest", selection=dg.AssetSelection.groups("raw") | dg.AssetSelection.assets(DATA_DOCS_KEY),
                                 executor_def=dg.in_process_executor)
transform_job = dg.define_asset_job("transform", selection=dg.AssetSelection.assets(dbt_models, bi_access, dbt_docs,
                                                                                  segment_exports),
                                    executor_def=dg.in_process_executor)
daily_refresh_job = dg.define_asset_job("daily_refresh", selection=dg.AssetSelection.all(),
                                        executor_def=dg.in_process_executor)


@dg.schedule(name="daily_refresh_schedule", job=daily_refresh_job, cron_schedule="0 3 * * *", execution_timezone="UTC")
def daily_refresh_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """At 03:00 UTC: ingest (with its Data Docs), then build the partition of the day that just ended,
    then the serving steps and the marts' freshness checks: what `crm-warehouse refresh` does."""
    day = (context.scheduled_execution_time - dt.timedelta(days=1)).date()
    ensure_as_of_days(context.instance, None, day)  # a run's partition must exist before it is requested
    return dg.RunRequest(run_key=day.isoformat(), partition_key=day.isoformat())


defs = dg.Definitions(
    assets=[raw_tables, dbt_models, bi_access, dbt_docs, segment_exports],
    jobs=[ingest_job, transform_job, daily_refresh_job],
    asset_checks=mart_freshness_checks,
    schedules=[daily_refresh_schedule],
    sensors=[freshness_sensor],
    resources={"dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=dbt_child_executable()),
               "crm": CrmWarehouse()},
)
