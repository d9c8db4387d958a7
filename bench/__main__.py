"""`python -m bench`: the reconcile job at a big merchant's volume, with the figures the targets name.

Starts the Stripe stand-in in its own process (latency and rate limits like Stripe's) and an
embedded MongoDB wire-protocol server, seeds N charges (with balance transactions) and N orders
(1 in 100 stuck), then measures:

- a sequential `auto_paging_iter` pull of a slice of the charges (the usual way, for comparison);
- the job itself (the real `reconcile` command in its own process, budget = the stand-in's limits)
  over the whole window: pull objects/s and its ratio to the rate ceiling and to the sequential
  pull, load, join + classify, repairs, peak RSS of the job's process;
- an hourly run over the window's last hour (nothing left to repair);
- the steady state: the day before the window (a few hundred discrepancies) run first so open items
  exist, then the hourly run re-checking up to 200 of them: its seconds, the re-check's, retrieves in
  flight at most, and its ratio to the floor (the hour's list pages at the rate ceiling plus the
  retrieves side by side at the per-endpoint limit); `--scenario steady` runs only this;
- the job's CPU per 100-object list page of charges (bench/page_cpu.py);
- repairing stuck orders in bulk against one update per order, on the same MongoDB server.

It says when the stand-in (or the job's own CPU) looks like the bottleneck. The machine may be
shared: the load average is printed with the figures.

`python -m bench payouts [--n N]`: a month of payouts itemized instead (bench/bench_payouts.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pymongo
import stripe
from pymongo import UpdateOne

from bench import shop

ROOT = Path(__file__).resolve().parent.parent
ENDPOINTS = ("/v1/charges", "/v1/balance_transactions")


# --------------------------------------------------------------------------- helpers


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kb = int(
            next(row for row in Path("/proc/meminfo").read_text().splitlines() if row.startswith("MemTotal")).split()[1]
        )
    except (OSError, StopIteration, ValueError):
        mem_kb = 0
    return {
        "cpu": model or platform.processor(),
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 2**20, 1),
        "python": platform.python_version(),
        "stripe_sdk": stripe.VERSION,
        "pandas": pd.__version__,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def iso(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%S")


class Standin:
    """The stand-in process: started, asked for its counters, stopped."""

    def __init__(
        self,
        n: int,
        start: int,
        latency: float,
        per_endpoint: float,
        account: float,
        discrepancies: int = 0,
        payment_intents: bool = False,
        light: bool = False,
        latency_spread: float = 0.0,
    ) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.standin_proc",
                "--n",
                str(n),
                "--start",
                str(start),
                "--latency",
                str(latency),
                "--latency-spread",
                str(latency_spread),
                "--per-endpoint",
                str(per_endpoint),
                "--account",
                str(account),
                "--discrepancies",
                str(discrepancies),
                *(["--payment-intents"] if payment_intents else []),
                *(["--light"] if light else []),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )

    def _line(self) -> dict[str, Any]:
        assert self.proc.stdout is not None  # opened as a pipe
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the stand-in process ended (code {self.proc.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def ready(self) -> dict[str, Any]:
        return self._line()

    def stats(self) -> dict[str, Any]:
        assert self.proc.stdin is not None  # opened as a pipe
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        return self._line()

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None  # opened as a pipe
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def seed_orders(db: Any, n: int, start: int, discrepancies: int = 0) -> float:
    began = time.monotonic()
    db.orders.drop()
    batch = 5000
    for first in range(0, n, batch):
        db.orders.insert_many(list(shop.order_docs(n, start, first, min(n, first + batch))), ordered=False)
    if discrepancies:
        db.orders.insert_many(list(shop.discrepancy_order_docs(discrepancies, start)), ordered=False)
    db.orders.create_index("created_at")
    db.orders.create_index("charge_id")
    return time.monotonic() - began


def sequential_pull(url: str, start: int, until: int) -> tuple[int, float]:
    """The usual way: SDK objects, one page after another, with the job's expansion."""
    client = stripe.StripeClient(shop.API_KEY, base_addresses={"api": url}, max_network_retries=3)
    began = time.monotonic()
    pages = client.v1.charges.list(
        {"limit": 100, "created": {"gte": start, "lt": until}, "expand": ["data.balance_transaction"]}
    )
    count = 0
    for _ in pages.auto_paging_iter():
        count += 1
    return count, time.monotonic() - began


