"""ASGI app receiving provider webhooks and appending them durably to the landing zone.

``POST /webhooks/{sendgrid|postmark|resend}``: authenticate as the provider specifies
(``ingest.webhooks.auth``), refuse wrong content types (415), oversize bodies (413) and bodies
that are not JSON (400), then append one landing line and ``fsync`` it before answering 200. A
crash after the answer loses nothing; a crash before it lets the provider retry.
``GET /healthz``: liveness and which providers are configured. Request logs carry method, path,
status, size and time: never a body, a header value or a secret.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ingest.webhooks import auth

log = logging.getLogger("crm_warehouse.webhooks")
MAX_BODY_BYTES = 5 * 1024 * 1024  # SendGrid batches stay well below this
KEPT_HEADERS = ("content-type", "user-agent", "svix-id", "svix-timestamp", "webhook-id", "webhook-timestamp",
                "x-twilio-email-event-webhook-timestamp")


@dataclass
class Credentials:
    sendgrid_key: object | None = None
    svix_key: bytes | None = None
    postmark_user: str | None = None
    postmark_password: str | None = None
    # credentials set but unusable: that provider's endpoint refuses everything, and the server says so
    problems: list[str] = field(default_factory=list)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Credentials":
        env = os.environ if env is None else env
        sg = env.get("SENDGRID_WEBHOOK_PUBLIC_KEY") or None
        rs = env.get("RESEND_WEBHOOK_SECRET") or None
        problems = []
        key = svix = None
        try:
            key = auth.load_sendgrid_key(sg) if sg else None
        except (ValueError, TypeError) as err:  # never echo the value
            problems.append(f"SENDGRID_WEBHOOK_PUBLIC_KEY is not a usable public key ({type(err).__name__}): "
                            "/webhooks/sendgrid refuses every request")
        try:
            svix = auth.svix_key(rs) if rs else None
        except ValueError as err:
            problems.append(f"RESEND_WEBHOOK_SECRET is not a whsec_<base64> secret ({err}): /webhooks/resend "
                            "refuses every request")
        user, password = env.get("POSTMARK_WEBHOOK_USER") or None, env.get("POSTMARK_WEBHOOK_PASSWORD") or None
        if bool(user) != bool(password):
            problems.append("POSTMARK_WEBHOOK_USER and POSTMARK_WEBHOOK_PASSWORD must both be set and non-empty: "
                            "/webhooks/postmark refuses every request")
            user = password = None
        return cls(key, svix, user, password, problems)

    def configured(self) -> dict[str, bool]:
        return {"sendgrid": self.sendgrid_key is not None, "postmark": bool(self.postmark_user and self.postmark_password),
                "resend": self.svix_key is not None}


@dataclass
class LandingWriter:
    """Appends landing lines, one file per provider and hour, named for this process."""

    root: Path
    writer_id: str = field(default_factory=lambda: f"recv-{socket.gethostname()}-{os.getpid()}")
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def append(self, provider: str, received: dt.datetime, headers: dict[str, str], body: str) -> Path:
        line = json.dumps({"provider": provider, "received_at": received.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                           "headers": headers, "body": body}, ensure_ascii=False, separators=(",", ":"))
        path = self.root / provider / f"dt={received:%Y-%m-%d}" / f"{received:%H}-{self.writer_id}.ndjson"
        data = (line + "\n").encode("utf-8")
        with self._lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
        return path


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def create_app(landing_dir: Path, credentials: Credentials, *, clock=time.time) -> Starlette:
    writer = LandingWriter(Path(landing_dir))

    def check(provider: str, headers: Mapping[str, str], body: bytes) -> auth.Verdict:
        if provider == "sendgrid":
            return auth.verify_sendgrid(credentials.sendgrid_key, headers, body)
        if provider == "resend":
            return auth.verify_svix(credentials.svix_key, headers, body, now=clock())
        return auth.verify_basic(credentials.postmark_user, credentials.postmark_password, headers)

    async def receive(request: Request) -> JSONResponse:
        t0 = time.perf_counter()
        provider = request.path_params["provider"]
        status, message, size = 500, "internal error", 0  # what the log says unless a branch sets it
        try:
            if provider not in ("sendgrid", "postmark", "resend"):
                status, message = 404, "unknown provider"
                return JSONResponse({"error": message}, status_code=status)
            length = request.headers.get("content-length")
            if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
                status, message = 413, "body too large"
                return JSONResponse({"error": message}, status_code=status)
            body = b""
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    status, message = 413, "body too large"
                    return JSONResponse({"error": message}, status_code=status)
            size = len(body)
            verdict = check(provider, request.headers, body)
            if not verdict.ok:
                status, message = 401, verdict.reason
                return JSONResponse({"error": "unauthorized"}, status_code=status)
            ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype != "application/json":
                status, message = 415, "content type must be application/json"
                return JSONResponse({"error": message}, status_code=status)
            try:
                text = body.decode("utf-8")
                json.loads(text, parse_constant=_no_constant)
            except (UnicodeDecodeError, ValueError, RecursionError):
                # not JSON; NaN / Infinity (not JSON either); nesting deeper than a parser should follow
                status, message = 400, "body is not JSON"
                return JSONResponse({"error": message}, status_code=status)
            kept = {k: request.headers[k] for k in KEPT_HEADERS if k in request.headers}
            writer.append(provider, dt.datetime.fromtimestamp(clock(), tz=dt.timezone.utc), kept, text)
            status, message = 200, "ok"
            return JSONResponse({"ok": True})
        except Exception:
            log.exception("webhook delivery to %s failed", request.url.path)
            return JSONResponse({"error": "internal error"}, status_code=500)
        finally:
            log.info("%s %s %s %dB %.1fms %s", request.method, request.url.path, status, size,
                     1000 * (time.perf_counter() - t0), "" if status == 200 else message)

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "providers_configured": credentials.configured(),
                             "landing_dir": str(landing_dir)})

    return Starlette(routes=[
        Route("/webhooks/{provider}", receive, methods=["POST"]),
        Route("/healthz", health, methods=["GET"]),
    ])
