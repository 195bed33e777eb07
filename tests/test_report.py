"""`crm-warehouse report`: the static HTML report, opened in headless Chromium (Debian's package)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import psycopg
import pytest

from crm_warehouse.cli import main
from serving.report import BLUE, GREEN, ORANGE, PURPLE, build_report

CHARTS = {"pipeline_value", "win_rate", "cycle_time", "funnel", "attainment", "email_engagement", "lead_scores",
          "speed_to_lead", "follow_ups", "velocity", "source_effectiveness", "attribution", "score_calibration",
          "accounts", "contact_quality", "segments", "segment_sizes"}
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--window-size=1000,11400"]


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium, installed here when missing (the test machine is root; CI's machine is fresh)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.geteuid() != 0:
        pytest.fail("Chromium is missing and this user cannot install it: `sudo apt-get install -y chromium`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, f"{' '.join(cmd)} failed: {proc.stderr[-2000:]}"
    found = shutil.which("chromium")
    assert found, "apt-get installed chromium but it is not on PATH"
    return found


def run_chromium(chromium: str, tmp_path: Path, page: Path, *extra: str) -> str:
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path)
    proc = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


class Figures(HTMLParser):
    """The attributes of every figure/section and every mark's <title>, per chart."""

    def __init__(self):
        super().__init__()
        self.attrs: dict[str, dict[str, str]] = {}
        self.titles: dict[str, list[str]] = {}
        self.body: dict[str, str] = {}
        self.kpis: dict[str, str] = {}
        self._chart = None
        self._in_title = False
        self._kpi = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body":
            self.body = a
        if tag == "figure" and "data-chart" in a:
            self._chart = a["data-chart"]
            self.attrs[self._chart] = a
            self.titles[self._chart] = []
        if tag == "section" and "id" in a:
            self.attrs[a["id"]] = a
        if tag == "title" and self._chart:
            self._in_title = True
        if tag == "b" and "data-kpi" in a:
            self._kpi = a["data-kpi"]

    def handle_endtag(self, tag):
        if tag == "figure":
            self._chart = None
        if tag == "title":
            self._in_title = False
        if tag == "b":
            self._kpi = None

    def handle_data(self, data):
        if self._in_title and self._chart:
            self.titles[self._chart].append(data)
        if self._kpi:
            self.kpis[self._kpi] = data


def parse(page: str) -> Figures:
    f = Figures()
    f.feed(page)
    return f


def color_pixels(png: Path) -> Counter:
    from PIL import Image

    img = Image.open(png).convert("RGB")
    return Counter(img.getdata())


def rgb(hex_: str) -> tuple[int, int, int]:
    return tuple(int(hex_[i:i + 2], 16) for i in (1, 3, 5))


def quarter(d: dt.date) -> str:
    return f"{d.year}-Q{(d.month - 1) // 3 + 1}"


def source_win_rates(url: str, company_id: str | None = None) -> dict[str, float]:
    where = "AND company_id = %s" if company_id else ""
    with psycopg.connect(url) as conn:
        rows = conn.execute(f"SELECT actual_close_date::date, status FROM deals WHERE status IN ('won', 'lost') {where}",
                            [company_id] if company_id else []).fetchall()
    closed, won = Counter(), Counter()
    for day, status in rows:
        closed[quarter(day)] += 1
        won[quarter(day)] += status == "won"
    return {q: round(100.0 * won[q] / closed[q], 1) for q in closed}


def chart_win_rates(fig: Figures) -> dict[str, float]:
    return {m[1]: float(m[2]) for t in fig.titles["win_rate"] if (m := re.fullmatch(r"(\S+): win rate ([\d.]+)%", t))}


def chart_lead_count(fig: Figures) -> int:
    return sum(int(m[1].replace(",", "")) for t in fig.titles["lead_scores"]
               if (m := re.fullmatch(r"score \S+: ([\d,]+) \w+ leads", t)))


