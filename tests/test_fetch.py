"""The one concurrent by-id fetcher (reconcile/stripe/fetch.py) against the Stripe stand-in (HTTP,
official SDK): results in the input order, the run's budget honoured (counted by the stand-in's own
limiter), a 429 retried, a stop honoured; and a re-check through it judges exactly as one lookup
at a time does."""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import timedelta
from typing import Any

import pytest
import stripe
from conftest import API_KEY, at
from faultkit import VirtualClock

from reconcile.config import load_config
from reconcile.decide import classify as c
from reconcile.demo.standin import StandinStore, serve
from reconcile.errors import Interrupted
from reconcile.run import recheck, settings
from reconcile.runtime import interrupt
from reconcile.store import items as item_store
from reconcile.stripe import fetch
from reconcile.stripe import pull as stripe_pull
from reconcile.stripe.budget import Budget
from reconcile.stripe.slices import PullAborted
from reconcile.timeutil import to_unix

KEY = "sk_test_fetch"
T0 = 1_763_700_000
H = timedelta(hours=1)
DAY = timedelta(days=1)


def client_for(url: str) -> stripe.StripeClient:
    return stripe.StripeClient(KEY, base_addresses={"api": url}, max_network_retries=0)


def quick_policy(**kwargs: Any) -> stripe_pull.RetryPolicy:
    return stripe_pull.RetryPolicy(base_seconds=0.02, cap_seconds=0.2, max_retries=50, **kwargs)


@pytest.fixture(scope="module")
def charges_world():
    store = StandinStore(api_key=KEY)
    with store.bulk():
        ids = [store.create_charge(amount=100 + n, created=T0 + n)["id"] for n in range(60)]
    with serve(store) as srv:
        yield store, srv, ids


def test_results_come_back_in_the_input_order_whatever_order_they_finish_in():
    # Each call waits for the one after it to finish, so they finish last to first (no timing involved).
    count = 6
    finished = [threading.Event() for _ in range(count + 1)]
    finished[count].set()
    order: list[int] = []

    def call(n: int) -> int:
        assert finished[n + 1].wait(10)
        order.append(n)
        finished[n].set()
        return n * 10

    results, stats = fetch.each([lambda n=n: call(n) for n in range(count)], count, threading.Event())
    assert order == list(reversed(range(count)))
    assert results == [n * 10 for n in range(count)]
    assert stats.in_flight_max == count


def test_retrieves_keep_the_ids_order_and_skip_missing_ones(charges_world):
    store, srv, ids = charges_world
    wanted = list(reversed(ids[:40])) + ["ch_doesnotexist"] + ids[40:45] + ["bad id/../x"]
    rows = stripe_pull.retrieve_charges(client_for(srv.url), wanted, "order_id", quick_policy(concurrency=8))
    assert [r["charge_id"] for r in rows] == list(reversed(ids[:40])) + ids[40:45]
    assert all(r["settlement_amount"] == r["amount"] for r in rows)  # the balance transaction came expanded


def test_the_budget_holds_retrieves_to_the_standins_limit():
    """60 retrieves, 8 at a time, against a stand-in allowing 20 a second (its own token bucket): with
    the budget at 20/s it refuses none; without a budget the same fetch is refused, and every refused
    retrieve is asked again (the test can fail). The budget, the backoff and the stand-in's limiter
    share one virtual clock, so neither outcome depends on how fast the machine is: a request granted
    for instant t reaches the stand-in at t or later, at most 8 in flight, within its 20 tokens."""
    store = StandinStore(api_key=KEY)
    with store.bulk():
        ids = [store.create_charge(amount=100 + n, created=T0 + n)["id"] for n in range(60)]
    clock = VirtualClock()
    with serve(store, rate_limit={"per_endpoint": 20}, clock=clock) as srv:
        client = client_for(srv.url)
        unlimited = quick_policy(concurrency=8, sleep=clock.sleep)
        assert len(stripe_pull.retrieve_charges(client, ids, "order_id", unlimited)) == 60
        refused_without_budget = srv.rate_limited
        assert refused_without_budget > 0
        assert srv.requests == 60 + refused_without_budget  # each refused retrieve asked again, once per refusal

        srv.set_rate_limit(per_endpoint=20)  # a full bucket again
        budget = Budget(20, None, clock=clock, sleep=clock.sleep)
        policy = quick_policy(concurrency=8, budget=budget, sleep=clock.sleep)
        before, started = srv.requests, clock()
        rows = stripe_pull.retrieve_charges(client, ids, "order_id", policy)
        assert [r["charge_id"] for r in rows] == ids
        assert srv.rate_limited == refused_without_budget  # not one refused under the budget
        assert srv.requests - before == 60
        assert budget.stats().waited_seconds > 0 and budget.stats().throttled == {}
        assert clock() - started >= (60 - 4) / 20 - 1e-6  # 20 a second after a burst of 4


