"""The one Dagster Definitions object. Assets arrive with the ingest and dbt issues (defs/<domain>/)."""

import dagster as dg

defs = dg.Definitions()
