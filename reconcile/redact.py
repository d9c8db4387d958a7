"""Keep secrets out of every line the job prints: log lines, error messages, exceptions.

Two nets: the exact values read from the environment (the Stripe key, the MongoDB URI and its
password), and patterns for anything shaped like a Stripe secret key or a URI with credentials.
"""

from __future__ import annotations

import re
import threading
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
