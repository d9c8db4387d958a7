"""`reconcile check`: can the configured Stripe key read what the job reads?

Every endpoint a run of this config will list is probed with one `limit=1` call: charges,
balance transactions, refunds, disputes and payouts always; PaymentIntents and Checkout Sessions when
`matching.link_by` (or an order field) needs them. A missing permission is named; Stripe being
unreachable is said as such (a run would exit 3 too), never mistaken for a setup problem.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import stripe

from reconcile.errors import ReconcileError, ServiceUnavailable, StripeAuthError, StripeKeyRejected
from reconcile.stripe import payments
from reconcile.stripe import pull as stripe_pull

# What the job lists, and the restricted-key permission each needs (all read-only).
ENDPOINTS = (
    ("/v1/charges", "Charges: read"),
    ("/v1/balance_transactions", "Balance: read"),
    ("/v1/refunds", "Refunds: read"),
    ("/v1/disputes", "Disputes: read"),
    ("/v1/payouts", "Payouts: read"),
)
INTENTS = (payments.INTENTS_PATH, "PaymentIntents: read")
SESSIONS = (payments.SESSIONS_PATH, "Checkout Sessions: read")

OK, DENIED, UNREACHABLE, FAILED, REJECTED = "ok", "denied", "unreachable", "failed", "rejected"


@dataclass(frozen=True)
class Probe:
    path: str
    permission: str
    state: str  # OK, DENIED, UNREACHABLE, FAILED or REJECTED
    line: str


def endpoints(linking: payments.Linking) -> list[tuple[str, str]]:
    """The list endpoints a run with these links reads, with the permission each needs."""
    want_intents, want_sessions = payments.wants(linking)
    return [*ENDPOINTS, *([INTENTS] if want_intents else []), *([SESSIONS] if want_sessions else [])]


def stripe_permissions(client: stripe.StripeClient, linking: payments.Linking) -> Iterator[Probe]:
    """One Probe per endpoint; after Stripe proves unreachable, the rest are not tried."""
    policy = stripe_pull.RetryPolicy(max_retries=2, max_total_seconds=30)
    for path, permission in endpoints(linking):
        try:
            stripe_pull.request(client, path, {"limit": 1}, policy)
            yield Probe(path, permission, OK, f"  {path:<26} ok")
        except StripeKeyRejected as error:  # not a permission: the key itself; every endpoint would say the same
            yield Probe(path, permission, REJECTED, f"  {path:<26} REJECTED: {error}")
            return
        except StripeAuthError as error:
            yield Probe(path, permission, DENIED, f"  {path:<26} DENIED: the key needs '{permission}' ({error})")
        except ServiceUnavailable as error:
            yield Probe(path, permission, UNREACHABLE, f"  {path:<26} UNREACHABLE: {error}")
            return
        except ReconcileError as error:
            yield Probe(path, permission, FAILED, f"  {path:<26} FAILED: {error}")
