"""The one Dagster Definitions object; each domain's assets live under defs/<domain>/."""

import dagster as dg

from orchestration.defs.email.assets import raw_email_events

defs = dg.Definitions(assets=[raw_email_events])
