"""Email provider events: parsing every real sample, provider authentication, landing and loading."""

from __future__ import annotations

import base64
import datetime as dt
import json
import shutil
import time
from pathlib import Path

import polars as pl
import pytest

from ingest.email_events.landing import read_new_lines
from ingest.email_events.load import ingest_email_events
from ingest.email_events.model import BOUNCE_CLASSES, EVENT_TYPES
from ingest.email_events.parse import parse_delivery, parse_lines
from ingest.warehouse import DuckDBWarehouse, PostgresWarehouse
from ingest.webhooks import auth
from tests.conftest import SAMPLES, new_database

JSON_SAMPLES = sorted(p for p in SAMPLES.glob("*.json") if not p.name.endswith("_headers.json"))


def utc(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize("path", JSON_SAMPLES, ids=lambda p: p.stem)
def test_every_sample_parses(path: Path):
    provider = path.name.split("_")[0]
    raw = json.loads(path.read_text())
    n_events = len(raw) if isinstance(raw, list) else 1
    r = parse_delivery(provider, path.read_text(), received_at="2024-01-01T00:00:00Z")
    assert r.rejects.height == 0, r.rejects["reason"].to_list()
    assert r.events.height + r.duplicates == n_events
    ev = r.events
    assert set(ev["event_type"]) <= set(EVENT_TYPES)
    assert ev["occurred_at"].null_count() == 0 and ev["event_id"].null_count() == 0
    assert set(ev["bounce_class"].drop_nulls()) <= set(BOUNCE_CLASSES)
    assert (ev["provider"] == provider).all()
    for payload in ev["payload"]:
        json.loads(payload)  # the original event is kept as JSON


def _one(provider: str, body, **kw) -> dict:
    r = parse_delivery(provider, body if isinstance(body, str) else json.dumps(body), **kw)
    assert r.rejects.height == 0, r.rejects["reason"].to_list()
    return r.events.row(0, named=True)


def test_sendgrid_quirks():
    ms = _one("sendgrid", (SAMPLES / "sendgrid_docs_singlesend_open_millisecond_timestamp.json").read_text())
    assert ms["occurred_at"] == utc(2020, 6, 9, 18, 19, 12, 372000)
    sec = _one("sendgrid", (SAMPLES / "sendgrid_docs_open.json").read_text())
    assert sec["occurred_at"] == utc(2017, 12, 15, 0, 59, 29) and sec["tags"] == ["cat facts"]
    assert sec["provider_message_id"] == "14c5d75ce93.dfd.64b469"  # X-Message-Id keeps its dots
    arr = _one("sendgrid", (SAMPLES / "sendgrid_anymail_processed_event.json").read_text())
    assert arr["tags"] == ["tag1", "tag2"]
    text_ts = _one("sendgrid", (SAMPLES / "sendgrid_docs_reserved_key_override.json").read_text())
    assert text_ts["occurred_at"] == utc(1973, 11, 29, 21, 33, 9)  # "123456789" as a string
    blocked = _one("sendgrid", (SAMPLES / "sendgrid_docs_bounce_blocked.json").read_text())
    assert (blocked["event_type"], blocked["bounce_class"]) == ("bounce", "block")
    from_smtp = _one("sendgrid", (SAMPLES / "sendgrid_anymail_dropped_invalid_event.json").read_text())
    assert from_smtp["provider_message_id"] == "wrfRRvF7Q0GgwUo2CvDmEA"
    machine = _one("sendgrid", [{"email": "a@b.co", "timestamp": 1700000000, "event": "open", "sg_event_id": "x1",
                                 "sg_message_id": "abc.filter1", "sg_machine_open": True}])
    assert machine["is_machine_open"] is True
    human = _one("sendgrid", (SAMPLES / "sendgrid_docs_open.json").read_text())
    assert human["is_machine_open"] is False
    no_id = (SAMPLES / "sendgrid_docs_click_with_unique_args.json").read_text()
    assert _one("sendgrid", no_id)["event_id"] == _one("sendgrid", no_id)["event_id"]  # stable composite


def test_postmark_quirks():
    d = _one("postmark", (SAMPLES / "postmark_anymail_delivered_event.json").read_text())
    assert d["occurred_at"] == utc(2014, 8, 1, 17, 28, 10, 273539)  # -04:00 offset, 7 fraction digits
    b = _one("postmark", (SAMPLES / "postmark_anymail_bounce_event.json").read_text())
    assert (b["event_type"], b["bounce_class"], b["event_id"]) == ("bounce", "hard", "pm-901542550")
    o = _one("postmark", (SAMPLES / "postmark_anymail_open_event.json").read_text())
    assert o["event_id"].startswith("pm:") and o["occurred_at"] == utc(2016, 4, 27, 20, 21, 41, 249368)
    c = _one("postmark", (SAMPLES / "postmark_anymail_click_event.json").read_text())
    assert c["url"] == "https://example.com/click/me" and c["ip"] == "8.8.8.8"
    ch = _one("postmark", (SAMPLES / "postmark_docs_subscription_change.json").read_text())
    assert ch["occurred_at"] == utc(2020, 2, 1, 10, 53, 34, 416071)
    no_time = _one("postmark", (SAMPLES / "postmark_anymail_bounce_unsubscribe_variant.json").read_text(),
                   received_at="2024-03-01T12:00:00Z")
    assert no_time["event_type"] == "unsubscribe" and no_time["occurred_at"] == utc(2024, 3, 1, 12)


def test_resend_quirks():
    o = _one("resend", (SAMPLES / "resend_anymail_opened_event.json").read_text(), headers={"svix-id": "msg_abc"})
    assert o["occurred_at"] == utc(2023, 9, 28, 17, 20, 38, 990000)  # top-level, not data.created_at
    assert o["event_id"] == "msg_abc"
    sent = _one("resend", (SAMPLES / "resend_anymail_sent_event.json").read_text())
    assert sent["tags"] == ["tag1:Tag_1_value", "tag2:Tag_2_value"] and sent["recipient"] == "to@example.org"
    listed = json.loads((SAMPLES / "resend_docs_email_clicked.json").read_text())
    listed["data"]["tags"] = [{"name": "category", "value": "confirm_email"}]
    assert _one("resend", listed)["tags"] == ["category:confirm_email"]
    click = _one("resend", (SAMPLES / "resend_docs_email_clicked.json").read_text())
    assert (click["url"], click["ip"]) == ("https://resend.com", "122.115.53.11")
    assert _one("resend", (SAMPLES / "resend_anymail_hard_bounced_event.json").read_text())["bounce_class"] == "hard"
    assert _one("resend", (SAMPLES / "resend_anymail_suppressed_event.json").read_text())["event_type"] == "dropped"


def test_unknown_shapes_and_broken_lines_are_rejected_with_reasons():
    lines = [
        json.dumps({"provider": "sendgrid", "received_at": "2024-01-01T00:00:00Z", "headers": {}, "body": '[{"event":'}),
        '{"provider":"postmark","received_at":"2024-01-01T00:00:00Z","headers":{},"body":"<html>502</html>"}',
        json.dumps({"provider": "postmark", "received_at": None, "headers": {}, "body": json.dumps({"Record": "Open"})}),
        json.dumps({"provider": "resend", "received_at": None, "headers": {},
                    "body": json.dumps({"type": "contact.created", "created_at": "2024-01-01T00:00:00Z", "data": {}})}),
        json.dumps({"provider": "mailgun", "received_at": None, "headers": {}, "body": "{}"}),
        '{"provider":"sendgrid","received_at":"2024-01-01T00:00:00Z","headers":{},"body":"[{\\"ev',
    ]
    r = parse_lines(pl.DataFrame({"source_file": ["f.ndjson"] * len(lines), "source_line": range(1, 7), "line": lines}))
    reasons = dict(zip(r.rejects["source_line"], r.rejects["reason"]))
    assert r.events.height == 0 and len(reasons) == 6
    assert reasons[1] == "body is not JSON" and reasons[2] == "body is not JSON"
    assert reasons[3] == "Postmark record without RecordType"
    assert reasons[4] == "unknown Resend event type contact.created"
    assert reasons[5] == "unknown provider mailgun"
    assert reasons[6] == "landing line is not a JSON object"
    assert r.rejects.filter(pl.col("source_line") == 6)["raw_text"][0] == lines[5]


# ------------------------------------------------------------------------------------- authentication


def _vector(name: str) -> tuple[bytes, dict]:
    return (SAMPLES / f"{name}_body.bin").read_bytes(), json.loads((SAMPLES / f"{name}_headers.json").read_text())


@pytest.mark.parametrize("name", ["sendgrid_signed_dropped", "sendgrid_signed_nodejs_vector"])
def test_sendgrid_signature_vectors(name):
    body, headers = _vector(name)
    key = auth.load_sendgrid_key(headers["_verification_public_key_base64_DER_SPKI"])
    assert auth.verify_sendgrid(key, headers, body).ok
    tampered = bytes([body[0] ^ 1]) + body[1:]
    assert not auth.verify_sendgrid(key, headers, tampered).ok
    assert not auth.verify_sendgrid(key, {**headers, "X-Twilio-Email-Event-Webhook-Timestamp": "1"}, body).ok
    assert not auth.verify_sendgrid(None, headers, body).ok
    other = auth.load_sendgrid_key(_vector("sendgrid_signed_nodejs_vector" if "dropped" in name else "sendgrid_signed_dropped")[1]
                                   ["_verification_public_key_base64_DER_SPKI"])
    assert not auth.verify_sendgrid(other, headers, body).ok


def test_svix_signature_vector_rotation_and_staleness():
    body, headers = _vector("svix_standardwebhooks_test_vector")
    key = auth.svix_key(headers["_secret"])
    ts = int(headers["svix-timestamp"])
    assert auth.verify_svix(key, headers, body, now=ts).ok
    assert not auth.verify_svix(key, headers, body + b" ", now=ts).ok
    assert not auth.verify_svix(key, headers, body, now=ts + 6 * 60).ok  # stale
    assert not auth.verify_svix(key, headers, body, now=ts - 6 * 60).ok  # from the future
    rotated = {**headers, "svix-signature": "v1,bm90IHRoZSByaWdodCBvbmU= " + headers["svix-signature"]}
    assert auth.verify_svix(key, rotated, body, now=ts).ok
    assert not auth.verify_svix(key, {**headers, "svix-signature": "v1,bm90IHRoZSByaWdodCBvbmU="}, body, now=ts).ok
    assert not auth.verify_svix(None, headers, body, now=ts).ok


def test_postmark_basic_auth():
    good = {"Authorization": "Basic " + base64.b64encode(b"hook:pa:ss").decode()}
    assert auth.verify_basic("hook", "pa:ss", good).ok
    assert not auth.verify_basic("hook", "other", good).ok
    assert not auth.verify_basic("hook", "pa:ss", {}).ok
    assert not auth.verify_basic(None, None, good).ok


# ------------------------------------------------------------------------------------- loading


def _copy_landing(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse(request, pg_server, workdir):
    if request.param == "duckdb":
        path = workdir / f"wh-{time.monotonic_ns()}.duckdb"
        wh = DuckDBWarehouse(path)
    else:
        wh = PostgresWarehouse(new_database(pg_server, f"wh_{time.monotonic_ns()}"))
    yield wh
    wh.close()


def test_load_landing_zone_idempotently(warehouse, tiny_source, workdir):
    landing = _copy_landing(tiny_source[0].email_events_dir, workdir / f"landing-{time.monotonic_ns()}")
    lines, _ = read_new_lines(landing, {})
    expected = parse_lines(lines)
    r1 = ingest_email_events(warehouse, landing)
    assert r1.events_new == expected.events.height > 1000 and r1.rejected == 0
    stored = warehouse.query("SELECT provider, event_id FROM raw.email_events")
    assert stored.height == expected.events.height == stored.unique().height
    r2 = ingest_email_events(warehouse, landing)
    assert (r2.lines_read, r2.events_new) == (0, 0)
    assert warehouse.query("SELECT count(*) AS n FROM raw.email_events")["n"][0] == stored.height
    # what the mart layer will join on: every delivered event names a message id and a UTC time
    bad = warehouse.query("SELECT count(*) AS n FROM raw.email_events WHERE provider_message_id IS NULL OR occurred_at IS NULL")
    assert bad["n"][0] == 0


def test_duplicates_malformed_and_lines_still_being_written(warehouse, workdir):
    landing = workdir / f"landing-{time.monotonic_ns()}"
    f = landing / "resend" / "dt=2024-11-22" / "23-test.ndjson"
    f.parent.mkdir(parents=True)
    body = (SAMPLES / "resend_docs_email_clicked.json").read_text()
    good = json.dumps({"provider": "resend", "received_at": "2024-11-22T23:41:13Z", "headers": {"svix-id": "msg_1"}, "body": body})
    retry = json.dumps({"provider": "resend", "received_at": "2024-11-22T23:45:00Z", "headers": {"svix-id": "msg_1"}, "body": body})
    f.write_text(good + "\n" + retry + "\n" + "{not json\n" + good[:40])  # last line still being written
    r = ingest_email_events(warehouse, landing)
    assert (r.lines_read, r.events_new, r.duplicates, r.rejected) == (3, 1, 1, 1)
    q = warehouse.query("SELECT source_file, source_line, reason, raw_text FROM quarantine.email_events")
    assert q.rows() == [("resend/dt=2024-11-22/23-test.ndjson", 3, "landing line is not a JSON object", "{not json")]
    with open(f, "a") as fh:  # the writer finishes its line; a retry arrives later still
        fh.write(good[40:] + "\n" + retry + "\n")
    r = ingest_email_events(warehouse, landing)
    assert (r.lines_read, r.events_new, r.duplicates) == (2, 0, 2)
    assert warehouse.query("SELECT count(*) AS n FROM raw.email_events")["n"][0] == 1
    assert warehouse.query("SELECT count(*) AS n FROM quarantine.email_events")["n"][0] == 1


def test_events_breaking_the_contract_are_quarantined_with_the_rule(warehouse, workdir):
    """Well-formed deliveries whose event breaks raw.email_events' suite (quality.contract): an event
    dated a day after its delivery arrived, a recipient that is no e-mail address. The good one loads."""
    landing = workdir / f"landing-contract-{time.monotonic_ns()}"
    f = landing / "resend" / "dt=2023-09-28" / "17-test.ndjson"
    f.parent.mkdir(parents=True)
    sample = json.loads((SAMPLES / "resend_anymail_clicked_event.json").read_text())
    odd = json.loads(json.dumps(sample))
    odd["data"]["to"] = ["not-an-address"]
    lines = [{"provider": "resend", "received_at": "2023-09-27T00:00:00Z", "headers": {"svix-id": "msg_early"},
              "body": json.dumps(sample)},
             {"provider": "resend", "received_at": "2023-09-28T17:22:00Z", "headers": {"svix-id": "msg_odd"},
              "body": json.dumps(odd)},
             {"provider": "resend", "received_at": "2023-09-28T17:22:00Z", "headers": {"svix-id": "msg_good"},
              "body": json.dumps(sample)}]
    f.write_text("".join(json.dumps(x) + "\n" for x in lines))
    r = ingest_email_events(warehouse, landing)
    assert (r.lines_read, r.events_new, r.rejected) == (3, 1, 2)
    assert r.rule_failures == {"order:occurred_at<=received_at": 1, "format:recipient": 1}
    q = warehouse.query("SELECT source_line, reason FROM quarantine.email_events ORDER BY source_line")
    assert q.rows() == [(1, "contract: occurred_at is after the delivery was received"),
                        (2, "contract: recipient is not an e-mail address")]
    assert warehouse.query("SELECT event_id FROM raw.email_events")["event_id"].to_list() == ["msg_good"]
    checks = warehouse.query("SELECT check_name, passed, failing_count FROM ops.check_results "
                             "WHERE asset = 'raw/email_events' AND NOT passed ORDER BY check_name")
    assert checks.rows() == [("format:recipient", False, 1), ("order:occurred_at<=received_at", False, 1)]


def test_crash_before_commit_leaves_state_and_next_run_completes(workdir, tiny_source, monkeypatch):
    import ingest.email_events.load as load

    landing = _copy_landing(tiny_source[0].email_events_dir, workdir / f"landing-{time.monotonic_ns()}")
    wh = DuckDBWarehouse(workdir / f"crash-{time.monotonic_ns()}.duckdb")
    original = load.parse_lines

    def crash(*a, **k):
        original(*a, **k)
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(load, "parse_lines", crash)
    with pytest.raises(KeyboardInterrupt):
        ingest_email_events(wh, landing)
    monkeypatch.setattr(load, "parse_lines", original)
    assert wh.query("SELECT count(*) AS n FROM raw.email_events")["n"][0] == 0
    assert wh.query("SELECT count(*) AS n FROM ops.email_landing_files")["n"][0] == 0
    r = ingest_email_events(wh, landing)
    assert r.events_new > 0
    assert wh.query("SELECT count(*) - count(DISTINCT (provider, event_id)) AS d FROM raw.email_events")["d"][0] == 0
    wh.close()


def test_a_backlog_larger_than_the_chunk_loads_in_chunks_with_bounded_memory(workdir, tiny_source, monkeypatch):
    """The landing zone is read in chunks: a backlog of many chunks loads exactly what one read would,
    a run killed after some chunks keeps them and the next goes on from their offsets, and the memory
    held while reading is the chunk's, not the backlog's."""
    import tracemalloc

    import ingest.email_events.load as load
    from ingest.email_events.landing import landing_files, new_line_chunks

    landing = _copy_landing(tiny_source[0].email_events_dir, workdir / f"landing-{time.monotonic_ns()}")
    backlog = sum(f.stat().st_size for f in landing_files(landing))
    chunk = 256 * 1024
    assert backlog > 8 * chunk
    everything, _ = read_new_lines(landing, {})
    chunks = list(new_line_chunks(landing, {}, chunk))
    assert len(chunks) >= backlog // chunk
    assert pl.concat([c for c, _ in chunks]).equals(everything)
    longest = max(len(t.encode()) for t in everything["line"]) + 1
    for lines, _ in chunks:  # no chunk holds more than its size (plus the line that crossed it)
        assert sum(len(t.encode()) + 1 for t in lines["line"]) < chunk + longest

    def peak(root: Path, max_bytes: int) -> int:
        tracemalloc.start()
        try:
            for _lines, _marks in new_line_chunks(root, {}, max_bytes):
                pass
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    doubled = _copy_landing(landing, workdir / f"landing-doubled-{time.monotonic_ns()}")
    for f in landing_files(doubled):  # the same files, each twice as long (the file list is the same size)
        f.write_bytes(f.read_bytes() * 2)
    small, large = peak(landing, chunk), peak(doubled, chunk)
    assert large < small * 1.25, f"twice the backlog: {large:,} bytes held against {small:,}"
    assert peak(doubled, 2 * backlog) > 3 * large  # what one read of everything holds

    whole = DuckDBWarehouse(workdir / f"whole-{time.monotonic_ns()}.duckdb")
    ingest_email_events(whole, landing)
    wh = DuckDBWarehouse(workdir / f"chunked-{time.monotonic_ns()}.duckdb")
    original, calls = load.parse_lines, []

    def killed_at_the_fourth_chunk(lines):
        calls.append(lines.height)
        if len(calls) == 4:
            raise KeyboardInterrupt("kill -9 in the fourth chunk")
        return original(lines)

    monkeypatch.setattr(load, "parse_lines", killed_at_the_fourth_chunk)
    with pytest.raises(KeyboardInterrupt):
        ingest_email_events(wh, landing, chunk_bytes=chunk)
    assert wh.scalar("SELECT count(*) FROM raw.email_events") > 0  # three chunks committed
    assert wh.scalar("SELECT sum(lines) FROM ops.email_landing_files") == sum(calls[:3])
    monkeypatch.setattr(load, "parse_lines", original)
    seen = []
    r = ingest_email_events(wh, landing, chunk_bytes=chunk, progress=seen.append)
    assert r.lines_read == everything.height - sum(calls[:3]) and len(seen) >= 2
    q = "SELECT provider, event_id, event_type, occurred_at FROM raw.email_events ORDER BY 1, 2"
    assert wh.query(q).equals(whole.query(q))
    assert wh.scalar("SELECT count(*) FROM ops.ingest_batches WHERE asset = 'raw/email_events'") == 2
    wh.close()
    whole.close()


def test_dagster_asset_materializes_into_the_warehouse(tiny_source, workdir, monkeypatch):
    import dagster as dg

    from orchestration.defs.email.assets import EMAIL_EVENTS_KEY
    from orchestration.defs.ingest.assets import raw_tables
    from orchestration.resources import CrmWarehouse

    home = workdir / f"dagster-{time.monotonic_ns()}"
    monkeypatch.setenv("CRM_HOME", str(workdir / "not-this-one"))  # the resource's config wins over the environment
    crm = CrmWarehouse(home=str(home), email_events_dir=str(tiny_source[0].email_events_dir), warehouse="duckdb")
    with dg.DagsterInstance.ephemeral() as instance:  # entered: the load context reads the current instance
        result = dg.materialize([raw_tables], selection=[EMAIL_EVENTS_KEY], resources={"crm": crm}, instance=instance)
    assert result.success
    mats = result.asset_materializations_for_node("raw_tables")
    assert [m.asset_key for m in mats] == [EMAIL_EVENTS_KEY]
    meta = mats[0].metadata
    assert meta["events_new"].value > 1000 and meta["quarantined"].value == 0
    wh = DuckDBWarehouse(home / "warehouse.duckdb")
    n = wh.query("SELECT count(*) AS n FROM raw.email_events")["n"][0]
    wh.close()
    assert n == meta["events_new"].value
    by_type = meta["new_by_provider_and_type"].value
    assert {"sendgrid/open", "postmark/delivered", "resend/click"} <= set(by_type)


def test_demo_command_summarizes_source_and_loads_events(tiny_source, workdir, monkeypatch, capsys):
    from crm_warehouse.cli import main

    home = workdir / f"demo-{time.monotonic_ns()}"
    monkeypatch.setenv("CRM_HOME", str(home))
    monkeypatch.setenv("CRM_SOURCE_URL", tiny_source[1])
    monkeypatch.setenv("CRM_EMAIL_EVENTS_DIR", str(tiny_source[0].email_events_dir))
    monkeypatch.delenv("CRM_WAREHOUSE", raising=False)
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "lead_activities" in out and "raw.email_events" in out and str(home / "warehouse.duckdb") in out
    assert "open pipeline value" in out
    assert f"file://{home / 'report' / 'index.html'}" in out and (home / "report" / "index.html").stat().st_size > 10_000
    assert f"file://{home / 'docs' / 'index.html'}" in out and (home / "docs" / "index.html").exists()
    assert "crm-warehouse sql" in out and "crm-warehouse ui" in out  # how to open each, with what the project installs
    wh = DuckDBWarehouse(home / "warehouse.duckdb")
    assert wh.query("SELECT count(*) AS n FROM raw.email_events")["n"][0] > 1000
    assert wh.query("SELECT count(*) AS n FROM raw.leads")["n"][0] == 500
    wh.close()
