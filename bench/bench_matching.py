"""Time the pure join (match.link + classify) on synthetic frames; prints figures, asserts nothing.

    PYTHONPATH=. python bench/bench_matching.py [N]      # default 1,000,000 orders

A third of the shop uses each integration style (charge metadata, PaymentIntent metadata,
Checkout client_reference_id); 1% of orders are stuck, 5% have no charge.
"""

from __future__ import annotations

import sys
import time

from reconcile.decide import classify as c
from reconcile.decide import match

NOW = 1_800_000_000


def build(n: int) -> tuple[list[dict], list[dict], list[dict], list[dict]]:
    orders, charges, intents, sessions = [], [], [], []
    for i in range(n):
        key, style, amount = f"{i:024x}", i % 3, 1000 + i % 5000
        orders.append(
            {
                "order_id": key,
                "order_key": key,
                "status": "accepted" if i % 100 else "created",
                "amount": amount,
                "currency": "usd",
                "created": NOW - 7200 - i % 80000,
                "stored_charge_id": None,
                "email": f"c{i}@example.com",
                "problem": None,
            }
        )
        if i % 20 == 7:
            continue
        pi = f"pi_{i:021d}" if style else None
        charges.append(
            {
                "charge_id": f"ch_{i:021d}",
                "created": NOW - 7000 - i % 80000,
                "status": "succeeded",
                "captured": True,
                "amount": amount,
                "amount_captured": amount,
                "amount_refunded": 0,
                "refunded": False,
                "disputed": False,
                "currency": "usd",
                "order_ref": key if style == 0 else None,
                "payment_intent": pi,
                "description": None,
                "email": f"c{i}@example.com",
                "livemode": False,
                "failure_code": None,
                "settlement_currency": "usd",
                "settlement_amount": amount,
                "exchange_rate": None,
                "in_window": True,
            }
        )
        if style:
            intents.append(
                {
                    "pi_id": pi,
                    "created": NOW - 7001,
                    "status": "succeeded",
                    "amount": amount,
                    "currency": "usd",
                    "order_ref": key if style == 1 else None,
                }
            )
        if style == 2:
            sessions.append(
                {
                    "session_id": f"cs_{i:021d}",
                    "created": NOW - 7002,
                    "status": "complete",
                    "payment_status": "paid",
                    "client_reference_id": key,
                    "payment_intent": pi,
                }
            )
    return orders, charges, intents, sessions


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    orders, charges, intents, sessions = build(n)
    started = time.perf_counter()
    frames = (
        c.orders_frame(orders),
        c.charges_frame(charges),
        match.intents_frame(intents),
        match.sessions_frame(sessions),
    )
    built = time.perf_counter()
    rules = c.Rules(
        pending_status="created",
        paid_statuses=("accepted",),
        failed_status="failed",
        grace_seconds=900,
        now=NOW,
        link_by=match.LINK_KINDS,
    )
    links = match.link(frames[1], frames[0], frames[2], frames[3], rules.link_by)
    linked = time.perf_counter()
    result = c.classify(frames[0], frames[1], rules, frames[2], frames[3])
    done = time.perf_counter()
    print(f"orders {n:,}  charges {len(charges):,}  payment intents {len(intents):,}  sessions {len(sessions):,}")
    print(
        f"frames {built - started:6.2f} s   link {linked - built:6.2f} s   classify (incl. link) {done - linked:6.2f} s"
    )
    print(
        "linked charges:",
        int(links.charges["order_key"].notna().sum()),
        " outcomes:",
        result["outcome"].value_counts().to_dict(),
    )


if __name__ == "__main__":
    main()
