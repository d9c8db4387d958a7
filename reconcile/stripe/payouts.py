"""Payouts from Stripe: those created in a window, those named by id, and the balance transactions
each automatic payout paid out (`GET /v1/balance_transactions?payout=po_...`, every page).

Reads only; decides nothing (decide/payouts.py). A payout's transactions are handed to a fold page by
page as they arrive, never held for the whole payout: one list per payout, the payouts side by side
under the run's budget (reconcile/stripe/fetch.py), each list walked by cursor with the whole-or-stop
page checks of every other list (pull.iter_pages).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial

import stripe

from reconcile.decide.payouts import Payout, PayoutTxn, arrival_day
from reconcile.stripe import fetch
from reconcile.stripe import pull as stripe_pull
from reconcile.stripe.budget import endpoint_of
from reconcile.stripe.wire import Params, StripeObject

PAYOUTS_PATH = "/v1/payouts"
BALANCE_PATH = "/v1/balance_transactions"
# The source of each transaction (the charge, the refund, the dispute ...), and the charge a refund or
# dispute belongs to: its metadata names the order.
ITEMIZE_PARAMS: Params = {"expand": ["data.source", "data.source.charge"]}

# Told each page of a payout's transactions, as they arrive (from several threads at once).
Fold = Callable[[Payout, list[PayoutTxn]], None]


def payout_record(obj: StripeObject) -> Payout:
    """The fields of a payout the job uses (pinned API version's Payout)."""
    trace = obj.get("trace_id")
    arrival = int(obj.get("arrival_date") or 0)
    return Payout(
        id=str(obj["id"]),
        status=str(obj.get("status") or ""),
        amount=int(obj.get("amount") or 0),
        currency=str(obj.get("currency") or "").lower(),
        arrival_date=arrival_day(arrival),
        arrival=arrival,
        created=int(obj.get("created") or 0),
        automatic=bool(obj.get("automatic")),
        reconciliation_status=str(obj.get("reconciliation_status") or ""),
        failure_code=obj.get("failure_code"),
        trace_id=(trace.get("value") if isinstance(trace, dict) else None) or None,
        livemode=bool(obj.get("livemode")),
        failure_balance_transaction=stripe_pull.id_of(obj.get("failure_balance_transaction")),
    )


def payout_txn(txn: StripeObject, metadata_key: str) -> PayoutTxn:
    """A balance transaction of a payout, joined to its charge (for a refund or dispute, the one it
    belongs to) and the order the charge's metadata names."""
    source = txn.get("source")
    charge: StripeObject | None = None
    if isinstance(source, dict):
        if source.get("object") == "charge":
            charge = source
        elif isinstance(source.get("charge"), dict):
            charge = source["charge"]
    charge_id = charge.get("id") if charge else None
    if charge_id is None and isinstance(source, dict):
        charge_id = stripe_pull.id_of(source.get("charge"))
    order_ref = stripe_pull.clean_order_ref((charge.get("metadata") or {}).get(metadata_key)) if charge else None
    return PayoutTxn(
        id=str(txn["id"]),
        type=str(txn.get("type") or ""),
        reporting_category=str(txn.get("reporting_category") or txn.get("type") or ""),
        source_id=stripe_pull.id_of(source),
        charge_id=charge_id,
        order_ref=order_ref,
        currency=str(txn.get("currency") or "").lower(),
        amount=int(txn.get("amount") or 0),
        fee=int(txn.get("fee") or 0),
        net=int(txn.get("net") or 0),
    )


def fetch_payouts(
    client: stripe.StripeClient, since: datetime, until: datetime, policy: stripe_pull.RetryPolicy
) -> list[Payout]:
    """The payouts created in [since, until)."""
    return stripe_pull.fetch_window(client, PAYOUTS_PATH, since, until, payout_record, policy)


def retrieve_payouts(client: stripe.StripeClient, ids: Sequence[str], policy: stripe_pull.RetryPolicy) -> list[Payout]:
    """Payouts by id, in the ids' order (one that no longer exists is skipped)."""
    return stripe_pull.retrieve_objects(client, PAYOUTS_PATH, list(ids), payout_record, policy, step="payouts by id")


def itemize(
    client: stripe.StripeClient,
    payouts: Sequence[Payout],
    metadata_key: str,
    policy: stripe_pull.RetryPolicy,
    fold: Fold,
    finished: Callable[[Payout], None] | None = None,
) -> None:
    """Every balance transaction of each payout, handed to `fold` page by page (payouts side by side);
    `finished` is told when a payout's last page is folded in."""

    def one(payout: Payout) -> None:
        params = {**ITEMIZE_PARAMS, "payout": payout.id}
        for page in stripe_pull.iter_pages(client, BALANCE_PATH, params, policy):
            fold(payout, [payout_txn(t, metadata_key) for t in page])
        if finished is not None:
            finished(payout)

    calls = [partial(one, p) for p in payouts if stripe_pull.SAFE_ID.match(p.id)]
    fetch.run(
        calls, policy, f"{BALANCE_PATH}?payout=", {endpoint_of(BALANCE_PATH): len(calls)}, step="payouts itemized"
    )