def run_job(
    workdir: Path,
    name: str,
    url: str,
    mongo_uri: str,
    since: int,
    until: int,
    per_endpoint: float,
    account: float,
    recheck_limit: int | None = None,
) -> dict[str, Any]:
    """The real `reconcile` command in its own process; its log lines, summary, wall time and rusage.
    Its config sets the budget at the stand-in's limits."""
    config = workdir / f"{name}.toml"
    config.write_text(
        f'[stripe]\napi_base = "{url}"\nrequests_per_second = {per_endpoint}\n'
        f"account_requests_per_second = {account}\n"
        f'[mongodb]\ndatabase = "bench"\n[orders]\nemail_field = "email"\n'
        f'[report]\ndir = "{workdir / "reports"}"\n'
        + (f"recheck_limit = {recheck_limit}\n" if recheck_limit is not None else "")
    )
    summary, err = workdir / f"{name}.summary.json", workdir / f"{name}.log"
    env = dict(os.environ, PYTHONPATH=str(ROOT), STRIPE_API_KEY=shop.API_KEY, MONGODB_URI=mongo_uri)
    began = time.monotonic()
    with open(err, "w") as stderr, open(workdir / f"{name}.out", "w") as stdout:
        # BENCH_MEMRAY=DIR: the job runs under memray (a profiling aid; pip install memray), its capture in DIR.
        profile = os.environ.get("BENCH_MEMRAY")
        wrap = ["-m", "memray", "run", "-q", "-f", "-o", str(Path(profile) / f"{name}.bin")] if profile else []
        proc = subprocess.Popen(
            [
                sys.executable,
                *wrap,
                "-c",
                "import sys; from reconcile.cli import main; sys.argv[0] = 'reconcile'; main()",
                "--config",
                str(config),
                "--since",
                iso(since),
                "--until",
                iso(until),
                "--summary-json",
                str(summary),
            ],
            stdout=stdout,
            stderr=stderr,
            env=env,
            cwd=workdir,
        )
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - began
    code = os.waitstatus_to_exitcode(status)
    lines = []
    for line in err.read_text().splitlines():
        try:
            lines.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    if code not in (0, 1):
        tail = "\n".join(err.read_text().splitlines()[-5:])
        raise RuntimeError(f"the {name} run exited {code}:\n{tail}")
    done = next(rec for rec in lines if rec.get("step") == "run.done")
    pulled = next(rec for rec in lines if rec.get("step") == "pull.done")
    per_endpoint_pull = {
        rec["path"]: rec for rec in lines if rec.get("step") == "pull.page_set" and rec.get("path") in ENDPOINTS
    }
    fetches = [rec for rec in lines if rec.get("step") == "fetch.done"]
    list_requests: dict[str, int] = {}
    for rec in lines:
        if rec.get("step") == "pull.page_set":
            list_requests[rec["path"]] = list_requests.get(rec["path"], 0) + rec["requests"]
    return {
        "exit_code": code,
        "wall_seconds": wall,
        "list_requests": list_requests,
        "rechecked": next((rec for rec in lines if rec.get("step") == "items.rechecked"), None),
        "fetches": fetches,
        "steps": done["seconds"],
        "counts": done["counts"],
        "peak_by_step": done.get("peak_rss_mb", {}),
        "charges": pulled["charges"],
        "balance_transactions": pulled["balance_transactions"],
        "window_load_seconds": pulled.get("orders_in_window_seconds"),  # None: read after the pull
        "per_endpoint": per_endpoint_pull,
        "slowed": sum(1 for rec in lines if rec.get("step") == "budget.slowed"),
        "rate_limited": sum(1 for rec in lines if rec.get("step") == "stripe.rate_limited"),
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": usage.ru_maxrss / 1024,
    }


