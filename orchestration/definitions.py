"""The one Dagster Definitions object; each domain's assets live under defs/<domain>/."""

import dagster as dg

from orchestration.defs.email.assets import raw_email_events
from orchestration.defs.ingest.assets import raw_table_assets

# Runs in one process, one step at a time: a DuckDB warehouse file has a single writer.
ingest_job = dg.define_asset_job("ingest", selection=dg.AssetSelection.groups("raw"),
                                 executor_def=dg.in_process_executor)

defs = dg.Definitions(assets=[*raw_table_assets, raw_email_events], jobs=[ingest_job])
