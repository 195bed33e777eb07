"""The webhook receiver as providers meet it: a real uvicorn server on loopback."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import logging
import secrets
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import uvicorn

from ingest.email_events.landing import read_new_lines
from ingest.email_events.load import ingest_email_events
from ingest.warehouse import DuckDBWarehouse
from ingest.webhooks.app import MAX_BODY_BYTES, Credentials, create_app
from tests.conftest import SAMPLES

PM_USER, PM_PASSWORD = "postmark-hook", "s3cret-Pa55"
RESEND_SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Running:
    def __init__(self, app) -> None:
        self.port = _free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    access_log=False, lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def post(self, path: str, body: bytes, headers: dict[str, str], conn: http.client.HTTPConnection | None = None):
        own = conn is None
        conn = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            if own:
                conn.close()


def _sendgrid_vector():
    body = (SAMPLES / "sendgrid_signed_dropped_body.bin").read_bytes()
    headers = json.loads((SAMPLES / "sendgrid_signed_dropped_headers.json").read_text())
    return body, headers


@pytest.fixture(scope="module")
def server(workdir):
    _, vec = _sendgrid_vector()
    env = {"SENDGRID_WEBHOOK_PUBLIC_KEY": vec["_verification_public_key_base64_DER_SPKI"],
           "POSTMARK_WEBHOOK_USER": PM_USER, "POSTMARK_WEBHOOK_PASSWORD": PM_PASSWORD,
           "RESEND_WEBHOOK_SECRET": RESEND_SECRET}
    landing = workdir / "receiver-landing"
    running = Running(create_app(landing, Credentials.from_env(env)))
    running.landing = landing
    yield running
    running.stop()


def _basic(user=PM_USER, password=PM_PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _svix_headers(body: bytes, ts: int | None = None, msg_id: str | None = None) -> dict[str, str]:
    ts = int(time.time()) if ts is None else ts
    msg_id = msg_id or "msg_" + secrets.token_hex(8)
    key = base64.b64decode(RESEND_SECRET[len("whsec_"):])
    sig = base64.b64encode(hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()).decode()
    return {"svix-id": msg_id, "svix-timestamp": str(ts), "svix-signature": f"v1,{sig}",
            "Content-Type": "application/json"}


def _landing_lines(root: Path) -> list[dict]:
    lines, _ = read_new_lines(root, {})
    return [json.loads(x) for x in lines["line"]]


def test_authenticated_deliveries_land_and_reach_raw_email_events(server, workdir):
    before = len(_landing_lines(server.landing))
    body, vec = _sendgrid_vector()
    sg_headers = {k: v for k, v in vec.items() if not k.startswith("_")} | {"Content-Type": "application/json"}
    assert server.post("/webhooks/sendgrid", body, sg_headers)[0] == 200
    pm_body = (SAMPLES / "postmark_anymail_click_event.json").read_bytes()
    assert server.post("/webhooks/postmark", pm_body, {"Authorization": _basic(), "Content-Type": "application/json"})[0] == 200
    rs_body = (SAMPLES / "resend_docs_email_clicked.json").read_bytes()
    rs_headers = _svix_headers(rs_body, msg_id="msg_e2e_1")
    assert server.post("/webhooks/resend", rs_body, rs_headers)[0] == 200
    landed = _landing_lines(server.landing)[before:]
    assert [d["provider"] for d in landed] == ["sendgrid", "postmark", "resend"]
    assert landed[0]["body"].encode() == body  # the raw body as received, byte for byte
    assert "svix-signature" not in landed[2]["headers"] and landed[2]["headers"]["svix-id"] == "msg_e2e_1"
    wh = DuckDBWarehouse(workdir / "receiver.duckdb")
    r = ingest_email_events(wh, server.landing)
    ids = set(wh.query("SELECT event_id FROM raw.email_events")["event_id"])
    wh.close()
    assert {"ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA", "msg_e2e_1"} <= ids and r.rejected == 0


@pytest.mark.parametrize("provider,headers", [
    ("sendgrid", {"Content-Type": "application/json"}),
    ("sendgrid", {"Content-Type": "application/json", "X-Twilio-Email-Event-Webhook-Signature": "MEUCIQ==",
                  "X-Twilio-Email-Event-Webhook-Timestamp": "1600112502"}),
    ("postmark", {"Content-Type": "application/json"}),
    ("postmark", {"Content-Type": "application/json", "Authorization": "Basic " + base64.b64encode(b"postmark-hook:wrong").decode()}),
    ("resend", {"Content-Type": "application/json"}),
])
def test_unauthenticated_requests_are_refused_and_never_written(server, provider, headers):
    before = len(_landing_lines(server.landing))
    status, _ = server.post(f"/webhooks/{provider}", b'{"RecordType":"Open"}', headers)
    assert status == 401
    assert len(_landing_lines(server.landing)) == before


def test_tampered_and_stale_signatures_are_refused(server):
    body, vec = _sendgrid_vector()
    sg_headers = {k: v for k, v in vec.items() if not k.startswith("_")} | {"Content-Type": "application/json"}
    assert server.post("/webhooks/sendgrid", body.replace(b"hello", b"hellO"), sg_headers)[0] == 401
    rs_body = (SAMPLES / "resend_anymail_opened_event.json").read_bytes()
    assert server.post("/webhooks/resend", rs_body, _svix_headers(rs_body, ts=int(time.time()) - 3600))[0] == 401
    h = _svix_headers(rs_body)
    assert server.post("/webhooks/resend", rs_body + b" ", h)[0] == 401


def test_bad_bodies_get_4xx_and_are_not_written(server):
    before = len(_landing_lines(server.landing))
    auth = {"Authorization": _basic()}
    assert server.post("/webhooks/postmark", b"{}", auth | {"Content-Type": "text/plain"})[0] == 415
    assert server.post("/webhooks/postmark", b"<html>hi</html>", auth | {"Content-Type": "application/json"})[0] == 400
    big = b"[" + b" " * (MAX_BODY_BYTES + 1) + b"]"
    assert server.post("/webhooks/postmark", big, auth | {"Content-Type": "application/json"})[0] == 413
    assert server.post("/webhooks/mailgun", b"{}", auth | {"Content-Type": "application/json"})[0] == 404
    assert len(_landing_lines(server.landing)) == before


def test_malformed_requests_fail_closed_with_a_logged_4xx(server, caplog):
    """A timestamp too large for a float, JSON nested past any parser's depth (validly signed), NaN: each
    a 4xx, logged with the status it was answered with, nothing written."""
    import logging

    before = len(_landing_lines(server.landing))
    caplog.set_level(logging.INFO, logger="crm_warehouse.webhooks")
    body = b'{"type": "email.sent"}'
    huge_ts = _svix_headers(body) | {"svix-timestamp": "9" * 400}
    assert server.post("/webhooks/resend", body, huge_ts)[0] == 401
    deep = b"[" * 100_000 + b"]" * 100_000
    assert server.post("/webhooks/resend", deep, _svix_headers(deep))[0] == 400
    nan = b'{"type": "email.sent", "score": NaN}'
    assert server.post("/webhooks/resend", nan, _svix_headers(nan))[0] == 400
    assert server.post("/webhooks/postmark", b"[Infinity]", {"Authorization": _basic(),
                                                               "Content-Type": "application/json"})[0] == 400
    logged = [r.getMessage() for r in caplog.records if "/webhooks/" in r.getMessage()][-4:]
    assert [m.split()[2] for m in logged] == ["401", "400", "400", "400"], logged
    assert len(_landing_lines(server.landing)) == before


@pytest.mark.parametrize("env", [
    {"RESEND_WEBHOOK_SECRET": "whsec_!!!"}, {"RESEND_WEBHOOK_SECRET": "whsec_"},
    {"POSTMARK_WEBHOOK_USER": "pm", "POSTMARK_WEBHOOK_PASSWORD": ""},
    {"SENDGRID_WEBHOOK_PUBLIC_KEY": "bm90IGEga2V5"},
])
def test_unusable_credentials_refuse_everything_and_say_so(workdir, env):
    creds = Credentials.from_env(env)
    assert len(creds.problems) == 1 and not any(creds.configured().values())
    assert all(v not in creds.problems[0] for v in env.values() if len(v) > 6)  # the value is never echoed
    running = Running(create_app(workdir / "unusable-landing", creds))
    try:
        body = b'{"type": "email.sent"}'
        empty_key_sig = base64.b64encode(hmac.new(b"", b"msg_1.%d." % int(time.time()) + body, hashlib.sha256).digest())
        headers = {"svix-id": "msg_1", "svix-timestamp": str(int(time.time())), "svix-signature": f"v1,{empty_key_sig.decode()}",
                   "Authorization": _basic("pm", ""), "Content-Type": "application/json"}
        for provider in ("sendgrid", "postmark", "resend"):
            assert running.post(f"/webhooks/{provider}", body, headers)[0] == 401, provider
    finally:
        running.stop()
    assert not (workdir / "unusable-landing").exists()


def test_unconfigured_provider_refuses_everything(workdir):
    running = Running(create_app(workdir / "unconfigured-landing", Credentials()))
    try:
        body = (SAMPLES / "postmark_anymail_open_event.json").read_bytes()
        for provider in ("sendgrid", "postmark", "resend"):
            assert running.post(f"/webhooks/{provider}", body, {"Authorization": _basic(), "Content-Type": "application/json"})[0] == 401
        conn = http.client.HTTPConnection("127.0.0.1", running.port, timeout=5)
        conn.request("GET", "/healthz")
        resp = conn.getresponse()
        health = json.loads(resp.read())
        conn.close()
        assert resp.status == 200 and health["providers_configured"] == {"sendgrid": False, "postmark": False, "resend": False}
    finally:
        running.stop()
    assert not (workdir / "unconfigured-landing").exists()


def test_load_every_acknowledged_delivery_is_in_the_landing_zone(server, caplog):
    """3,000 deliveries from 8 concurrent keep-alive clients, bounded in count and time."""
    caplog.set_level(logging.INFO, logger="crm_warehouse.webhooks")
    before = {json.loads(d["body"]).get("MessageID") for d in _landing_lines(server.landing) if d["provider"] == "postmark"}
    template = json.loads((SAMPLES / "postmark_anymail_delivered_event.json").read_text())
    total, clients, deadline = 3000, 8, time.monotonic() + 120

    def client(k: int) -> list[str]:
        acked = []
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        headers = {"Authorization": _basic(), "Content-Type": "application/json"}
        for i in range(k, total, clients):
            if time.monotonic() > deadline:
                break
            msg = f"load-{i:05d}"
            status, _ = server.post("/webhooks/postmark", json.dumps({**template, "MessageID": msg}).encode(), headers, conn)
            if status == 200:
                acked.append(msg)
        conn.close()
        return acked

    t0 = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        acked = [m for part in pool.map(client, range(clients)) for m in part]
    elapsed = time.monotonic() - t0
    landed = [json.loads(d["body"])["MessageID"] for d in _landing_lines(server.landing) if d["provider"] == "postmark"]
    new = [m for m in landed if m not in before]
    assert len(acked) == total, f"only {len(acked)} acknowledged in {elapsed:.1f} s"
    assert sorted(new) == sorted(acked)  # every acknowledged delivery exactly once
    logs = caplog.text
    assert "POST /webhooks/postmark 200" in logs
    assert PM_PASSWORD not in logs and "load-0" not in logs  # no secrets, no bodies in request logs
