"""Secrets never leave as text: remembered values, Stripe key shapes, URI credentials, in every log line."""

from __future__ import annotations

import json
import logging

from reconcile.runtime.logs import run_context, setup_logging
from reconcile.runtime.redact import one_line, remember, scrub


def test_stripe_key_shapes_are_masked_whole():
    assert scrub("key sk_live_51Habc_DEF123 failed") == "key sk_live_**** failed"
    assert scrub("Invalid API Key provided: rk_test_************tail") == "Invalid API Key provided: rk_test_****"


def test_uri_credentials_and_remembered_passwords_are_masked():
    remember("mongodb://reconcile:p%40ss-w0rd@db.internal:27017/shop?authSource=admin")
    text = scrub("could not reach mongodb://reconcile:p%40ss-w0rd@db.internal:27017/shop (password p@ss-w0rd)")
    assert "p%40ss-w0rd" not in text and "p@ss-w0rd" not in text and "reconcile:" not in text
    assert scrub("mongodb+srv://user:hunter2@cluster0.example.net/") == "mongodb+srv://****@cluster0.example.net/"


def test_a_remembered_secret_never_reaches_a_log_line(capsys):
    secret = "whsec_or_anything_0f9e8d7c6b"
    remember(secret)
    setup_logging()
    with run_context("run-1"):
        logging.getLogger("reconcile.test").warning("step", extra={"detail": f"value {secret} in an error"})
    line = capsys.readouterr().err.strip()
    assert secret not in line and json.loads(line)["detail"] == "value **** in an error"


def test_one_line_is_scrubbed_and_flat():
    """SDK network errors carry newlines; the CLI's error line and the stored error are one line."""
    text = "Stripe unavailable at /v1/charges: APIConnectionError: Unexpected error.\n\n(Network error: sk_test_abc123)"
    assert (
        one_line(text)
        == "Stripe unavailable at /v1/charges: APIConnectionError: Unexpected error. (Network error: sk_test_****)"
    )
