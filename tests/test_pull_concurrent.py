"""Concurrent window pulls against the Stripe stand-in (HTTP, official SDK): the same objects,
in the same order, as a sequential pull; within the budget; through 429s."""

from __future__ import annotations

import json
import random
import threading
import time
from datetime import timedelta
from typing import Any

import pandas as pd
import pytest
import stripe
from faultkit import VirtualClock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconcile.decide import columns, match
from reconcile.demo.standin import StandinStore, serve
from reconcile.errors import Interrupted, StripeAuthError, StripeListIncomplete
from reconcile.runtime import interrupt
from reconcile.stripe import payments
from reconcile.stripe import pull as stripe_pull
from reconcile.stripe import slices as pull_plan
from reconcile.stripe.budget import Budget
from reconcile.timeutil import from_unix

KEY = "sk_test_pull_concurrent"
T0 = 1_763_700_000


def client_for(url: str, key: str = KEY) -> stripe.StripeClient:
    return stripe.StripeClient(key, base_addresses={"api": url}, max_network_retries=0)


def quick_policy(**kwargs: Any) -> stripe_pull.RetryPolicy:
    """Short 429 backoff: the tests check what is pulled, not how long the pauses are."""
    return stripe_pull.RetryPolicy(base_seconds=0.02, cap_seconds=0.2, max_retries=50, **kwargs)


def sequential_ids(client: stripe.StripeClient, path: str, since: int, until: int) -> list[str]:
    """The reference: one cursor walk over the whole window (the pre-concurrency pull)."""
    query = {"created": {"gte": since, "lt": until}}
    return [o["id"] for page in stripe_pull.iter_pages(client, path, query, stripe_pull.RetryPolicy()) for o in page]


def id_row(obj: dict[str, Any]) -> dict[str, Any]:
    return {"id": obj["id"], "created": obj["created"]}


def concurrent_ids(client, path, since, until, policy) -> list[str]:
    rows = stripe_pull.fetch_window(client, path, from_unix(since), from_unix(until), id_row, policy)
    return [r["id"] for r in rows]


@pytest.fixture(scope="module")
def boundary_world():
    """Charges spread over a window, with crowds sharing one second at the window's start, in its
    middle and at its last second, plus charges just outside on both sides."""
    store = StandinStore(api_key=KEY)
    rng = random.Random(7)
    since, until = T0, T0 + 20_000
    with store.bulk():
        for n in range(1500):
            store.create_charge(amount=100 + n, created=rng.randrange(since, until), metadata={"order_id": f"o{n}"})
        for second, count in ((since, 230), (since + 9_999, 450), (until - 1, 170)):
            for n in range(count):
                store.create_charge(amount=7 + n, created=second)
        for second in (since - 1, until, until + 1):
            store.create_charge(amount=5, created=second)
    with serve(store) as srv:
        yield store, srv, since, until


def test_concurrent_pull_equals_sequential_pull_including_crowded_boundary_seconds(boundary_world):
    store, srv, since, until = boundary_world
    client = client_for(srv.url)
    expected = sequential_ids(client, "/v1/charges", since, until)
    assert len(expected) == 1500 + 230 + 450 + 170
    sdk = [
        c.id for c in client.v1.charges.list({"limit": 100, "created": {"gte": since, "lt": until}}).auto_paging_iter()
    ]
    assert sdk == expected

    before = len(srv.request_log)
    got = concurrent_ids(client, "/v1/charges", since, until, quick_policy(concurrency=8))
    assert got == expected  # same objects, same order, none twice
    ranges = {(q["created[gte]"], q["created[lt]"]) for _, _, q in srv.request_log[before:]}
    assert len(ranges) > 8  # the window really was cut into slices


def test_dense_second_is_walked_by_cursor_and_never_split(boundary_world):
    store, srv, since, until = boundary_world
    client = client_for(srv.url)
    middle = since + 9_999
    expected = sequential_ids(client, "/v1/charges", middle - 2, middle + 3)
    got = concurrent_ids(client, "/v1/charges", middle - 2, middle + 3, quick_policy(concurrency=6))
    assert got == expected and len(got) >= 450


