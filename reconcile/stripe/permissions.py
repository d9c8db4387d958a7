"""`reconcile check`: can the configured Stripe key read what the job reads?"""

from __future__ import annotations

from collections.abc import Iterator

from reconcile.config import Config
from reconcile.errors import ReconcileError, StripeAuthError
from reconcile.stripe import pull as stripe_pull

# What the job lists, and the restricted-key permission each needs (all read-only).
ENDPOINTS = (
    ("/v1/charges", "Charges: read"),
    ("/v1/balance_transactions", "Balance: read"),
    ("/v1/refunds", "Refunds: read"),
    ("/v1/disputes", "Disputes: read"),
)


def stripe_permissions(config: Config) -> Iterator[tuple[str, bool]]:
    """(line, ok) per endpoint: one `limit=1` list call each."""
    client = stripe_pull.make_client(config.stripe_api_key(), config.stripe)
    policy = stripe_pull.RetryPolicy(max_retries=2, max_total_seconds=30)
    yield "Stripe:", True
    for path, permission in ENDPOINTS:
        try:
            stripe_pull.request(client, path, {"limit": 1}, policy)
            yield f"  {path:<26} ok", True
        except StripeAuthError as error:
            yield f"  {path:<26} DENIED: the key needs '{permission}' ({error})", False
        except ReconcileError as error:
            yield f"  {path:<26} FAILED: {error}", False
