"""The one Dagster Definitions object; each domain's assets live under defs/<domain>/."""

import dagster as dg
from dagster_dbt import DbtCliResource

from orchestration.defs.dbt.assets import dbt_models
from orchestration.defs.dbt.project import dbt_executable, dbt_project
from orchestration.defs.email.assets import raw_email_events
from orchestration.defs.ingest.assets import raw_table_assets

# Every job runs in one process, one step at a time: a DuckDB warehouse file has a single writer.
ingest_job = dg.define_asset_job("ingest", selection=dg.AssetSelection.groups("raw"),
                                 executor_def=dg.in_process_executor)
transform_job = dg.define_asset_job("transform", selection=dg.AssetSelection.assets(dbt_models),
                                    executor_def=dg.in_process_executor)
daily_refresh_job = dg.define_asset_job("daily_refresh", selection=dg.AssetSelection.all(),
                                        executor_def=dg.in_process_executor)

# The daily refresh at 03:00 UTC builds the partition of the day that just ended.
daily_refresh_schedule = dg.build_schedule_from_partitioned_job(daily_refresh_job, hour_of_day=3, minute_of_hour=0)

defs = dg.Definitions(
    assets=[*raw_table_assets, raw_email_events, dbt_models],
    jobs=[ingest_job, transform_job, daily_refresh_job],
    schedules=[daily_refresh_schedule],
    resources={"dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=dbt_executable())},
)