def test_empty_and_one_second_windows(boundary_world):
    store, srv, since, until = boundary_world
    client = client_for(srv.url)
    assert concurrent_ids(client, "/v1/charges", until + 10, until + 500, quick_policy(concurrency=4)) == []
    assert len(concurrent_ids(client, "/v1/charges", since, since + 1, quick_policy(concurrency=4))) == 230
    assert concurrent_ids(client, "/v1/charges", since, since, quick_policy()) == []


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seconds=st.lists(st.integers(min_value=0, max_value=400), min_size=0, max_size=700),
    crowd=st.integers(min_value=0, max_value=260),
    crowd_at=st.integers(min_value=0, max_value=400),
    workers=st.integers(min_value=1, max_value=12),
    lo=st.integers(min_value=0, max_value=60),
    hi=st.integers(min_value=300, max_value=401),
)
def test_any_spread_any_workers_gives_the_sequential_list(seconds, crowd, crowd_at, workers, lo, hi):
    store = StandinStore(api_key=KEY)
    for n, offset in enumerate(seconds + [crowd_at] * crowd):
        store.create_balance_transaction(type="adjustment", amount=n + 1, created=T0 + offset)
    with serve(store, log_requests=False) as srv:
        client = client_for(srv.url)
        expected = sequential_ids(client, "/v1/balance_transactions", T0 + lo, T0 + hi)
        got = concurrent_ids(client, "/v1/balance_transactions", T0 + lo, T0 + hi, quick_policy(concurrency=workers))
    assert got == expected


def test_rows_keep_their_fields_and_charges_keep_their_expanded_balance_transaction(boundary_world):
    store, srv, since, until = boundary_world
    client = client_for(srv.url)
    rows = stripe_pull.fetch_charges(
        client, from_unix(since), from_unix(since + 3000), "order_id", quick_policy(concurrency=5)
    )
    assert rows and all(r["settlement_amount"] == r["amount"] and r["settlement_currency"] == "usd" for r in rows)
    assert [r["created"] for r in rows] == sorted((r["created"] for r in rows), reverse=True)


def test_budget_keeps_both_pulls_within_the_standins_limits():
    """Charges and balance transactions pulled side by side at the budget's limits: the stand-in,
    counting with its own buckets, refuses nothing, and the budget did hold requests back.

    The budget, the backoff and the stand-in's limiter share one virtual clock, so this holds on a
    busy machine too: a request granted for instant t reaches the stand-in at t or later, at most
    one per worker in flight (8 per pull), well within the stand-in's one second of tokens."""
    store = StandinStore(api_key=KEY)
    with store.bulk():
        for n in range(2500):
            store.create_charge(amount=100 + n, created=T0 + n * 3)
    clock = VirtualClock()
    with serve(store, rate_limit={"per_endpoint": 20, "account": 30}, clock=clock) as srv:
        client = client_for(srv.url)
        budget = Budget(20, 30, clock=clock, sleep=clock.sleep)
        policy = quick_policy(budget=budget, concurrency=8, sleep=clock.sleep)
        since, until = from_unix(T0), from_unix(T0 + 3 * 2500)
        started = clock()
        charges, balance = pull_plan.side_by_side(
            [
                lambda: stripe_pull.fetch_charges(client, since, until, "order_id", policy),
                lambda: stripe_pull.fetch_balance_columns(client, since, until, policy),
            ],
            policy.abort,
        )
        assert len(charges) == 2500 and columns.length(balance) == 2500
        assert srv.rate_limited == 0
        stats = budget.stats()
        assert stats.waited_seconds > 0 and stats.throttled == {}
        assert stats.requests["/v1/charges"] >= 25 and stats.requests["/v1/balance_transactions"] >= 25
        # Both pulls' requests, at no more than the account's 30 a second (after its burst of 6).
        assert clock() - started >= (sum(stats.requests.values()) - 6) / 30 - 1e-6


