"""Bulk loading of Polars frames into PostgreSQL with COPY (CSV), shared by the simulator and the loaders."""

from __future__ import annotations

import io

import polars as pl
import psycopg


def pg_array(col: pl.Expr) -> pl.Expr:
    """A List[str] column as a PostgreSQL array literal (elements quoted)."""
    escaped = pl.element().cast(pl.String).str.replace_all("\\", "\\\\", literal=True).str.replace_all('"', '\\"', literal=True)
    inner = col.list.eval(pl.lit('"') + escaped + pl.lit('"'))
    return pl.lit("{") + inner.list.join(",") + pl.lit("}")


def copy_frame(conn: psycopg.Connection, table: str, df: pl.DataFrame, chunk_rows: int = 250_000) -> int:
    """Bulk-load ``df`` into ``table`` with COPY (CSV), in chunks to bound memory."""
    if df.height == 0:
        return 0
    lists = [c for c, t in df.schema.items() if isinstance(t, pl.List)]
    if lists:
        df = df.with_columns(pg_array(pl.col(c)).alias(c) for c in lists)
    cols = ", ".join(df.columns)
    sql = f"COPY {table} ({cols}) FROM STDIN (FORMAT csv, NULL '\\N')"
    with conn.cursor() as cur:
        for offset in range(0, df.height, chunk_rows):
            buf = io.BytesIO()
            df.slice(offset, chunk_rows).write_csv(
                buf,
                include_header=False,
                null_value="\\N",
                datetime_format="%Y-%m-%d %H:%M:%S%.6f+00",
                date_format="%Y-%m-%d",
            )
            with cur.copy(sql) as copy:
                copy.write(buf.getbuffer())
    return df.height
