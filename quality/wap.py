"""Write–audit–publish for the DuckDB warehouse: dbt builds and tests a copy, the copy replaces the file.

Plain Python, no Dagster. The refresh's transform step:

1. **write**: the published file (any write-ahead log left beside it folded in) is copied to
   ``<file>.build``; dbt builds every model, snapshot and test into the copy;
2. **audit**: dbt's tests run there (a failing test, or a model whose SQL fails, fails the build);
3. **publish**: only when the whole build passed, the copy is renamed over the
   published file (``os.replace``: atomic on one filesystem). Otherwise the copy is deleted and
   the published file is left as it was, byte for byte.

Readers are never blocked by the build and never see half of it: while dbt writes the copy, the
published file can be opened read-only; a session already open when the copy is published keeps
reading the file it opened (the old inode), new sessions open the new one. The cost is one file
copy per refresh (the kernel's copy, ~1 GB/s here; see the README's figures).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb


def build_path(published: Path) -> Path:
    return published.with_name(published.name + ".build")


def _fold_wal(path: Path) -> None:
    """Fold a write-ahead log left beside ``path`` into it (DuckDB does so on a clean close)."""
    if not Path(f"{path}.wal").exists():
        return
    con = duckdb.connect(str(path))
    try:
        con.execute("CHECKPOINT")
    finally:
        con.close()


def discard(build: Path) -> None:
    for p in (build, Path(f"{build}.wal")):
        p.unlink(missing_ok=True)


def start(published: Path) -> Path:
    """A copy of the published warehouse for dbt to build into (a stale one from a killed run is replaced)."""
    build = build_path(published)
    discard(build)
    _fold_wal(published)  # the copy must hold everything the ingest wrote
    shutil.copyfile(published, build)  # read-only sessions may have the published file open meanwhile
    return build


def publish(build: Path, published: Path) -> None:
    """Replace the published file with the audited copy, atomically."""
    _fold_wal(build)
    os.replace(build, published)
