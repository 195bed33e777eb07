"""Fetch the files Great Expectations' Data Docs link from CDNs into quality/data_docs_assets/ (npm pack,
the exact versions GE links; see quality/data_docs_offline.py). Run once when GE's links change:

    .venv/bin/python tools/vendor_data_docs_assets.py
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quality.data_docs_offline import ASSETS, FONT_FILES, VENDORED  # noqa: E402


def main() -> int:
    wanted = sorted(set(VENDORED.values()) | set(FONT_FILES))
    with tempfile.TemporaryDirectory() as tmp:
        tarballs = {}
        for package in sorted({p for p, _, _ in wanted}):
            name = subprocess.run(["npm", "pack", package, "--silent"], cwd=tmp, check=True,
                                  capture_output=True, text=True).stdout.strip().splitlines()[-1]
            tarballs[package] = Path(tmp) / name
        for package, inner, local in wanted:
            with tarfile.open(tarballs[package]) as tar:
                data = tar.extractfile(f"package/{inner}").read()
            out = ASSETS / local
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
            print(f"{package} {inner} -> {out.relative_to(ASSETS)} ({len(data):,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
