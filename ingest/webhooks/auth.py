"""Each provider's webhook authentication, exactly as the provider specifies it.

- SendGrid Signed Event Webhook: ECDSA P-256 / SHA-256 over ``timestamp + raw body``; the
  signature (base64 DER) and timestamp come in ``X-Twilio-Email-Event-Webhook-Signature`` /
  ``-Timestamp``; the verification key is the base64 DER SubjectPublicKeyInfo SendGrid shows
  (``SENDGRID_WEBHOOK_PUBLIC_KEY``). SendGrid defines no freshness window, so none is applied.
- Resend (Svix / Standard Webhooks): HMAC-SHA256 over ``"{svix-id}.{svix-timestamp}.{body}"``
  with the base64 key after ``whsec_`` (``RESEND_WEBHOOK_SECRET``); ``svix-signature`` holds one
  or more space-separated ``v1,<base64>`` (several during a secret rotation); timestamps more
  than 5 minutes from now are refused (replay protection).
- Postmark: HTTP basic auth with ``POSTMARK_WEBHOOK_USER`` / ``POSTMARK_WEBHOOK_PASSWORD``.

Every check is constant-time where it compares secrets. A provider whose credentials are not
configured refuses everything. Nothing here logs a secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

SVIX_TOLERANCE_S = 5 * 60


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str = ""


OK = Verdict(True)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lower = name.lower()
    for k, v in headers.items():
        if k.lower() == lower:
            return v
    return None


def load_sendgrid_key(key: str) -> ec.EllipticCurvePublicKey:
    key = key.strip()
    if key.startswith("-----BEGIN"):
        pub = load_pem_public_key(key.encode())
    else:
        pub = load_der_public_key(base64.b64decode(key))
    if not isinstance(pub, ec.EllipticCurvePublicKey):
        raise ValueError("SENDGRID_WEBHOOK_PUBLIC_KEY is not an elliptic-curve public key")
    return pub


def verify_sendgrid(public_key: ec.EllipticCurvePublicKey | None, headers: Mapping[str, str], body: bytes) -> Verdict:
    if public_key is None:
        return Verdict(False, "SendGrid webhook key not configured")
    sig = _header(headers, "X-Twilio-Email-Event-Webhook-Signature")
    ts = _header(headers, "X-Twilio-Email-Event-Webhook-Timestamp")
    if not sig or not ts:
        return Verdict(False, "missing SendGrid signature headers")
    try:
        public_key.verify(base64.b64decode(sig), ts.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, binascii.Error, ValueError):
        return Verdict(False, "bad SendGrid signature")
    return OK


def svix_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret; ValueError for one that decodes to no usable key
    (invalid base64 is not skipped over: ``whsec_!!!`` would otherwise be an empty key)."""
    secret = secret.strip()
    if secret.startswith("whsec_"):
        secret = secret[len("whsec_"):]
    try:
        key = base64.b64decode(secret, validate=True)
    except binascii.Error:
        raise ValueError("not base64") from None
    if len(key) < 16:
        raise ValueError("shorter than 16 bytes")
    return key


def verify_svix(key: bytes | None, headers: Mapping[str, str], body: bytes, now: float | None = None) -> Verdict:
    if key is None:
        return Verdict(False, "Resend webhook secret not configured")
    msg_id = _header(headers, "svix-id") or _header(headers, "webhook-id")
    ts = _header(headers, "svix-timestamp") or _header(headers, "webhook-timestamp")
    sigs = _header(headers, "svix-signature") or _header(headers, "webhook-signature")
    if not msg_id or not ts or not sigs:
        return Verdict(False, "missing Svix headers")
    if not ts.isdigit() or len(ts) > 12:  # unix seconds; a 400-digit number would overflow a float
        return Verdict(False, "bad Svix timestamp")
    ts_int = int(ts)
    now = time.time() if now is None else now
    if abs(now - ts_int) > SVIX_TOLERANCE_S:
        return Verdict(False, "stale or future Svix timestamp")
    expected = base64.b64encode(hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest())
    for part in sigs.split():
        version, _, value = part.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected):
            return OK
    return Verdict(False, "bad Svix signature")


def verify_basic(user: str | None, password: str | None, headers: Mapping[str, str]) -> Verdict:
    if not user or not password:  # an empty password would let an empty password through
        return Verdict(False, "Postmark webhook credentials not configured")
    auth = _header(headers, "Authorization") or ""
    scheme, _, value = auth.partition(" ")
    if scheme.lower() != "basic" or not value:
        return Verdict(False, "missing basic auth")
    try:
        given_user, _, given_pw = base64.b64decode(value).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return Verdict(False, "bad basic auth")
    ok_user = hmac.compare_digest(given_user.encode(), user.encode())
    ok_pw = hmac.compare_digest(given_pw.encode(), password.encode())
    return OK if ok_user and ok_pw else Verdict(False, "wrong basic auth credentials")
