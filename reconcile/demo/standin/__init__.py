"""A local stand-in for the parts of Stripe's API the reconcile job reads.

Build data with ``StandinStore`` builders, then ``serve(store)`` it over HTTP on loopback
and point the official ``stripe`` SDK at ``srv.url``::

    store = StandinStore(api_key="sk_test_standin")
    store.create_charge(amount=1999, currency="usd", created=1763700000, metadata={"order_id": "o1"})
    with serve(store) as srv:
        client = stripe.StripeClient("sk_test_standin", base_addresses={"api": srv.url})
        client.v1.charges.list({"limit": 100})
"""

from __future__ import annotations

from reconcile.demo.standin.server import FAULTS, StandinServer, mask_key, serve
from reconcile.demo.standin.store import RESOURCES, ApiError, StandinStore, default_fee, settle_amount

__all__ = [
    "FAULTS",
    "RESOURCES",
    "ApiError",
    "StandinServer",
    "StandinStore",
    "default_fee",
    "mask_key",
    "serve",
    "settle_amount",
]
