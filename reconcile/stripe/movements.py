"""Refunds and disputes from Stripe: those created in a window, or named ones as they are now.

Each row carries its charge's row (expanded, or fetched when not); decide/movements.py judges them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

import stripe

from reconcile.decide.inputs import MovementRow
from reconcile.stripe import pull as stripe_pull
from reconcile.stripe import slices as pull_plan
from reconcile.stripe.wire import StripeObject

log = logging.getLogger(__name__)


def movement_row(obj: StripeObject, metadata_key: str) -> MovementRow:
    """The fields of a refund or dispute the job uses, with its charge's row when expanded."""
    charge = obj.get("charge")
    evidence = obj.get("evidence_details") or {}
    return {
        "object": obj.get("object"),
        "object_id": obj["id"],
        "created": int(obj["created"]),
        "status": obj.get("status"),
        "amount": int(obj.get("amount") or 0),
        "currency": (obj.get("currency") or "").lower(),
        "reason": obj.get("reason"),
        "failure_reason": obj.get("failure_reason"),
        "due_by": evidence.get("due_by"),
        "charge_id": stripe_pull.id_of(charge),
        "charge": stripe_pull.charge_row(charge, metadata_key) if isinstance(charge, dict) else None,
    }


def fetch_movements(
    client: stripe.StripeClient,
    since: datetime,
    until: datetime,
    metadata_key: str,
    policy: stripe_pull.RetryPolicy,
) -> list[MovementRow]:
    """Refunds and disputes created in [since, until), each with its charge (fetched when not expanded)."""

    def row(obj: StripeObject) -> MovementRow:
        return movement_row(obj, metadata_key)

    params = {"expand": ["data.charge"]}
    refunds, disputes = pull_plan.side_by_side(
        [  # independent endpoints, each its own budget
            lambda: stripe_pull.fetch_window(client, "/v1/refunds", since, until, row, policy, params),
            lambda: stripe_pull.fetch_window(client, "/v1/disputes", since, until, row, policy, params),
        ],
        policy.abort,
    )
    rows = list({row["object_id"]: row for row in refunds + disputes}.values())  # one listed twice counts once
    _fill_charges(client, rows, metadata_key, policy)
    return rows


def retrieve_movements(
    client: stripe.StripeClient,
    refs: Iterable[tuple[str, str]],
    metadata_key: str,
    policy: stripe_pull.RetryPolicy,
) -> list[MovementRow]:
    """Refunds and disputes by (object, id), as they are now; a vanished one is skipped."""
    paths = {"refund": "/v1/refunds", "dispute": "/v1/disputes"}
    wanted = [
        (kind, object_id) for kind, object_id in refs if kind in paths and stripe_pull.SAFE_ID.match(object_id or "")
    ]
    found = stripe_pull.get_many(  # side by side under the budget, in the refs' order
        client,
        [(f"{paths[kind]}/{object_id}", {"expand": ["charge"]}) for kind, object_id in wanted],
        policy,
        "movements",
        step="refunds and disputes by id",
    )
    rows = []
    for (_, object_id), obj in zip(wanted, found, strict=True):
        if obj is None:
            log.warning("movements.missing", extra={"object_id": object_id})
        else:
            rows.append(movement_row(obj, metadata_key))
    _fill_charges(client, rows, metadata_key, policy)
    return rows


def _fill_charges(
    client: stripe.StripeClient, rows: list[MovementRow], key: str, policy: stripe_pull.RetryPolicy
) -> None:
    wanted = sorted({r["charge_id"] for r in rows if r["charge"] is None and r["charge_id"]})
    if not wanted:
        return
    found = {c["charge_id"]: c for c in stripe_pull.retrieve_charges(client, wanted, key, policy)}
    for r in rows:
        if r["charge"] is None:
            r["charge"] = found.get(r["charge_id"] or "")  # "": no charge id, no charge