def test_stripe_limit_below_the_budget_slows_the_pull_down_and_loses_nothing():
    # 40 pages against a bucket of 12 (refilled at 12 a virtual second), asked for at up to 100/s:
    # the stand-in must refuse some, however fast the machine is (its time passes only as the budget's does).
    store = StandinStore(api_key=KEY)
    with store.bulk():
        for n in range(4000):
            store.create_charge(amount=100 + n, created=T0 + n)
    clock = VirtualClock()
    with serve(store, clock=clock) as srv:
        client = client_for(srv.url)
        expected = sequential_ids(client, "/v1/charges", T0, T0 + 4000)
        srv.set_rate_limit(per_endpoint=12)
        before = len(srv.request_log)
        policy = quick_policy(
            budget=Budget(100, None, clock=clock, sleep=clock.sleep), concurrency=8, sleep=clock.sleep
        )
        got = concurrent_ids(client, "/v1/charges", T0, T0 + 4000, policy)
        refused = srv.rate_limited
        made = [tuple(sorted(q.items())) for _, p, q in srv.request_log[before:] if p == "/v1/charges"]
    assert got == expected
    assert refused > 0
    # Every refused request was asked again, and nothing else was: each page answered once.
    assert len(made) == len(set(made)) + refused
    stats = policy.budget.stats()
    assert stats.throttled == {"/v1/charges": refused}
    assert stats.slowed["/v1/charges"] >= 1 and stats.lowest_rate["/v1/charges"] < 100


def test_injected_429s_are_retried_and_the_set_stays_complete(boundary_world):
    store, srv, since, until = boundary_world
    client = client_for(srv.url)
    expected = sequential_ids(client, "/v1/charges", since, until)
    srv.inject("/v1/charges", "429", times=12)
    srv.inject("/v1/charges", "429_retry_after", times=2, retry_after=0)
    try:
        got = concurrent_ids(client, "/v1/charges", since, until, quick_policy(budget=Budget(200, None), concurrency=6))
    finally:
        srv.clear_faults()
    assert got == expected


def test_a_failing_pull_stops_the_one_beside_it():
    """The balance pull is refused (403) while the charges pull is mid-window: the charges pull
    stops at its next page. The stand-in holds every charges page after the first until the run's
    abort is set, so the order is fixed whatever the machine's speed; a pull that did not stop
    would be let go after 30 s and ask for the other 29 pages."""
    store = StandinStore(api_key=KEY, restricted_keys={"rk_test_nobalance": {"/v1/balance_transactions"}})
    with store.bulk():
        for n in range(3000):
            store.create_charge(amount=100 + n, created=T0 + n)
    policy = quick_policy(concurrency=2)
    deadline = time.monotonic() + 30

    class AbortSeen:  # the stand-in's `release` for a held page
        def wait(self, timeout: float) -> bool:
            return policy.abort.wait(timeout) or time.monotonic() > deadline

    first: list[dict[str, str]] = []

    def after_the_first(query: dict[str, str]) -> bool:  # called under the stand-in's lock
        if not first:
            first.append(query)
            return False
        return True

    with serve(store) as srv:
        srv.inject("/v1/charges", "hang", times=None, when=after_the_first, release=AbortSeen())
        client = client_for(srv.url, "rk_test_nobalance")
        since, until = from_unix(T0), from_unix(T0 + 3000)
        with pytest.raises(StripeAuthError, match="may not read /v1/balance_transactions"):
            pull_plan.side_by_side(
                [
                    lambda: stripe_pull.fetch_charges(client, since, until, "order_id", policy),
                    lambda: stripe_pull.fetch_balance_columns(client, since, until, policy),
                ],
                policy.abort,
            )
        charge_requests = sum(1 for _, p, _ in srv.request_log if p == "/v1/charges")
    # The first page, then at most one page per worker, already asked for when the abort came
    # (a full pull needs 30 pages).
    assert charge_requests <= 1 + 2
    assert not policy.abort.is_set()  # cleared for whatever the run does next


def test_an_object_outside_the_asked_range_stops_the_pull():
    def fetch(params: dict[str, Any]) -> dict[str, Any]:
        return {"data": [{"id": "ch_x", "created": params["created"]["lt"] + 5}], "has_more": False}

    with pytest.raises(StripeListIncomplete, match="ch_x created at .* outside the range asked for"):
        pull_plan.pull_window(fetch, T0, T0 + 100, list, workers=3)


def test_a_repeated_cursor_stops_the_pull():
    def fetch(params: dict[str, Any]) -> dict[str, Any]:
        return {"data": [{"id": "ch_same", "created": T0 + 1}], "has_more": True}

    with pytest.raises(StripeListIncomplete, match="the next cursor ch_same was already followed"):
        pull_plan.pull_window(fetch, T0, T0 + 2, list, workers=2)