def test_report_renders_every_chart_in_headless_chromium(built, tiny_source, chromium, tmp_path, monkeypatch, capsys):
    """`crm-warehouse report` on the DuckDB warehouse: Chromium lays out every chart with every mark
    drawn, the screenshot holds each series colour, and the figures are the source's."""
    cfg, res = built["duckdb"]
    monkeypatch.setenv("CRM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CRM_DUCKDB_PATH", str(cfg.duckdb_path))
    monkeypatch.setenv("CRM_WAREHOUSE", "duckdb")
    assert main(["report"]) == 0
    page = tmp_path / "home" / "report" / "index.html"
    assert str(page) in capsys.readouterr().out
    text = page.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text), "the report must not fetch anything"

    dom = parse(run_chromium(chromium, tmp_path, page, "--dump-dom"))
    assert CHARTS <= set(dom.titles), set(dom.titles)
    for key in CHARTS:
        a = dom.attrs[key]
        assert int(a["data-marks"]) > 0, key
        assert a.get("data-drawn") == a["data-marks"], (key, a)  # set by the page's script after layout
        assert int(a["data-width"]) > 300, (key, a)
        assert a.get("data-labels-outside") == "0", (key, a)  # every category label whole inside its chart
    assert int(dom.body["data-marks-drawn"]) == sum(int(dom.attrs[k]["data-marks"]) for k in dom.titles)

    # the figures: win rate per quarter and the lead count recomputed from the operational source
    assert chart_win_rates(dom) == pytest.approx(source_win_rates(tiny_source[1]), abs=0.051)
    with psycopg.connect(tiny_source[1]) as conn:
        leads, open_deals = conn.execute("SELECT (SELECT count(*) FROM leads), (SELECT count(*) FROM deals "
                                         "WHERE status IN ('active', 'on_hold'))").fetchone()
    assert chart_lead_count(dom) == leads
    assert dom.kpis["open deals"] == f"{open_deals:,}"
    assert len(dom.titles["pipeline_value"]) == 2 * int(dom.attrs["pipeline_value"]["data-points"])
    # the running week (as of Tuesday 2026-06-30) is marked as such, and it alone
    assert text.count("2026-06-29 (to date)") >= 1 and text.count("(to date)") == text.count("2026-06-29 (to date)")
    # the latest quality run: every check passed, as many as the run recorded
    q = dom.attrs["quality"]
    assert q["data-status"] == "passed" and q["data-failed"] == "0"
    import duckdb

    with duckdb.connect(str(cfg.duckdb_path), read_only=True) as con:
        latest = con.execute("SELECT count(*) FROM ops.check_results WHERE run_id = (SELECT run_id FROM ops.check_results "
                             "ORDER BY checked_at DESC LIMIT 1)").fetchone()[0]
    assert int(q["data-passed"]) == latest >= res.checks_passed  # dbt's unit tests are in the history too
    assert "A/B test" in text and "p (opens)" in text
    # speed to lead: each kind's share answered within the SLA, as the mart's rows say
    with duckdb.connect(str(cfg.duckdb_path), read_only=True) as con:
        shares = dict(con.execute("SELECT trigger_type, 100.0 * count(*) FILTER (WHERE within_sla) / count(within_sla) "
                                  "FROM marts.lead_response_times GROUP BY 1").fetchall())
    drawn = {m[1]: float(m[2]) for t in dom.titles["speed_to_lead"]
             if (m := re.fullmatch(r"(.+): ([\d.]+)% answered within 24 h", t))}
    names = {"lead_created": "new lead", "demo_request": "demo request", "sales_contact_request": "sales-contact request"}
    assert drawn == pytest.approx({names[k]: round(v, 1) for k, v in shares.items()}, abs=0.051)
    # segment sizes over time: the latest refresh's points are segment_summary's members
    with duckdb.connect(str(cfg.duckdb_path), read_only=True) as con:
        members = dict(con.execute("SELECT segment, sum(leads + contacts) FROM marts.segment_summary GROUP BY 1").fetchall())
    latest = max(m[1] for t in dom.titles["segment_sizes"] if (m := re.match(r"(\S+): ", t)))
    drawn = {m[1]: int(m[2].replace(",", "")) for t in dom.titles["segment_sizes"]
             if (m := re.fullmatch(latest + r": (.+) ([\d,]+) members", t))}
    from serving.report import SEGMENT_LABELS
    assert drawn == {SEGMENT_LABELS[k]: v for k, v in members.items()} and sum(drawn.values()) > 0
    # overdue follow-ups: the bars add up to the mart's rows (the tiny tier has fewer reps than are drawn)
    with duckdb.connect(str(cfg.duckdb_path), read_only=True) as con:
        owed = con.execute("SELECT count(*) FROM marts.follow_ups_due").fetchone()[0]
    bars = [int(m[1]) for t in dom.titles["follow_ups"] if (m := re.fullmatch(r".+: (\d+) (?:leads|contacts) overdue", t))]
    assert sum(bars) == owed > 0
    # sales velocity: one bar per rep with a velocity, its value the mart's
    with duckdb.connect(str(cfg.duckdb_path), read_only=True) as con:
        per_day = con.execute("SELECT count(*) FROM marts.sales_velocity WHERE scope = 'rep' AND velocity_per_day "
                              "IS NOT NULL").fetchone()[0]
    assert int(dom.attrs["velocity"]["data-points"]) == per_day > 0
    # labels as the data has them: never cut short, an A/B variant said once, no "(none)" for a plain campaign
    assert "…</text>" not in text and not re.search(r"\((\w)\) \(\1\)", text) and "(none)" not in text
    assert re.search(r">social_media</text>", text) and re.search(r">Spring building season \(A\)</text>", text)

    shot = tmp_path / "report.png"
    run_chromium(chromium, tmp_path, page, f"--screenshot={shot}")
    pixels = color_pixels(shot)
    for name, colour in {"pipeline line and win-rate bars": BLUE, "weighted value": ORANGE, "won": GREEN,
                         "attainment bars": PURPLE}.items():
        assert pixels[rgb(colour)] > 300, f"{name}: {pixels[rgb(colour)]} pixels of {colour} on the screenshot"


