"""CPU per list page: the job's own cost of one 100-object page of charges with expanded balance
transactions (request through the SDK, parse, page checks, the columns it keeps), measured with the
calling thread's CPU clock against an in-process stand-in (whose server thread's CPU is not counted).

    python -m bench.page_cpu [--pages 40]
"""

from __future__ import annotations

import argparse
import gc
import time
from typing import Any

import stripe

from bench import shop
from reconcile.config import parse_config
from reconcile.decide import columns
from reconcile.demo.standin import StandinStore, serve
from reconcile.stripe import pull as stripe_pull
from reconcile.stripe import slices as pull_plan


def measure(pages: int = 40, full_size: bool = True) -> dict[str, Any]:
    """CPU ms per page, the job's way and the SDK's parse (for comparison), over `pages` pages; the
    size of a charge as served (with its balance transaction expanded, and without)."""
    n = pages * 100
    start = 1_763_700_000
    store = StandinStore(api_key=shop.API_KEY)
    with store.bulk():
        shop.seed_charges(store, n, start, full_size=full_size)
        store.finalize()
    end = shop.charge_created(n - 1, n, start) + 1
    with serve(store, log_requests=False) as srv:
        config = parse_config({"stripe": {"api_base": srv.url}, "mongodb": {"database": "bench"}})
        client = stripe_pull.make_client(shop.API_KEY, config.stripe)
        policy = stripe_pull.RetryPolicy()

        def walk(get: Any) -> tuple[float, int, int]:
            cursor, count, got = None, 0, 0
            cpu = 0.0
            while True:
                params: dict[str, Any] = {
                    "created": {"gte": start, "lt": end},
                    "limit": 100,
                    **stripe_pull.CHARGE_PARAMS,
                }
                if cursor:
                    params["starting_after"] = cursor
                began = time.thread_time()
                page = get(params)
                data = pull_plan.check_page(page, "/v1/charges", start, end, cursor, set())
                cols = columns.pack(stripe_pull.charge_row(c, "order_id") for c in data)
                cpu += time.thread_time() - began
                count += 1
                got += columns.length(cols)
                if not page.get("has_more"):
                    return cpu, count, got
                cursor = data[-1]["id"]

        gc.collect()
        job_cpu, job_pages, job_objects = walk(lambda p: stripe_pull.request(client, "/v1/charges", p, policy))
        # The same pages as the SDK parses them (a client without the job's body-keeping HTTP client).
        plain_http = stripe.StripeClient(shop.API_KEY, base_addresses={"api": srv.url})
        sdk_cpu, sdk_pages, _ = walk(lambda p: plain_http.raw_request("get", "/v1/charges", **p).data)
    page = store.list_page("charge", limit=100, expand={"balance_transaction": {}})
    return {
        "bytes_per_charge": len(page) / 100,
        "bytes_per_charge_unexpanded": len(store.list_page("charge", limit=100)) / 100,
        "pages": job_pages,
        "objects": job_objects,
        "cpu_ms_per_page": job_cpu / job_pages * 1000,
        "sdk_parse_cpu_ms_per_page": sdk_cpu / sdk_pages * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.page_cpu")
    parser.add_argument("--pages", type=int, default=40)
    args = parser.parse_args()
    out = measure(args.pages)
    print(
        f"CPU per 100-object page of charges (expanded balance transactions): {out['cpu_ms_per_page']:.1f} ms "
        f"(the SDK's own parse: {out['sdk_parse_cpu_ms_per_page']:.1f} ms); {out['pages']} pages, "
        f"{out['objects']:,} objects"
    )


if __name__ == "__main__":
    main()