def test_an_aborted_pull_makes_no_request():
    calls: list[dict[str, Any]] = []
    abort = threading.Event()
    abort.set()
    with pytest.raises(pull_plan.PullAborted):
        pull_plan.pull_window(lambda p: calls.append(p) or {"data": []}, T0, T0 + 10, list, workers=2, abort=abort)
    assert calls == []


def test_a_stop_request_ends_every_slice_at_its_next_page(boundary_world):
    """SIGTERM during a concurrent pull: no slice asks for another page once the stop is seen."""
    store, srv, since, until = boundary_world
    workers = 6

    class StopsAtThirdPage:
        def __init__(self, client: stripe.StripeClient):
            self.client, self.calls = client, 0
            self.lock = threading.Lock()

        def raw_request(self, *args: Any, **params: Any) -> Any:
            with self.lock:
                self.calls += 1
                if self.calls == 3:
                    interrupt.request_stop("SIGTERM")  # as the signal handler does, mid-request
            return self.client.raw_request(*args, **params)

    client = StopsAtThirdPage(client_for(srv.url))
    try:
        with pytest.raises(Interrupted) as stopped:
            concurrent_ids(client, "/v1/charges", since, until, quick_policy(concurrency=workers))
    finally:
        interrupt.reset()
    assert stopped.value.step == "pull"
    # Only requests already past their checkpoint when the stop came may still be sent: at most
    # one per other worker (the pull needs 25 pages).
    assert client.calls <= 3 + workers - 1


@pytest.mark.parametrize(
    ("link_by", "every_intent"),
    [
        ((match.CHARGE_METADATA, match.ORDER_FIELDS), False),
        ((match.CHARGE_METADATA, match.PAYMENT_INTENT_METADATA), True),
        ((match.CHECKOUT_SESSION,), True),
    ],
)
def test_a_charges_payment_intent_id_is_kept_where_something_reads_it(link_by, every_intent):
    """Without PaymentIntents or sessions to link through, only an authorization keeps its
    PaymentIntent id (whether it was released shows there); with them, every charge keeps it."""
    store = StandinStore(api_key=KEY)
    paid = store.create_payment_intent(amount=1000, created=T0)
    held = store.create_payment_intent(amount=2000, created=T0, status="requires_capture", capture_method="manual")
    declined = store.create_payment_intent(amount=500, created=T0, status="requires_payment_method")
    charge_of = {
        paid["id"]: store.create_charge(1000, created=T0 + 10, payment_intent=paid["id"])["id"],
        held["id"]: store.create_charge(2000, created=T0 + 20, captured=False, payment_intent=held["id"])["id"],
        declined["id"]: store.create_charge(500, created=T0 + 30, status="failed", payment_intent=declined["id"])["id"],
    }
    linking = payments.Linking("order_id", link_by, timedelta(minutes=5))
    with serve(store) as srv:
        got = payments.pull(client_for(srv.url), linking, from_unix(T0), from_unix(T0 + 100), quick_policy())
    kept = dict(zip(got.charges["charge_id"], got.charges["payment_intent"], strict=True))
    assert kept[charge_of[held["id"]]] == held["id"]
    for intent in (paid, declined):
        if every_intent:
            assert kept[charge_of[intent["id"]]] == intent["id"]
        else:
            assert pd.isna(kept[charge_of[intent["id"]]])
    assert held["id"] in set(got.intents["pi_id"])  # the authorization's PaymentIntent is asked for either way


# --------------------------------------------------------------- workers added, slices shared at once


def store_fetch(store: StandinStore) -> pull_plan.FetchPage:
    """One list page of charges straight from the stand-in's store (its own list logic, no HTTP)."""

    def fetch(params: dict[str, Any]) -> dict[str, Any]:
        created = params["created"]
        body = store.list_page(
            "charge",
            limit=params["limit"],
            created_min=created["gte"],
            created_max=created["lt"] - 1,
            starting_after=params.get("starting_after"),
        )
        return json.loads(body)

    return fetch


def page_ids(objs: list[dict[str, Any]]) -> list[str]:
    return [o["id"] for o in objs]