def test_a_429_is_retried_and_nothing_is_lost(charges_world):
    store, srv, ids = charges_world
    served = srv.faults_served
    srv.inject(f"/v1/charges/{ids[3]}", "429", times=1)
    srv.inject(f"/v1/charges/{ids[7]}", "429", times=2)
    rows = stripe_pull.retrieve_charges(client_for(srv.url), ids[:10], "order_id", quick_policy(concurrency=4))
    assert [r["charge_id"] for r in rows] == ids[:10]
    assert srv.faults_served - served == 3


def test_an_abort_stops_the_fetch(charges_world):
    store, srv, ids = charges_world
    policy = quick_policy(concurrency=3)
    before = srv.requests

    def abort_on_first(query: dict[str, str]) -> bool:
        policy.abort.set()  # another pull of the run failed, as seen when this request arrives
        return False

    srv.inject("/v1/charges/", "429", times=1, when=abort_on_first)
    with pytest.raises(PullAborted):
        stripe_pull.retrieve_charges(client_for(srv.url), ids, "order_id", policy)
    srv.clear_faults()
    assert srv.requests - before <= 3  # the calls already in flight, none started after


def test_a_stop_request_stops_the_fetch(charges_world):
    store, srv, ids = charges_world
    before = srv.requests

    def stop_on_first(query: dict[str, str]) -> bool:
        interrupt.request_stop("SIGTERM")
        return False

    srv.inject("/v1/charges/", "429", times=1, when=stop_on_first)
    try:
        with pytest.raises(Interrupted):
            stripe_pull.retrieve_charges(client_for(srv.url), ids, "order_id", quick_policy(concurrency=3))
    finally:
        interrupt.reset()
        srv.clear_faults()
    assert srv.requests - before <= 3


def test_a_failed_lookup_stops_the_rest_and_is_raised(charges_world):
    store, srv, ids = charges_world
    srv.inject(f"/v1/charges/{ids[2]}", "raw", times=None, status=401, body=b'{"error": {"type": "x"}}')
    try:
        with pytest.raises(Exception, match="rejected the API key"):
            stripe_pull.retrieve_charges(client_for(srv.url), ids, "order_id", quick_policy(concurrency=1))
    finally:
        srv.clear_faults()


