"""Keep secrets out of every line the job prints: log lines, error messages, exceptions.

Two nets: the exact values read from the environment (the Stripe key, the MongoDB URI and its
password), and patterns for anything shaped like a Stripe secret key or a URI with credentials.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

MASK = "****"
# The tail after the prefix, including the stars and last characters Stripe echoes in errors.
_KEY_PATTERN = re.compile(r"\b([sr]k_(?:live|test)_)[A-Za-z0-9_*]+")
_URI_CREDENTIALS = re.compile(r"\b(mongodb(?:\+srv)?://)[^@/\s]*@", re.IGNORECASE)
_lock = threading.Lock()
_known: set[str] = set()


def remember(secret: str) -> None:
    """Scrub this value (and, for a URI, its password) from everything printed from now on."""
    values = {secret}
    try:
        password = urlsplit(secret).password
    except ValueError:
        password = None
    if password:
        values |= {password, unquote(password)}
    with _lock:
        _known.update(v for v in values if len(v) >= 4)


def scrub(text: str) -> str:
    """`text` with every known secret, Stripe key and URI credential masked."""
    if not text:
        return text or ""
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, MASK)
    text = _KEY_PATTERN.sub(r"\1" + MASK, text)
    return _URI_CREDENTIALS.sub(r"\1" + MASK + "@", text)


# A value of Stripe's error object or a server's error code the job may repeat: an identifier, nothing
# else (no spaces, no @, no slash: never a sentence, an email or an expiry date).
_TOKEN = re.compile(r"^[A-Za-z0-9_.\-\[\]]{1,100}$")
_NETWORK_ERROR = re.compile(r"Network error: ([A-Za-z_][A-Za-z0-9_.]{0,80})")


def _token(value: object) -> str | None:
    return value if isinstance(value, str) and _TOKEN.match(value) else None


def stripe_facts(exc: BaseException) -> str:
    """What the job says of a Stripe error: the HTTP status, Stripe's error type, code and param, and the
    request id (what Stripe's support asks for). Never the message or the body: a page cut short by a
    middlebox, a proxy's error page, or a message echoing input can hold card data and customers' emails."""
    parts = []
    status = getattr(exc, "http_status", None)
    if isinstance(status, int):
        parts.append(f"HTTP {status}")
    error = getattr(exc, "error", None)  # Stripe's JSON error object, None when the body was not one
    for label, value in (
        ("", getattr(error, "type", None)),
        ("code ", getattr(exc, "code", None) or getattr(error, "code", None)),
        ("param ", getattr(error, "param", None)),
    ):
        if _token(value):
            parts.append(f"{label}{value}")
    if error is None and getattr(exc, "http_body", None):
        parts.append("an answer that is not Stripe's JSON (not shown)")
    network = _NETWORK_ERROR.search(str(getattr(exc, "user_message", None) or ""))
    if network:
        parts.append(f"network error {network.group(1)}")
    request_id = None
    # For an unreadable body the SDK (stripe 16, _interpret_response) passes the response headers in the
    # json_body position: look there too.
    for headers in (getattr(exc, "headers", None), None if error is not None else getattr(exc, "json_body", None)):
        if isinstance(headers, Mapping) and request_id is None:
            request_id = next((v for k, v in headers.items() if str(k).lower() == "request-id"), None)
    if _token(request_id):
        parts.append(f"request {request_id}")
    return ", ".join(parts)


def mongo_facts(exc: BaseException) -> str:
    """A MongoDB server error as its code name and number: its message can quote documents (a duplicate
    key names the values, a failed validation the document)."""
    details = getattr(exc, "details", None) or {}
    name = _token(details.get("codeName")) if isinstance(details, dict) else None
    code = getattr(exc, "code", None)
    return f"{name or type(exc).__name__} (code {code})" if code is not None else (name or type(exc).__name__)


def smtp_facts(exc: BaseException) -> str:
    """An SMTP failure as its reply code, or the operating system's reason: a server's reply can echo
    the message it refused."""
    code = getattr(exc, "smtp_code", None)
    if isinstance(code, int):
        return f"{type(exc).__name__}: code {code}"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    return type(exc).__name__


def exception_text(exc: BaseException) -> str:
    """Any exception as one safe line: Stripe, MongoDB and SMTP errors by their facts only; others (a
    bug) by type and scrubbed message, cut short."""
    module = type(exc).__module__ or ""
    if module.startswith("stripe"):
        return f"{type(exc).__name__} ({stripe_facts(exc)})"
    if module.startswith(("pymongo", "bson")):
        return mongo_facts(exc)
    if module.startswith("smtplib"):
        return smtp_facts(exc)
    return f"{type(exc).__name__}: {one_line(str(exc))[:300]}"


def one_line(text: str) -> str:
    """`text` scrubbed and on one line (SDK messages carry newlines; an error is one line for cron mail and logs)."""
    return " ".join(scrub(text).split())


_HOST_PORT = re.compile(r"host='([^']+)', port=(\d+)")
_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\"()\]\[]+)")
# (text in a driver's message, the cause in a few words); first match wins.
_CAUSES = (
    ("CERTIFICATE_VERIFY_FAILED", "its TLS certificate is not trusted"),
    ("SSLError", "TLS handshake failed"),
    ("timed out", "timed out"),
    ("Name or service not known", "host name not found"),
    ("Temporary failure in name resolution", "host name not found (DNS)"),
    ("nodename nor servname", "host name not found"),
    ("RemoteDisconnected", "the server closed the connection"),
    ("Connection aborted", "the connection was cut"),
    ("Connection reset", "the connection was reset"),
    ("connection closed", "the connection was closed"),
    ("connection pool paused", "the connection was lost"),
)


def network_host(text: str) -> str | None:
    """`host:port` named in a requests/urllib3 error message, if any."""
    match = _HOST_PORT.search(text or "")
    return f"{match.group(1)}:{match.group(2)}" if match else None


def network_cause(text: str) -> str:
    """The cause of a connection failure in a few words, from a driver's (often long) message."""
    for needle, cause in _CAUSES:
        if needle in (text or ""):
            return cause
    match = _ERRNO.search(text or "")
    if match:
        return match.group(1).strip().rstrip(".").lower()
    return "no connection"