def beside(run: dict[str, Any]) -> str:
    """Where the window's orders were read: beside the pull (how long), or after it (too many)."""
    seconds = run["window_load_seconds"]
    if seconds is None:
        return "the window's orders read after the pull (too many to hold beside it)"
    return f"the window's orders read beside the pull in {seconds:.1f} s"


def repairs_comparison(mongo_uri: str, count: int) -> dict[str, float]:
    """The same compare-and-set changes with their audit records: bulk (the job's way) vs one by one."""
    from reconcile.config import parse_config
    from reconcile.decide import classify as c
    from reconcile.run import settings
    from reconcile.store import repair

    db: Any = pymongo.MongoClient(mongo_uri, tz_aware=True)["bench_repairs"]
    config = parse_config({"mongodb": {"database": "bench_repairs"}})
    ids = [shop.order_id(i) for i in range(count)]
    outcomes = pd.DataFrame(
        {
            "outcome": c.REPAIRED,
            "order_key": [str(i) for i in ids],
            "order_id": ids,
            "charge_id": [shop.charge_id(i) for i in range(count)],
            "charge_created": 1_763_700_000,
            "stored_charge_id": None,
            "amount": 1000,
            "currency": "usd",
        }
    )

    def seed() -> None:
        db.orders.drop()
        db.reconcile_audit.drop()
        for first in range(0, count, 5000):
            db.orders.insert_many(
                [
                    {
                        "_id": i,
                        "status": "created",
                        "amount": 1000,
                        "currency": "usd",
                        "created_at": datetime(2026, 11, 20),
                    }
                    for i in ids[first : first + 5000]
                ]
            )

    now = datetime.now(UTC)
    seed()
    began = time.monotonic()
    store = settings.repair_store(db, config)
    done = repair.apply_repairs(store, outcomes, "bench-bulk", now)
    bulk = time.monotonic() - began
    assert len(done.repaired) == count and db.reconcile_audit.count_documents({}) == count

    seed()
    began = time.monotonic()
    for row in outcomes.itertuples(index=False):
        cas, update, audit = repair._planned_change(row, store, "bench-single", now, {})
        if db.orders.update_one(cas, update).modified_count:
            db.reconcile_audit.insert_one(audit)
    single = time.monotonic() - began
    assert db.orders.count_documents({"status": "accepted"}) == count

    # The server's own ceiling: the same number of trivial writes (a one-field `$set` by _id), in one
    # unordered bulk against one round trip each. No client can beat this ratio for the same writes.
    seed()
    trivial = [UpdateOne({"_id": i}, {"$set": {"touched": 1}}) for i in ids]
    began = time.monotonic()
    db.orders.bulk_write(trivial, ordered=False)
    trivial_bulk = time.monotonic() - began
    began = time.monotonic()
    for i in ids:
        db.orders.update_one({"_id": i}, {"$set": {"touched": 2}})
    trivial_single = time.monotonic() - began
    db.client.drop_database("bench_repairs")
    return {
        "orders": count,
        "bulk_seconds": bulk,
        "one_by_one_seconds": single,
        "speedup": single / bulk,
        "trivial_bulk_ms": trivial_bulk / count * 1000,
        "trivial_single_ms": trivial_single / count * 1000,
        "server_ceiling": trivial_single / trivial_bulk,
    }


