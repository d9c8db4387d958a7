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
