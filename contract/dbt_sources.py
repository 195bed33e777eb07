"""Render dbt's source declarations of the raw tables from the contract.

``python -m contract.dbt_sources`` rewrites
``dbt_project/models/staging/builddesk/_builddesk__sources.yml``; a test fails when the file and
the contract disagree. Each source table lists the contract's columns with their type and, in
``meta``, whether the warehouse requires it and the other names it has in other schema versions:
the ``contract_source`` macro reads these to give every staging model the contract's columns
whatever raw holds.
"""

from __future__ import annotations

from pathlib import Path

from contract.columns import COLUMNS
from contract.renames import RENAMES
from contract.tables import SOURCE_TABLES, qualified, raw_name

PATH = Path(__file__).resolve().parents[1] / "dbt_project/models/staging/builddesk/_builddesk__sources.yml"

HEADER = """\
# Generated from the contract package by `python -m contract.dbt_sources`: edit contract/, not this file.
version: 2

sources:
  - name: builddesk
    description: BuildDesk's operational CRM (PostgreSQL), loaded by the Dagster raw/<table> assets into schema raw.
    schema: raw
    loaded_at_field: _ingested_at
    tables:
"""


def render() -> str:
    out = [HEADER]
    for table in SOURCE_TABLES:
        name = raw_name(table)
        if name == "users":
            desc = "auth.users of Supabase (raw.users): login identities; the password hash is never selected downstream."
        else:
            desc = f"{qualified(table)} as ingested: every source column plus _ingested_at, _batch_id, _deleted_at."
        out.append(f"      - name: {name}\n        description: \"{desc}\"\n"
                   f"        meta: {{dagster: {{asset_key: [raw, {name}]}}}}\n        columns:\n")
        for col, (typ, required) in COLUMNS[name].items():
            meta = [f"required: {'true' if required else 'false'}"]
            if renames := RENAMES.get((name, col)):
                meta.append(f"renames: [{', '.join(renames)}]")
            out.append(f"          - {{name: {col}, data_type: \"{typ}\", meta: {{{', '.join(meta)}}}}}\n")
    return "".join(out)


if __name__ == "__main__":
    PATH.write_text(render())
    print(f"wrote {PATH}")