def steady_state(
    workdir: Path,
    standin: Standin,
    url: str,
    mongo_uri: str,
    start: int,
    end: int,
    rate: float,
    account_rate: float,
    recheck_limit: int,
) -> dict[str, Any]:
    """The run cron makes every hour, once earlier runs have left open items: the day before the shop's
    window (its discrepancies) is run first, so items exist; then the last hour, re-checking up to
    `recheck_limit` of them. Its floor: the hour's list pages at the rate ceiling, plus the retrieves
    side by side at the per-endpoint limit."""
    day = run_job(workdir, "day-before", url, mongo_uri, start - 86_400, start, rate, account_rate)
    before = standin.stats()
    hour = run_job(workdir, "steady-hour", url, mongo_uri, end - 3600, end, rate, account_rate, recheck_limit)
    after = standin.stats()
    requests = after["requests"] - before["requests"]
    lists = hour["list_requests"]
    listed = sum(lists.values())
    retrieves = requests - listed  # by id, and the short filtered lists that stand for retrieves
    list_floor = max([n / rate for n in lists.values()] + [listed / account_rate])
    fetches = hour["fetches"]
    per_endpoint: dict[str, int] = {}  # the fetcher's requests by budget endpoint (fetch.done lines)
    for f in fetches:
        for endpoint, count in (f.get("endpoints") or {}).items():
            per_endpoint[endpoint] = per_endpoint.get(endpoint, 0) + count
    # Side by side, each endpoint at its own limit, all within the account's.
    retrieve_floor = max([n / rate for n in per_endpoint.values()] + [retrieves / account_rate])
    floor = list_floor + retrieve_floor
    recheck = next((f for f in fetches if f.get("what") == "re-check"), None)
    # Retrieves in flight: the fetches of single requests (a composite call, e.g. the re-check's two
    # halves, names no endpoints).
    in_flight = max([f["in_flight_max"] for f in fetches if f.get("endpoints")] + [0])
    return {
        "day_before": {"wall_seconds": day["wall_seconds"], "open_items": day["counts"]},
        "hour": hour,
        "wall_seconds": hour["wall_seconds"],
        # The run's own lap when it has one (the re-check as a step), else the fetcher's line.
        "recheck_seconds": hour["steps"].get("recheck", recheck["seconds"] if recheck else None),
        "rechecked": hour["rechecked"],
        "requests": requests,
        "list_requests": listed,
        "retrieves": retrieves,
        "retrieves_by_endpoint": per_endpoint,
        "retrieves_in_flight_max": in_flight,
        "floor_seconds": floor,
        "list_floor_seconds": list_floor,
        "retrieve_floor_seconds": retrieve_floor,
        "ratio_to_floor": hour["wall_seconds"] / floor if floor else None,
        "standin_429s": after["rate_limited"] - before["rate_limited"],
        "cpu_ms_per_request": hour["cpu_seconds"] / max(1, requests) * 1000,
    }


def print_steady(steady: dict[str, Any]) -> None:
    hour = steady["hour"]
    print(
        f"\nsteady-state hourly run ({hour['charges']:,} charges in the hour, open items from the day before): "
        f"{steady['wall_seconds']:.1f} s wall, exit {hour['exit_code']}; re-check "
        + (f"{steady['recheck_seconds']:.1f} s" if steady["recheck_seconds"] is not None else "not run")
        + f"; retrieves in flight at most {steady['retrieves_in_flight_max']}"
    )
    checked = steady["rechecked"] or {}
    print(
        f"  re-checked {checked.get('items', 0)} items ({checked.get('still_open', 0)} still open, "
        f"{checked.get('resolved', 0)} resolved); the day before's run: {steady['day_before']['wall_seconds']:.1f} s"
    )
    print(
        f"  requests: {steady['list_requests']:,} list pages + {steady['retrieves']:,} retrieves "
        f"({', '.join(f'{k} {v}' for k, v in steady['retrieves_by_endpoint'].items())}); floor "
        f"{steady['floor_seconds']:.1f} s (lists at the ceiling {steady['list_floor_seconds']:.1f} s + retrieves "
        f"at the per-endpoint limit {steady['retrieve_floor_seconds']:.1f} s) -> {steady['ratio_to_floor']:.2f}x the "
        f"floor; stand-in answered {steady['standin_429s']} 429s; job CPU {steady['cpu_ms_per_request']:.1f} ms "
        "per request"
    )
    print("  steps: " + ", ".join(f"{k} {v:.1f}" for k, v in hour["steps"].items()))


# --------------------------------------------------------------------------- the run


