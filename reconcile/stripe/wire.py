"""Stripe's JSON as the job holds it before it becomes a row (reconcile/decide/inputs.py).

Only reconcile/stripe/ handles these: each object is reduced to its row as soon as its page arrives,
and nothing past the package sees the raw JSON.
"""

from __future__ import annotations

from typing import Any

# A Stripe object or list page, as parsed from the response body.
StripeObject = dict[str, Any]
# The query of one GET: expand, created, limit, starting_after, a list filter.
Params = dict[str, Any]