def test_recheck_side_by_side_equals_the_sequential_recheck(cli, db, store, seed, t0):
    """Open items of every source (orders, charges, refunds, disputes), some fixed since: the re-check
    through the concurrent fetcher finds exactly what one lookup at a time finds."""
    mismatched = []
    for n in range(8):
        order = seed.order(None, status="accepted", amount=5000 + n, age=3 * H)
        seed.charge(order, amount=4500 + n, age=3 * H)
        mismatched.append(order)
    for n in range(4):
        seed.order(None, status="accepted", amount=3000 + n, age=3 * H)  # paid, no charge
    for n in range(4):
        seed.charge(None, amount=700 + n, age=3 * H, metadata={"order_id": f"nowhere-{n}"})  # orphans
    for _ in range(3):
        order = seed.order(None, status="accepted", amount=2000, age=3 * H)
        charge = seed.charge(order, amount=2000, age=3 * H)
        store.create_refund(charge["id"], 2000, created=to_unix(t0 - 2 * H))
        store.create_dispute(seed.charge(None, amount=900, age=3 * H)["id"], created=to_unix(t0 - 2 * H))
    first = cli("--now", at(t0))
    assert first.exit_code == 1, first.output
    for order in mismatched[:4]:  # fixed since
        db["orders"].update_one({"_id": order}, {"$set": {"amount": 4500 + mismatched.index(order)}})

    config = load_config(cli.config)
    client = stripe_pull.make_client(API_KEY, config.stripe)
    docs = item_store.open_items(db[config.mongodb.items_collection])
    sources = {d["source"] for d in docs}
    assert {"order", "charge"} <= sources and sources & {"refund", "dispute"}, sources
    now = t0 + 9 * DAY
    rules = settings.rules_for(config, now)

    def recheck_with(policy: stripe_pull.RetryPolicy) -> Any:
        linking = settings.linking(config)
        remote = recheck.Remote(client, policy, db["orders"], config.orders, linking)
        return recheck.verdicts(recheck.read(remote, docs, now), rules)

    sequential = recheck_with(quick_policy(concurrency=1))
    side_by_side = recheck_with(quick_policy(concurrency=8))
    assert side_by_side == sequential
    confirmed, cleared, checked = sequential
    assert len(cleared) >= 4 and confirmed  # the fixed ones resolved, the others still there
    assert any(f["kind"] == c.AMOUNT_MISMATCH for f in confirmed)


def test_lookups_report_their_progress_as_a_step(charges_world, monkeypatch):
    """Each fetch tells the progress display (runtime/progress.py `step(name, done, total)`) how far it is."""
    from reconcile.runtime import progress

    told: list[tuple[str, int, int | None]] = []
    lock = threading.Lock()

    def step(name: str, done: int, total: int | None = None) -> None:
        with lock:
            told.append((name, done, total))

    monkeypatch.setattr(progress, "step", step, raising=False)
    store, srv, ids = charges_world
    stripe_pull.retrieve_charges(client_for(srv.url), ids[:12], "order_id", quick_policy(concurrency=4))
    assert told[0] == ("charges by id", 0, 12)
    assert sorted(done for _, done, _ in told[1:]) == list(range(1, 13))
    assert ("charges by id", 12, 12) in told  # done >= total ends the step


def test_pages_parsed_by_orjson_equal_what_the_sdk_parses_and_errors_still_map(charges_world):
    """The job's client (KeptBodyClient) hands 2xx bodies to orjson: the same objects as the SDK's own
    parse; an error answer still goes through the SDK's mapping; a cut page is said by its facts only."""
    from reconcile.config import parse_config
    from reconcile.errors import StripeRequestError, StripeUnavailable

    store, srv, ids = charges_world
    config = parse_config({"stripe": {"api_base": srv.url}, "mongodb": {"database": "x"}})
    job = stripe_pull.make_client(KEY, config.stripe)
    params = {"limit": 100, "created": {"gte": T0, "lt": T0 + 60}, **stripe_pull.CHARGE_PARAMS}
    policy = quick_policy()
    page = stripe_pull.request(job, "/v1/charges", params, policy)
    sdk_page = stripe_pull.request(client_for(srv.url), "/v1/charges", params, policy)
    assert page == sdk_page and len(page["data"]) == 60
    # Who parsed each shows in what it made (no private attribute of the SDK read): the SDK's own parse
    # makes OrderedDicts at every level, orjson plain dicts, so the job's client handed the body to orjson.
    assert type(sdk_page) is OrderedDict and type(sdk_page["data"][0]["balance_transaction"]) is OrderedDict
    assert type(page) is dict and type(page["data"][0]) is dict and type(page["data"][0]["balance_transaction"]) is dict
    with pytest.raises(StripeRequestError, match="HTTP 404"):
        stripe_pull.request(job, "/v1/charges/ch_nothere", {}, policy)
    srv.inject("/v1/charges", "truncated", times=1)
    with pytest.raises(StripeUnavailable, match=r"^Stripe unavailable at /v1/charges: APIError \(HTTP 200, ") as err:
        stripe_pull.request(job, "/v1/charges", params, policy)
    assert ids[0] not in str(err.value)