class _Done(Exception):
    """The chosen scenario is done: skip to the figures' end."""


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    if args_in[:1] == ["payouts"]:  # `python -m bench payouts [...]`: a month of payouts itemized (issue 22)
        from bench import bench_payouts

        return bench_payouts.main(args_in[1:])
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--n", type=int, help="charges and orders (default 200000; 50000 with --scenario steady: over an hour)"
    )
    parser.add_argument(
        "--scenario",
        choices=("all", "steady", "job"),
        default="all",
        help="all (default): every figure; steady: the page CPU and the steady-state hourly run only; "
        "job: the page CPU and the job over the whole window only (its memory at a million)",
    )
    parser.add_argument("--discrepancies", type=int, default=320, help="open items left by the day before")
    parser.add_argument("--recheck-limit", type=int, default=200, help="the steady-state run's report.recheck_limit")
    parser.add_argument("--latency", type=float, default=0.3, help="stand-in seconds per request (default 0.3)")
    parser.add_argument(
        "--latency-spread",
        type=float,
        default=0.0,
        help="each request's latency spread log-normally around --latency with this sigma (default 0: fixed; "
        "0.5 gives a long tail: 1 request in 100 takes over 2.8x the mean)",
    )
    parser.add_argument("--rate", type=float, default=25, help="stand-in requests/s per endpoint (default 25)")
    parser.add_argument("--account-rate", type=float, default=100, help="stand-in requests/s per account (default 100)")
    parser.add_argument("--sequential-pages", type=int, default=20, help="pages in the sequential slice (default 20)")
    parser.add_argument("--repairs", type=int, default=10_000, help="stuck orders in the bulk/single comparison")
    parser.add_argument(
        "--payment-intents",
        action="store_true",
        help="every charge made by its own PaymentIntent, as the PaymentIntents API does (default: the charges "
        "name none, as the issue-14 figures were taken)",
    )
    parser.add_argument(
        "--light",
        action="store_true",
        help="the stand-in's own, lighter charges (~2.2 KB; the figures before issue 21) instead of full-size "
        "ones (~2.5 KB, ~2.9 KB with the balance transaction expanded: every field of Stripe's example charge)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(args_in)

    info = machine()
    n = args.n or (50_000 if args.scenario == "steady" else 200_000)
    end = int(time.time()) // 60 * 60 - 60
    start = end - shop.span_seconds(n)
    print(
        f"machine: {info['cpu']}, {info['cores']} cores, {info['memory_gb']} GB; Python {info['python']}, "
        f"stripe {info['stripe_sdk']}, pandas {info['pandas']}; load average {info['load_average']}",
        flush=True,
    )
    print(
        f"shop: {n:,} charges + {n:,} balance transactions + {n:,} orders over {shop.span_seconds(n) / 3600:.1f} h "
        f"({shop.PER_DAY:,} charges a day); stand-in: {args.latency * 1000:.0f} ms a request"
        + (f" (spread log-normally, sigma {args.latency_spread:g})" if args.latency_spread else "")
        + ", "
        f"{args.rate:g}/s per endpoint, {args.account_rate:g}/s per account"
        + ("; every charge made by a PaymentIntent" if args.payment_intents else ""),
        flush=True,
    )

    from reconcile.demo.embedded_mongo import EmbeddedMongo

    figures: dict[str, Any] = {
        "machine": info,
        "n": n,
        "latency": args.latency,
        "latency_spread": args.latency_spread,
        "rate": args.rate,
        "account_rate": args.account_rate,
        "payment_intents": args.payment_intents,
        "full_size": not args.light,
    }
    # The job's own CPU per list page, alone (an in-process stand-in, the calling thread's CPU clock).
    from bench import page_cpu

    pages = page_cpu.measure(full_size=not args.light)
    figures["page_cpu"] = pages
    print(
        f"charges as served: {pages['bytes_per_charge_unexpanded']:,.0f} bytes each, "
        f"{pages['bytes_per_charge']:,.0f} with the balance transaction expanded"
        + (" (the stand-in's own, lighter objects)" if args.light else " (full size: Stripe's example charge)"),
        flush=True,
    )
    print(
        f"CPU per 100-object page of charges with expanded balance transactions: {pages['cpu_ms_per_page']:.1f} ms "
        f"(the SDK's own parse of the same page: {pages['sdk_parse_cpu_ms_per_page']:.1f} ms; "
        f"load average {[round(x, 2) for x in os.getloadavg()]})",
        flush=True,
    )
    standin = Standin(
        n,
        start,
        args.latency,
        args.rate,
        args.account_rate,
        args.discrepancies,
        args.payment_intents,
        args.light,
        args.latency_spread,
    )
    with EmbeddedMongo() as mongo, tempfile.TemporaryDirectory(prefix="reconcile-bench-") as tmp:
        try:
            db: Any = pymongo.MongoClient(mongo.uri, tz_aware=True)["bench"]
            seeded = seed_orders(db, n, start, args.discrepancies)
            ready = standin.ready()
            print(
                f"seeded: orders in {seeded:.0f} s (MongoDB), charges in {ready['seed_seconds']:.0f} s (stand-in)",
                flush=True,
            )
            url = ready["url"]
            if args.scenario == "steady":
                steady = steady_state(
                    Path(tmp), standin, url, mongo.uri, start, end, args.rate, args.account_rate, args.recheck_limit
                )
                figures["steady_state"] = steady
                print_steady(steady)
                raise _Done()

            # 1. The usual sequential pull, on a slice of the same charges.
            slice_until = shop.charge_created(min(n, args.sequential_pages * 100), n, start)
            seq_count, seq_seconds = sequential_pull(url, start, slice_until)
            seq_rate = seq_count / seq_seconds
            figures["sequential"] = {"objects": seq_count, "seconds": seq_seconds, "objects_per_second": seq_rate}
            print(
                f"sequential auto_paging_iter: {seq_count:,} charges in {seq_seconds:.1f} s = {seq_rate:,.0f}/s",
                flush=True,
            )

            # 2. The job over the whole window.
            before = standin.stats()
            job = run_job(Path(tmp), "full", url, mongo.uri, start, end, args.rate, args.account_rate)
            after = standin.stats()
            figures["full_run"] = job
            steps = job["steps"]
            objects = job["charges"] + job["balance_transactions"]
            pull_rate = objects / steps["pull"]
            ceiling = min(args.rate * len(ENDPOINTS), args.account_rate) * 100
            standin_busy = (after["cpu_seconds"] - before["cpu_seconds"]) / steps["pull"]
            job_busy = job["cpu_seconds"] / job["wall_seconds"]
            figures["pull"] = {
                "objects": objects,
                "seconds": steps["pull"],
                "objects_per_second": pull_rate,
                "ceiling": ceiling,
                "ratio_to_ceiling": pull_rate / ceiling,
                "ratio_to_sequential": pull_rate / seq_rate,
                "standin_requests": after["requests"] - before["requests"],
                "standin_429s": after["rate_limited"] - before["rate_limited"],
                "standin_cpu_share": standin_busy,
            }
            print(
                f"\nfull run ({iso(start)} to {iso(end)}), exit {job['exit_code']}, counts "
                f"{ {k: v for k, v in job['counts'].items() if v} }"
            )
            print(
                f"  pull: {objects:,} objects in {steps['pull']:.1f} s = {pull_rate:,.0f} objects/s; "
                f"ceiling {ceiling:,.0f}/s -> {pull_rate / ceiling:.0%} of it; "
                f"{pull_rate / seq_rate:.1f}x the sequential pull"
            )
            for path, line in job["per_endpoint"].items():
                rate = line["count"] / line["seconds"]
                print(
                    f"    {path}: {line['count']:,} in {line['seconds']:.1f} s = {rate:,.0f}/s "
                    f"({rate / (args.rate * 100):.0%} of {args.rate * 100:,.0f}/s; "
                    f"{rate / seq_rate:.1f}x sequential); {line['requests']:,} requests, {line['slices']} slices"
                )
                print(
                    f"      CPU {line['cpu_ms_per_page']:.1f} ms a page (the workers' own); requests in flight "
                    f"{line['in_flight']:.1f} on average (+{line['waiting_for_budget']:.1f} waiting for the budget; "
                    f"{line['workers']} workers; round trip {line['round_trip_seconds']:.2f} s, so "
                    f"{args.rate * line['round_trip_seconds']:.1f} needed at the limit); "
                    f"{line['tail_seconds']:.1f} s from the last split to the end"
                )
            ends = [line["seconds"] for line in job["per_endpoint"].values()]
            figures["pull"]["after_first_endpoint_seconds"] = max(ends) - min(ends) if ends else 0.0
            print(
                f"    time after the first endpoint finished: {figures['pull']['after_first_endpoint_seconds']:.1f} s; "
                f"the pull step beyond its slowest endpoint: {steps['pull'] - max(ends, default=0.0):.1f} s"
            )
            print(
                f"    stand-in: {figures['pull']['standin_requests']:,} requests, "
                f"{figures['pull']['standin_429s']} answered 429; its CPU {standin_busy:.0%} of a core "
                f"during the pull; budget slowed {job['slowed']} times"
            )
            print(f"  audit healing check (orders still owed an audit record): {steps.get('heal', 0):.1f} s")
            print(f"  load orders (MongoDB read + normalise): {beside(job)}, then {steps['load']:.1f} s")
            print(f"  join + classify: {steps['classify']:.1f} s (edge look {steps['edge_look']:.1f} s)")
            print(
                f"  repairs ({job['counts'].get('repaired', 0):,} orders): {steps['repair']:.1f} s; "
                f"refunds and disputes {steps.get('movements', 0):.1f} s; re-check {steps.get('recheck', 0):.1f} s; "
                f"open items {steps.get('items', steps.get('extend', 0)):.1f} s; report {steps['report']:.1f} s"
            )
            print(
                f"  job process: {job['wall_seconds']:.1f} s wall, {job['cpu_seconds']:.1f} s CPU, "
                f"peak RSS {job['peak_rss_mb']:,.0f} MB; peak at the end of each step: "
                + ", ".join(f"{k} {v:,}" for k, v in job["peak_by_step"].items())
                + " MB"
            )
            if standin_busy > 0.8:
                print(f"  ! the stand-in was busy {standin_busy:.0%} of a core: it may be the bottleneck")
            if job_busy > 0.9:
                print(f"  ! the job used {job_busy:.0%} of a core on average: its own CPU may be the bottleneck")

            if args.scenario == "job":
                raise _Done()

            # 3. An hourly run: the last hour, nothing left to repair.
            hour = run_job(Path(tmp), "hourly", url, mongo.uri, end - 3600, end, args.rate, args.account_rate)
            figures["hourly_run"] = hour
            print(
                f"\nhourly run (last hour, {hour['charges']:,} charges, "
                f"{hour['counts'].get('repaired', 0)} repaired): {hour['wall_seconds']:.1f} s wall "
                f"(steps {sum(hour['steps'].values()):.1f} s: "
                + ", ".join(f"{k} {v:.1f}" for k, v in hour["steps"].items())
                + f"; {beside(hour)})"
            )

            # 4. Steady state: open items from the day before re-checked by the hourly run.
            steady = steady_state(
                Path(tmp), standin, url, mongo.uri, start, end, args.rate, args.account_rate, args.recheck_limit
            )
            figures["steady_state"] = steady
            print_steady(steady)

            # 5. Repairs in bulk against one update per order.
            if args.repairs:
                rep = repairs_comparison(mongo.uri, args.repairs)
                figures["repairs"] = rep
                print(
                    f"\nrepairs of {rep['orders']:,} stuck orders on nx-27017: bulk {rep['bulk_seconds']:.1f} s, "
                    f"one by one {rep['one_by_one_seconds']:.1f} s -> {rep['speedup']:.1f}x"
                )
                print(
                    f"  the server's ceiling for any bulk: a trivial update costs {rep['trivial_bulk_ms']:.3f} ms "
                    f"in a bulk, {rep['trivial_single_ms']:.3f} ms on its own -> {rep['server_ceiling']:.1f}x"
                )
        except _Done:
            pass
        finally:
            standin.stop()
    figures["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    figures["bench_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"\nload average at the end: {figures['machine']['load_average_after']} on {info['cores']} cores"
        + (
            " (the machine was busy: figures are noisy)"
            if max(figures["machine"]["load_average_after"]) > (info["cores"] or 1)
            else ""
        )
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
