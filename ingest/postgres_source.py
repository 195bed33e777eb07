"""Reading any PostgreSQL source as Arrow record batches (ADBC), with its catalogue.

Type mapping (decided once, used by both warehouse targets). ADBC hands UUID, JSONB, INET and
NUMERIC as Arrow extension/opaque types that neither DuckDB nor a CSV COPY reads faithfully, so
the extraction query casts them to text and the loader casts them back to the target's type:

| source            | Arrow in transit   | DuckDB raw       | PostgreSQL raw |
|-------------------|--------------------|------------------|----------------|
| uuid              | string             | UUID             | uuid           |
| uuid[]            | list<string>       | UUID[]           | uuid[]         |
| jsonb / json      | string             | JSON             | jsonb          |
| inet              | string (abbrev)    | VARCHAR          | inet           |
| numeric(p,s)      | string             | DECIMAL(p,s)     | numeric(p,s)   |
| numeric           | string             | DECIMAL(38,10)   | numeric        |
| timestamptz       | timestamp[us, UTC] | TIMESTAMPTZ      | timestamptz    |
| date / time       | date32 / time64    | DATE / TIME      | date / time    |
| text[] / int4[]   | list<string>       | VARCHAR[] / INTEGER[] | text[] / integer[] |
| int / bigint / bool / text | native    | same             | same           |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import pyarrow as pa

from ingest.config import redact
from ingest.postgres_server import SourceError, connect


@dataclass(frozen=True)
class Column:
    name: str
    pg_type: str       # format_type(), e.g. 'numeric(15,2)', 'uuid[]', 'timestamp with time zone'

    @property
    def duck_type(self) -> str:
        return duck_type(self.pg_type)

    @property
    def select_expr(self) -> str:
        """How the extraction query reads the column (text for types Arrow cannot carry faithfully)."""
        t = self.pg_type
        q = f'"{self.name}"'
        if t.endswith("[]"):
            return f"{q}::text[] AS {q}" if not t.startswith(("integer", "bigint", "smallint")) else q
        if t in ("inet", "cidr"):
            return f"abbrev({q}) AS {q}"  # '10.1.2.3', not '10.1.2.3/32' as ::text gives
        if t in ("uuid", "jsonb", "json") or t.startswith("numeric") or t.startswith("interval"):
            return f"{q}::text AS {q}"
        return q


def duck_type(pg_type: str) -> str:
    if pg_type.endswith("[]"):
        return duck_type(pg_type[:-2]) + "[]"
    if pg_type.startswith("numeric("):
        return "DECIMAL" + pg_type[len("numeric"):]
    return {
        "uuid": "UUID", "jsonb": "JSON", "json": "JSON", "inet": "VARCHAR", "cidr": "VARCHAR",
        "numeric": "DECIMAL(38,10)", "text": "VARCHAR", "character varying": "VARCHAR",
        "timestamp with time zone": "TIMESTAMPTZ", "timestamp without time zone": "TIMESTAMP",
        "date": "DATE", "time without time zone": "TIME", "integer": "INTEGER", "bigint": "BIGINT",
        "smallint": "SMALLINT", "boolean": "BOOLEAN", "double precision": "DOUBLE", "real": "FLOAT",
        "interval": "VARCHAR",
    }.get(pg_type.split("(")[0] if pg_type.startswith("character varying") else pg_type, "VARCHAR")


@dataclass(frozen=True)
class SourceTable:
    name: str                  # schema-qualified
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]


BATCH_BYTES = 64 * 1024 * 1024  # ADBC batch size hint: bounds memory per batch, not per table


class PostgresSource:
    def __init__(self, url: str) -> None:
        self.url = url
        self.conn = connect(url, autocommit=True)

    def close(self) -> None:
        self.conn.close()

    def describe(self, table: str) -> SourceTable:
        schema, _, name = table.rpartition(".")
        schema = schema or "public"
        rows = self.conn.execute("""
            SELECT a.attname, format_type(a.atttypid, a.atttypmod)
            FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum""", (schema, name)).fetchall()
        if not rows:
            raise SourceError(f"source table {schema}.{name} does not exist in {redact(self.url)}: "
                              "check CRM_SOURCE_URL points at the BuildDesk database")
        pk = self.conn.execute("""
            SELECT a.attname FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            JOIN LATERAL unnest(k.conkey) WITH ORDINALITY u(attnum, ord) ON true
            JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = u.attnum
            WHERE n.nspname = %s AND c.relname = %s AND k.contype = 'p' ORDER BY u.ord""", (schema, name)).fetchall()
        if not pk:
            raise SourceError(f"source table {schema}.{name} has no primary key: rows cannot be merged or "
                              "deletes detected; add a primary key to it")
        return SourceTable(f"{schema}.{name}", tuple(Column(n, t) for n, t in rows), tuple(r[0] for r in pk))

    def batches(self, table: SourceTable, where: str = "", params: tuple = ()) -> Iterator[pa.RecordBatch]:
        """The table's rows (optionally filtered) as Arrow record batches, streamed."""
        import adbc_driver_postgresql.dbapi as adbc

        cols = ", ".join(c.select_expr for c in table.columns)
        sql = f"SELECT {cols} FROM {table.name}" + (f" WHERE {where}" if where else "")
        with adbc.connect(self.url) as conn:
            cur = conn.cursor()
            cur.adbc_statement.set_options(**{"adbc.postgresql.batch_size_hint_bytes": str(BATCH_BYTES)})
            cur.execute(sql, params or None)
            reader = cur.fetch_record_batch()
            for batch in reader:
                if batch.num_rows:
                    yield batch
            cur.close()

    def keys(self, table: SourceTable) -> pa.Table:
        import adbc_driver_postgresql.dbapi as adbc

        cols = ", ".join(f'"{k}"::text AS "{k}"' for k in table.primary_key)
        with adbc.connect(self.url) as conn:
            cur = conn.cursor()
            cur.execute(f"SELECT {cols} FROM {table.name}")
            out = cur.fetch_arrow_table()
            cur.close()
        return out