def test_a_pull_starts_the_workers_it_is_asked_for_and_keeps_them_all_in_flight():
    """Requests taking longer than the workers assumed: the pull starts more (`want_workers`, from the
    round trips) and shares the window among them, so that many requests are out at once."""
    store = StandinStore(api_key=KEY)
    with store.bulk():
        for n in range(3000):
            store.create_charge(amount=100 + n, created=T0 + n)
    fetch = store_fetch(store)
    expected, _ = pull_plan.pull_window(fetch, T0, T0 + 3000, page_ids, workers=1)
    six_out = threading.Barrier(6, timeout=30)  # passes only when six requests are out at once
    calls = []

    def gated(params: dict[str, Any]) -> dict[str, Any]:
        calls.append(params)
        if 1 < len(calls) <= 7:
            six_out.wait()  # the whole-window first page goes alone; the next six must be out together
        return fetch(params)

    pages, stats = pull_plan.pull_window(gated, T0, T0 + 3000, page_ids, workers=2, want_workers=lambda: 6)
    assert sum(pages, []) == sum(expected, [])  # the sequential list, in its order
    assert stats.workers == 6 and stats.slices >= 6


def test_an_idle_worker_takes_the_bottom_of_a_slice_whose_request_is_out():
    """Two workers. The first page cuts the window in two; the bottom part is one page and ends at once.
    The other slice has two pages left by the first page's density: the end of the window. The idle
    worker takes its lower half while its next request is out (held until the taken half is asked
    for): the held page keeps only its objects above the new bound, the taken half lists the rest,
    and the whole is the sequential list."""
    store = StandinStore(api_key=KEY)
    with store.bulk():
        for n in range(100):  # the first page: seconds 800..998, one every two seconds
            store.create_charge(amount=100, created=T0 + 800 + 2 * n)
        for n in range(10):  # below 400: one short page
            store.create_charge(amount=200, created=T0 + n * 40)
        for n in range(50):  # 601..797: the top of the held page
            store.create_charge(amount=300, created=T0 + 601 + n * 4)
        for n in range(250):  # 400..599: the rest of the held page, and the taken half's pages
            store.create_charge(amount=400, created=T0 + 400 + n * 200 // 250)
    fetch = store_fetch(store)
    expected, _ = pull_plan.pull_window(fetch, T0, T0 + 1000, page_ids, workers=1)
    held, taken = threading.Event(), threading.Event()
    fresh_starts = []

    def gated(params: dict[str, Any]) -> dict[str, Any]:
        if "starting_after" not in params:
            fresh_starts.append(params["created"])
            if len(fresh_starts) == 2:  # the bottom part ends only once the other slice's request is out
                assert held.wait(timeout=30)
            if len(fresh_starts) >= 3:  # the whole window, its bottom part, then the taken half
                taken.set()
        elif not taken.is_set():
            held.set()
            assert taken.wait(timeout=30), "no idle worker took part of the slice whose request was out"
        page = fetch(params)
        listed.extend(page["data"])
        return page

    listed: list[dict[str, Any]] = []
    pages, stats = pull_plan.pull_window(gated, T0, T0 + 1000, page_ids, workers=2)
    assert sum(pages, []) == sum(expected, []) and len(sum(pages, [])) == 410  # each object once, in order
    assert len(listed) > 410  # the held page's objects below the new bound: dropped, listed by the taken half
    assert fresh_starts[2] == {"gte": T0 + 400, "lt": T0 + 600}  # the lower half of [400, 801)
    assert stats.slices >= 3


@pytest.mark.parametrize(
    "round_trips, concurrency, expected",
    [
        ([], None, 20),  # nothing answered yet: 25/s x 0.8 s, the default
        ([0.3, 0.3, 0.3], None, 20),  # short round trips: the default keeps the budget busy
        ([1.0], None, 30),  # 25/s x 1.0 s x 1.2 headroom
        ([1.0, 2.0], None, 45),  # the mean round trip: 1.5 s
        ([3.0], None, 64),  # capped
        ([1.0], 5, 5),  # a configured concurrency is kept as it is
    ],
)
def test_a_pulls_workers_follow_its_requests_round_trips(round_trips, concurrency, expected):
    policy = stripe_pull.RetryPolicy(budget=Budget(25, 100), concurrency=concurrency)
    for seconds in round_trips:
        policy.observe("/v1/charges", seconds)
    assert policy.workers_for("/v1/charges") == expected
    assert policy.workers_for("/v1/balance_transactions") == (concurrency or 20)  # per endpoint
