"""The Stripe stand-in in its own process (so it does not share the job's GIL).

Seeds the bench shop's charges, renders every page piece ahead, serves with the given latency
and rate limits, and prints one JSON line with its URL. Then answers lines on stdin:
``stats`` -> one JSON line (requests, rate_limited, cpu_seconds); end of input -> exit.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

from bench import shop
from reconcile.demo.standin import StandinStore, serve


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--start", type=int, required=True)
    parser.add_argument("--latency", type=float, required=True)
    parser.add_argument("--latency-spread", type=float, default=0.0)
    parser.add_argument("--per-endpoint", type=float, required=True)
    parser.add_argument("--account", type=float, required=True)
    parser.add_argument("--discrepancies", type=int, default=0)
    parser.add_argument("--payment-intents", action="store_true")
    parser.add_argument("--light", action="store_true", help="the stand-in's own objects, not full-size ones")
    args = parser.parse_args()

    started = time.monotonic()
    store = StandinStore(api_key=shop.API_KEY)
    with store.bulk(freeze_gc=True):  # frozen with the rendered pages: the GC never rescans the store
        shop.seed_charges(store, args.n, args.start, args.payment_intents, full_size=not args.light)
        shop.seed_discrepancies(store, args.discrepancies, args.start)
        store.finalize()
        store.prerender()
    limits = {"per_endpoint": args.per_endpoint, "account": args.account}
    with serve(
        store, latency=args.latency, rate_limit=limits, log_requests=False, latency_spread=args.latency_spread
    ) as srv:
        print(json.dumps({"url": srv.url, "seed_seconds": round(time.monotonic() - started, 1)}), flush=True)
        for line in sys.stdin:
            if line.strip() == "stats":
                stats = {"requests": srv.requests, "rate_limited": srv.rate_limited, "cpu_seconds": cpu_seconds()}
                print(json.dumps(stats), flush=True)


if __name__ == "__main__":
    main()