def test_report_on_postgres_matches_duckdb_and_one_tenant_sees_its_own(built, tiny_source, tmp_path):
    """The same report from the PostgreSQL warehouse carries the same figures; a tenant's report
    (`--company-id`) counts that company only and leaves out BuildDesk's own campaigns."""
    duck = parse(build_report(dataclasses.replace(built["duckdb"][0], home=tmp_path / "d")).read_text())
    pg_cfg = dataclasses.replace(built["postgres"][0], home=tmp_path / "p")
    pg = parse(build_report(pg_cfg).read_text())
    for key in CHARTS:
        assert sorted(pg.titles[key]) == sorted(duck.titles[key]), key
    assert pg.kpis == duck.kpis

    with psycopg.connect(tiny_source[1]) as conn:
        company, leads, open_deals = conn.execute(
            "SELECT c.id::text, (SELECT count(*) FROM leads l WHERE l.company_id = c.id), (SELECT count(*) FROM deals d "
            "WHERE d.company_id = c.id AND d.status IN ('active', 'on_hold')) FROM companies c ORDER BY 2 DESC LIMIT 1"
        ).fetchone()
    path = build_report(pg_cfg, company_id=company)
    assert path.name == f"company-{company}.html"
    one = parse(path.read_text())
    assert chart_lead_count(one) == leads < chart_lead_count(pg)
    assert one.kpis["open deals"] == f"{open_deals:,}"
    assert chart_win_rates(one) == pytest.approx(source_win_rates(tiny_source[1], company), abs=0.051)
    assert "email_engagement" not in one.titles and "email_engagement" in pg.titles


WRITER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
print("open", flush=True)
sys.stdin.readline()
"""


def test_report_errors_say_what_to_do(built, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CRM_HOME", str(tmp_path / "empty"))
    monkeypatch.delenv("CRM_DUCKDB_PATH", raising=False)
    monkeypatch.setenv("CRM_WAREHOUSE", "duckdb")
    assert main(["report"]) == 1
    assert "run `crm-warehouse refresh`" in capsys.readouterr().err.replace("\n", " ")
    assert main(["report", "--company-id", "not-a-uuid"]) == 2

    # a refresh (a writer in another process) holds the file: a clear message, no half-written page
    cfg, _ = built["duckdb"]
    copy = tmp_path / "busy.duckdb"
    shutil.copy(cfg.duckdb_path, copy)
    monkeypatch.setenv("CRM_DUCKDB_PATH", str(copy))
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(copy)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert writer.stdout.readline() == "open\n"
        assert main(["report"]) == 1
        assert "being written by another process" in capsys.readouterr().err.replace("\n", " ")
        assert not (tmp_path / "empty" / "report" / "index.html").exists()
    finally:
        writer.stdin.close()
        writer.wait(30)
    assert main(["report"]) == 0
    assert (tmp_path / "empty" / "report" / "index.html").exists()


def test_data_docs_render_offline_in_headless_chromium(built, chromium, tmp_path):
    """Great Expectations' Data Docs load nothing from the network (their scripts, styles and fonts are
    vendored beside them) and render: jQuery and bootstrap-table run and build the index's and a
    validation page's tables (this machine has no route to the CDNs GE links)."""
    from quality.data_docs_offline import external_resources

    site = built["duckdb"][0].home / "quality_docs" / "gx" / "uncommitted" / "data_docs" / "local_site"
    pages = [site / "index.html", sorted((site / "validations").rglob("*.html"))[0]]
    for page in pages:
        assert external_resources(page.read_text()) == [], page
        dom = run_chromium(chromium, tmp_path, page, "--virtual-time-budget=5000", "--dump-dom")
        assert 'class="bootstrap-table bootstrap4"' in dom, f"{page}: the tables were not built"
    assert (site / "static" / "vendor" / "fontawesome" / "webfonts" / "fa-solid-900.woff2").exists()
    # every validation page names its asset and run, with the run's values in place of the suite's parameters
    import html as _html

    for page in sorted((site / "validations").rglob("*.html")):
        text = _html.unescape(re.sub(r"<[^>]+>", " ", re.sub(r"<script.*?</script>", "", page.read_text(), flags=re.S)))
        text = " ".join(text.split())
        assert re.search(r"Data asset: raw\.\w+", text) and "__none__" not in text and "$PARAMETER" not in text, page
