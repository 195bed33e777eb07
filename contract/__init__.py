"""What the warehouse expects of BuildDesk's CRM source: plain declarations, no imports of the
pipeline, the quality checks, Dagster or the simulator (all of which read this package).

- ``contract.tables``: the tables, how each is read, cascades, freshness;
- ``contract.columns``: the columns the warehouse reads, their types, required or optional, keys;
- ``contract.renames``: the same column under another name in another schema version;
- ``contract.enums``: documented values of enumerated columns, the lead-score trigger's weights;
- ``contract.references``: foreign keys between CRM tables.

What the source's catalogue can tell (its actual columns, types, CHECKs, enum types, indexes) is
read from it at run time (``ingest.postgres_source``), never restated here.
"""
