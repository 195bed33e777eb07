"""Great Expectations' Data Docs without the network.

GE writes its pages with their scripts, styles and fonts linked from CDNs (jQuery, Bootstrap,
bootstrap-table, Vega, Font Awesome, …): offline, or behind a firewall, the pages render blank. The
same files, at the versions GE links, are vendored in ``quality/data_docs_assets/`` (fetched from
npm by ``tools/vendor_data_docs_assets.py``; licences in its README). After every build they are
copied to ``<site>/static/vendor/`` and each page's links are rewritten to them; GE's logo, which it
links from S3, points at the copy GE itself writes under ``static/images/``.
"""

from __future__ import annotations

import filecmp
import os
import re
import shutil
from pathlib import Path

ASSETS = Path(__file__).with_name("data_docs_assets")

# the URL GE links (without its query string) -> (npm package@version, file in the package, file under ASSETS)
VENDORED: dict[str, tuple[str, str, str]] = {
    "https://code.jquery.com/jquery-3.7.1.min.js": ("jquery@3.7.1", "dist/jquery.min.js", "jquery.min.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js":
        ("popper.js@1.12.9", "dist/umd/popper.min.js", "popper.min.js"),
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css":
        ("bootstrap@4.3.1", "dist/css/bootstrap.min.css", "bootstrap.min.css"),
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js":
        ("bootstrap@4.3.1", "dist/js/bootstrap.min.js", "bootstrap.min.js"),
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css":
        ("@forevolve/bootstrap-dark@1.1.0", "dist/css/bootstrap-prefers-dark.css", "bootstrap-prefers-dark.css"),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css":
        ("bootstrap-table@1.19.1", "dist/bootstrap-table.min.css", "bootstrap-table.min.css"),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js":
        ("bootstrap-table@1.19.1", "dist/bootstrap-table.min.js", "bootstrap-table.min.js"),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js":
        ("bootstrap-table@1.19.1", "dist/extensions/filter-control/bootstrap-table-filter-control.min.js",
         "bootstrap-table-filter-control.min.js"),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css":
        ("bootstrap-table@1.19.0", "dist/extensions/filter-control/bootstrap-table-filter-control.css",
         "bootstrap-table-filter-control.css"),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css":
        ("bootstrap-table@1.19.0", "dist/extensions/filter-control/bootstrap-table-filter-control.min.css",
         "bootstrap-table-filter-control.min.css"),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css":
        ("bootstrap-datepicker@1.9.0", "dist/css/bootstrap-datepicker.min.css", "bootstrap-datepicker.min.css"),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js":
        ("bootstrap-datepicker@1.9.0", "dist/js/bootstrap-datepicker.min.js", "bootstrap-datepicker.min.js"),
    "https://cdn.jsdelivr.net/npm/vega@5": ("vega@5.33.1", "build/vega.min.js", "vega.min.js"),
    "https://cdn.jsdelivr.net/npm/vega-lite@5": ("vega-lite@5.23.0", "build/vega-lite.min.js", "vega-lite.min.js"),
    "https://cdn.jsdelivr.net/npm/vega-embed@6": ("vega-embed@6.29.0", "build/vega-embed.min.js", "vega-embed.min.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css":
        ("@fortawesome/fontawesome-free@6.6.0", "css/all.min.css", "fontawesome/css/all.min.css"),
}
# Font Awesome's stylesheet loads its fonts from ../webfonts/ beside it
FONT_FILES = [("@fortawesome/fontawesome-free@6.6.0", f"webfonts/{name}", f"fontawesome/webfonts/{name}")
              for name in ("fa-brands-400.woff2", "fa-regular-400.woff2", "fa-solid-900.woff2",
                           "fa-v4compatibility.woff2", "fa-brands-400.ttf", "fa-regular-400.ttf", "fa-solid-900.ttf",
                           "fa-v4compatibility.ttf")]
LOGO = "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png"

_LINK = re.compile(r'((?:src|href)=")(https?://[^"?]+)(\?[^"]*)?(")')


def _copy_assets(dest: Path) -> None:
    for path in ASSETS.rglob("*"):
        if path.is_dir() or path.name == "README.md":
            continue
        target = dest / path.relative_to(ASSETS)
        if target.exists() and filecmp.cmp(path, target, shallow=False):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)


def make_offline(site: Path) -> int:
    """Copy the vendored files into ``site/static/vendor`` and point every page at them. Returns how
    many pages were rewritten (pages already pointing at them are left alone)."""
    missing = [local for _, _, local in VENDORED.values() if not (ASSETS / local).exists()]
    if missing:
        raise FileNotFoundError(f"vendored Data Docs assets missing from {ASSETS}: {', '.join(missing)} "
                                "(tools/vendor_data_docs_assets.py fetches them)")
    _copy_assets(site / "static" / "vendor")
    rewritten = 0
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        if "https://" not in text:
            continue
        up = os.path.relpath(site, page.parent).replace(os.sep, "/")
        prefix = "" if up == "." else up + "/"

        def local(m: re.Match) -> str:
            url = m.group(2)
            if url in VENDORED:
                return f"{m.group(1)}{prefix}static/vendor/{VENDORED[url][2]}{m.group(4)}"
            if url == LOGO:
                return f"{m.group(1)}{prefix}static/images/logo-long.png{m.group(4)}"
            return m.group(0)

        new = _LINK.sub(local, text)
        if new != text:
            page.write_text(new, encoding="utf-8")
            rewritten += 1
    return rewritten


def external_resources(page_text: str) -> list[str]:
    """What a page still loads from the network (scripts, styles, images; not plain links to follow)."""
    loads = re.findall(r'<(?:script|img)[^>]*\ssrc="(https?://[^"]+)"', page_text)
    loads += re.findall(r'<link[^>]*\shref="(https?://[^"]+)"', page_text)
    return loads
