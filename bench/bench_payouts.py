"""`python -m bench payouts` (or `python -m bench.bench_payouts`): itemizing a month of payouts (issue 22) at a big merchant's volume.

Starts the Stripe stand-in in its own process (latency and rate limits like Stripe's) with N charges
spread over 30 days and one automatic payout a day paying out that day's charges, then, in this process,
lists the payouts and itemizes every one through the job's own code (run/payouts.itemize: one list per
payout, the payouts side by side under the run's budget, each page folded into its totals and the
payouts CSV as it arrives). Prints the balance transactions itemized per second against the ceiling
(the balance endpoint's budget x 100 objects a page) and the peak RSS after the first few payouts and
after all of them: the second should not grow with the number of payouts.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DAYS = 30
DAY = 86400
API_KEY = "sk_test_bench_payouts_0000000000"


def peak_mb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def serve(n: int, start: int, latency: float, per_endpoint: float, account: float) -> None:
    """The stand-in process: N charges over 30 days, a payout a day of that day's charges."""
    from reconcile.demo.standin import StandinStore
    from reconcile.demo.standin import serve as serve_store

    started = time.monotonic()
    store = StandinStore(api_key=API_KEY)
    with store.bulk(freeze_gc=True):
        day_txns: list[list[str]] = [[] for _ in range(DAYS)]
        day_net = [0] * DAYS
        for i in range(n):
            created = start + (i * DAYS * DAY) // n
            charge = store.create_charge(
                amount=1000 + i % 9000, currency="usd", created=created, metadata={"order_id": f"ord_{i:08d}"}
            )
            day = (created - start) // DAY
            txn = charge["balance_transaction"]
            day_txns[day].append(txn)
            day_net[day] += int(store.get(txn)["net"])  # type: ignore[index]
        for day in range(DAYS):
            if day_txns[day]:
                store.create_payout(day_net[day], created=start + (day + 1) * DAY + 3600, transactions=day_txns[day])
        del day_txns
        store.finalize()
        store.prerender()
    limits = {"per_endpoint": per_endpoint, "account": account}
    with serve_store(store, latency=latency, rate_limit=limits, log_requests=False) as srv:
        print(json.dumps({"url": srv.url, "seed_seconds": round(time.monotonic() - started, 1)}), flush=True)
        for _ in sys.stdin:
            pass


def measure(url: str, start: int, per_endpoint: float, account: float, first: int) -> dict[str, Any]:
    """List the month's payouts, itemize the first `first`, then the rest; the rates and peak RSS."""
    from datetime import UTC, datetime, timedelta

    import mongomock

    from reconcile.config import PINNED_API_VERSION, OrdersConfig, StripeConfig
    from reconcile.decide.payouts import PayoutRules
    from reconcile.report.payouts import PayoutCsv
    from reconcile.run import payouts as payouts_run
    from reconcile.stripe import payouts as stripe_payouts
    from reconcile.stripe import pull as stripe_pull
    from reconcile.stripe.budget import Budget
    from reconcile.stripe.payments import Linking

    client = stripe_pull.make_client(API_KEY, StripeConfig(api_base=url, api_version=PINNED_API_VERSION))
    policy = stripe_pull.RetryPolicy(budget=Budget(per_endpoint, account))
    # Orders are joined by the charges' metadata (no MongoDB lookup): the figures are Stripe's and the fold's.
    linking = Linking(metadata_key="order_id", link_by=("charge_metadata",), edge_slack=timedelta(0))
    db: Any = mongomock.MongoClient()["bench"]
    scope = payouts_run.Scope(client, policy, db, "payouts", "items", "orders", OrdersConfig(), linking, PayoutRules())
    since = datetime.fromtimestamp(start, UTC)
    until = datetime.fromtimestamp(start + (DAYS + 2) * DAY, UTC)
    first = first or policy.workers()  # the pages side by side are the baseline; more payouts should add nothing
    t0 = time.monotonic()
    payouts = stripe_payouts.fetch_payouts(client, since, until, policy)
    listed = time.monotonic() - t0
    out: dict[str, Any] = {"payouts": len(payouts), "list_seconds": round(listed, 2)}
    with tempfile.TemporaryDirectory() as tmp:
        for label, part in (("first", payouts[:first]), ("rest", payouts[first:])):
            csv = PayoutCsv(Path(tmp), f"bench-{label}")
            t0 = time.monotonic()
            done = payouts_run.itemize(scope, part, csv)
            seconds = time.monotonic() - t0
            csv.finish()
            txns = sum(i.transactions for i in done.values())
            assert all(i.adds_up(p.amount) for p in part for i in [done[p.id]]), "a payout does not add up"
            out[label] = {
                "payouts": len(part),
                "transactions": txns,
                "seconds": round(seconds, 2),
                "objects_per_second": round(txns / seconds, 1) if seconds else None,
                "peak_rss_mb": peak_mb(),
            }
    ceiling = per_endpoint * 100
    rate = out["rest"]["objects_per_second"] or 0
    out["ceiling_objects_per_second"] = ceiling
    out["ratio_to_ceiling"] = round(rate / ceiling, 3)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench payouts", description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="charges over the 30 days (default 1,000,000)")
    parser.add_argument("--latency", type=float, default=0.2, help="the stand-in's seconds per answer")
    parser.add_argument("--per-endpoint", type=float, default=25.0, help="requests per second per endpoint")
    parser.add_argument("--account", type=float, default=100.0, help="requests per second per account")
    parser.add_argument(
        "--first",
        type=int,
        default=0,
        help="payouts itemized first, the memory baseline (default: as many as run side by side)",
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--start", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    start = args.start if args.start is not None else (int(time.time()) // DAY - DAYS - 3) * DAY
    if args.serve:
        serve(args.n, start, args.latency, args.per_endpoint, args.account)
        return 0
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "bench.bench_payouts", "--serve", "--n", str(args.n), "--start", str(start)]
    command += [
        "--latency",
        str(args.latency),
        "--per-endpoint",
        str(args.per_endpoint),
        "--account",
        str(args.account),
    ]
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline() or "{}")
        if "url" not in ready:
            print(f"the stand-in process ended at start (code {proc.wait()})", file=sys.stderr)
            return 1
        result = measure(ready["url"], start, args.per_endpoint, args.account, args.first)
        result.update({"charges": args.n, "seed_seconds": ready["seed_seconds"], "load_average": os.getloadavg()})
        print(json.dumps(result, indent=2))
        grew = result["rest"]["peak_rss_mb"] - result["first"]["peak_rss_mb"]
        print(
            f"payouts: {result['rest']['objects_per_second']} transactions/s itemized, "
            f"{result['ratio_to_ceiling']:.2f} of the ceiling ({result['ceiling_objects_per_second']:.0f}/s); "
            f"peak RSS {result['first']['peak_rss_mb']} MB after {result['first']['payouts']} payouts, "
            f"{result['rest']['peak_rss_mb']} MB after all {result['payouts']} (+{grew} MB)"
        )
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
