"""Run the stand-in by hand: ``python -m reconcile.demo.standin --port 12111 --api-key sk_test_standin``.

``--charges N`` seeds N succeeded charges (with balance transactions, a few refunds) spread
over the last ``--days`` days, so the SDK or curl have something to page through.
"""

from __future__ import annotations

import argparse
import random
import signal
import threading
import time

from reconcile.demo.standin.server import serve
from reconcile.demo.standin.store import StandinStore


def seed(store: StandinStore, charges: int, days: int, rng: random.Random) -> None:
    """Fill the store with plausible charges, each tied to an ``order_id`` in metadata."""
    now = int(time.time())
    start = now - days * 86400
    for n in range(charges):
        created = rng.randrange(start, now)
        charge = store.create_charge(
            amount=rng.randrange(500, 50000),
            currency="usd",
            created=created,
            metadata={"order_id": f"ord_{n:07d}"},
            billing_email=f"customer{n}@example.com",
        )
        if rng.random() < 0.02:
            store.create_refund(charge["id"], created=created + 3600)
    store.finalize()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m reconcile.demo.standin", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument("--api-key", default="sk_test_standin")
    parser.add_argument("--charges", type=int, default=0, help="seed this many charges")
    parser.add_argument("--days", type=int, default=30, help="spread seeded charges over this many days")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    parser.add_argument(
        "--unordered",
        action="append",
        default=[],
        metavar="TYPE",
        help="serve this object type's lists in no particular order (payment_intent, checkout.session, dispute)",
    )
    args = parser.parse_args(argv)

    store = StandinStore(api_key=args.api_key, seed=args.seed)
    store.unordered.update(args.unordered)
    if args.charges:
        seed(store, args.charges, args.days, random.Random(args.seed))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with serve(store, host=args.host, port=args.port, latency=args.latency) as srv:
        print(f"Stripe stand-in on {srv.url} ({store.count('charge')} charges); Ctrl-C stops it", flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
