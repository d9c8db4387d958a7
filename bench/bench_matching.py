"""Time the pure join (match.link + classify) on synthetic frames, and the process's peak RSS;
prints figures, asserts nothing.

    PYTHONPATH=. python bench/bench_matching.py [N]      # default 1,000,000 orders

The inputs are built as the job builds them: columns (a list per field, short strings shared,
reconcile/decide/columns.py), framed, the columns dropped; the peak RSS printed is the whole
process's (interpreter and libraries included) over building, framing, link and classify, and then
(Linux) the peak counted afresh from the framed inputs: what link and classify add.

A third of the shop uses each integration style (charge metadata, PaymentIntent metadata,
Checkout client_reference_id); 1% of orders are stuck, 5% have no charge.
"""

from __future__ import annotations

import gc
import resource
import sys
import time

from reconcile.config import LINK_KINDS
from reconcile.decide import classify as c
from reconcile.decide import match
from reconcile.decide.columns import Columns, length, share

NOW = 1_800_000_000


def build(n: int) -> tuple[Columns, Columns, Columns, Columns]:
    orders: Columns = {}
    charges: Columns = {}
    intents: Columns = {}
    sessions: Columns = {}

    def put(cols: Columns, row: dict) -> None:
        for name, value in row.items():
            cols.setdefault(name, []).append(share(value))

    for i in range(n):
        key, style, amount = f"{i:024x}", i % 3, 1000 + i % 5000
        put(
            orders,
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
            },
        )
        if i % 20 == 7:
            continue
        pi = f"pi_{i:021d}" if style else None
        put(
            charges,
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
            },
        )
        if style:
            put(
                intents,
                {
                    "pi_id": pi,
                    "created": NOW - 7001,
                    "status": "succeeded",
                    "amount": amount,
                    "currency": "usd",
                    "order_ref": key if style == 1 else None,
                },
            )
        if style == 2:
            put(
                sessions,
                {
                    "session_id": f"cs_{i:021d}",
                    "created": NOW - 7002,
                    "status": "complete",
                    "payment_status": "paid",
                    "client_reference_id": key,
                    "payment_intent": pi,
                },
            )
    return orders, charges, intents, sessions


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_mb(field: str = "VmRSS") -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return 0.0


def reset_peak() -> bool:
    """Start the kernel's peak-RSS count (VmHWM) afresh from now (Linux)."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    orders, charges, intents, sessions = build(n)
    sizes = (length(orders), length(charges), length(intents), length(sessions))
    gc.collect()
    print(f"inputs as columns: {current_mb():,.0f} MB resident")
    started = time.perf_counter()
    frames = (
        c.orders_frame(orders),
        c.charges_frame(charges),
        match.intents_frame(intents),
        match.sessions_frame(sessions),
    )
    del orders, charges, intents, sessions  # the job drops its columns once framed
    gc.collect()
    built = time.perf_counter()
    framed_mb = current_mb()
    fresh_peak = reset_peak()
    rules = c.Rules(
        pending_status="created",
        paid_statuses=("accepted",),
        failed_status="failed",
        grace_seconds=900,
        now=NOW,
        link_by=LINK_KINDS,
    )
    links = match.link(frames[1], frames[0], frames[2], frames[3], rules.link_by)
    linked = time.perf_counter()
    result = c.classify(frames[0], frames[1], rules, frames[2], frames[3])
    done = time.perf_counter()
    print("orders {:,}  charges {:,}  payment intents {:,}  sessions {:,}".format(*sizes))
    print(
        f"frames {built - started:6.2f} s   link {linked - built:6.2f} s   classify (incl. link) {done - linked:6.2f} s"
    )
    print(
        "linked charges:",
        int(links.charges["order_key"].notna().sum()),
        " outcomes:",
        {o: n for o, n in c.outcome_counts(result, len(frames[0])).items() if n},
    )
    print(
        f"resident after framing {framed_mb:,.0f} MB; peak RSS of the process {rss_mb():,.0f} MB "
        f"(link + classify {done - built:.2f} s)"
    )
    if fresh_peak:
        print(
            f"peak RSS from the framed inputs through link and classify: {current_mb('VmHWM'):,.0f} MB "
            f"(+{current_mb('VmHWM') - framed_mb:,.0f} MB over the frames)"
        )


if __name__ == "__main__":
    main()
