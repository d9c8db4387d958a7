"""The Stripe stand-in, driven over real HTTP through the official stripe SDK."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import stripe
from hypothesis import given, settings
from hypothesis import strategies as st

from reconcile.demo.standin import StandinServer, StandinStore, serve, settle_amount
from reconcile.demo.standin.server import mask_key
from reconcile.demo.standin.store import RESOURCES, parse_expand

KEY = "sk_test_standin"
RESTRICTED = "rk_test_nocharges"
T0 = 1_763_700_000


def client_for(srv: StandinServer, key: str = KEY, retries: int = 0) -> stripe.StripeClient:
    return stripe.StripeClient(key, base_addresses={"api": srv.url}, max_network_retries=retries)


@pytest.fixture(scope="module")
def world() -> dict[str, Any]:
    """A store with charges (ties on created included), intents, sessions, refunds, a dispute."""
    store = StandinStore(api_key=KEY, restricted_keys={RESTRICTED: {"/v1/charges"}})
    charges = []
    for n in range(60):
        # Three charges share each second, so ordering must fall back to insertion sequence.
        charges.append(
            store.create_charge(amount=1000 + n, currency="usd", created=T0 + n // 3, metadata={"order_id": f"o{n}"})
        )
    failed = store.create_charge(amount=500, created=T0 + 100, status="failed", metadata={"order_id": "of"})
    uncaptured = store.create_charge(amount=700, created=T0 + 101, captured=False)
    pi = store.create_payment_intent(amount=2500, currency="usd", created=T0 + 200, metadata={"order_id": "pi-order"})
    pi_charge = store.create_charge(
        amount=2500, created=T0 + 201, payment_intent=pi["id"], metadata={"order_id": "pi-order"}
    )
    open_pi = store.create_payment_intent(amount=900, created=T0 + 202, status="requires_payment_method")
    sessions = [
        store.create_checkout_session(
            created=T0 + 300 + n, client_reference_id=f"cs-order-{n}", amount_total=100 * n, currency="usd"
        )
        for n in range(5)
    ]
    paid_session = store.create_checkout_session(
        created=T0 + 310, payment_intent=pi["id"], client_reference_id="pi-order"
    )
    payout = store.create_balance_transaction(type="payout", amount=-50000, created=T0 + 400)
    return {
        "store": store,
        "charges": charges,
        "failed": failed,
        "uncaptured": uncaptured,
        "pi": pi,
        "pi_charge": pi_charge,
        "open_pi": open_pi,
        "sessions": sessions,
        "paid_session": paid_session,
        "payout": payout,
    }


@pytest.fixture(scope="module")
def srv(world: dict[str, Any]) -> Iterator[StandinServer]:
    with serve(world["store"]) as server:
        yield server


@pytest.fixture(autouse=True)
def _clean_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "srv" in request.fixturenames:
        server = request.getfixturevalue("srv")
        server.clear_faults()
        server.set_rate_limit()
        server.set_latency(0)


@pytest.fixture
def no_retry_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK sleeps 0.5-1 s before a retry; the retry decision is what these tests check."""
    monkeypatch.setattr(stripe.HTTPClient, "INITIAL_DELAY", 0.0)


# --------------------------------------------------------------------------- lists


def test_auto_paging_gives_each_charge_once_newest_first(srv: StandinServer, world: dict[str, Any]) -> None:
    charges = world["charges"]
    page = client_for(srv).v1.charges.list({"limit": 7, "created": {"gte": T0, "lt": T0 + 20}})
    seen = [ch.id for ch in page.auto_paging_iter()]
    # Newest first; within one second, the later-created object first.
    assert seen == [ch["id"] for ch in reversed(charges)]
    assert len(seen) == len(set(seen)) == 60


def test_raw_request_page_shape(srv: StandinServer) -> None:
    response = client_for(srv).raw_request("get", "/v1/charges", limit=5, created={"gte": T0, "lt": T0 + 20})
    body = response.data
    assert body["object"] == "list" and body["url"] == "/v1/charges" and body["has_more"] is True
    assert len(body["data"]) == 5
    assert response.headers["Request-Id"].startswith("req_")
    assert response.headers["Stripe-Version"]
    assert response.headers["Content-Type"] == "application/json"


def test_created_filters_bound_inclusively_and_exclusively(srv: StandinServer, world: dict[str, Any]) -> None:
    client = client_for(srv)

    def created_of(created: dict[str, int] | int) -> list[int]:
        page = client.v1.charges.list({"limit": 100, "created": created})
        return sorted({ch.created for ch in page.data})

    assert created_of({"gte": T0 + 2, "lt": T0 + 5}) == [T0 + 2, T0 + 3, T0 + 4]
    assert created_of({"gt": T0 + 2, "lte": T0 + 5}) == [T0 + 3, T0 + 4, T0 + 5]
    assert created_of(T0 + 7) == [T0 + 7]
    assert created_of({"gte": T0 + 5, "lt": T0 + 5}) == []


def test_starting_after_and_ending_before(srv: StandinServer, world: dict[str, Any]) -> None:
    client = client_for(srv)
    newest_first = [ch["id"] for ch in reversed(world["charges"])]
    window = {"gte": T0, "lt": T0 + 20}
    after = client.v1.charges.list({"limit": 4, "created": window, "starting_after": newest_first[10]})
    assert [ch.id for ch in after.data] == newest_first[11:15] and after.has_more
    before = client.v1.charges.list({"limit": 4, "created": window, "ending_before": newest_first[10]})
    assert [ch.id for ch in before.data] == newest_first[6:10] and before.has_more
    last = client.v1.charges.list({"limit": 4, "created": window, "starting_after": newest_first[-3]})
    assert [ch.id for ch in last.data] == newest_first[-2:] and not last.has_more


def test_unknown_cursor_is_rejected(srv: StandinServer) -> None:
    with pytest.raises(stripe.InvalidRequestError) as err:
        client_for(srv).v1.charges.list({"starting_after": "ch_doesnotexist"})
    assert err.value.http_status == 400 and err.value.param == "starting_after"


def test_checkout_sessions_listed_by_created(srv: StandinServer, world: dict[str, Any]) -> None:
    page = client_for(srv).v1.checkout.sessions.list({"limit": 100, "created": {"gte": T0 + 301, "lt": T0 + 304}})
    assert [s.client_reference_id for s in page.data] == ["cs-order-3", "cs-order-2", "cs-order-1"]
    assert all(s.object == "checkout.session" for s in page.data)
    by_pi = client_for(srv).v1.checkout.sessions.list({"payment_intent": world["pi"]["id"]})
    assert [s.id for s in by_pi.data] == [world["paid_session"]["id"]]


def test_filters(srv: StandinServer, world: dict[str, Any]) -> None:
    client = client_for(srv)
    by_pi = client.v1.charges.list({"payment_intent": world["pi"]["id"]})
    assert [ch.id for ch in by_pi.data] == [world["pi_charge"]["id"]]
    payouts = client.v1.balance_transactions.list({"type": "payout"})
    assert [bt.id for bt in payouts.data] == [world["payout"]["id"]]
    assert payouts.data[0].reporting_category == "payout" and payouts.data[0].amount == -50000
    assert client.v1.balance_transactions.list({"source": world["charges"][0]["id"]}).data[0].type == "charge"


# --------------------------------------------------------------------------- expansion


def test_expand_balance_transaction_inline(srv: StandinServer, world: dict[str, Any]) -> None:
    page = client_for(srv).v1.charges.list(
        {"limit": 100, "created": {"gte": T0 + 100, "lte": T0 + 101}, "expand": ["data.balance_transaction"]}
    )
    assert [ch.id for ch in page.data] == [world["uncaptured"]["id"], world["failed"]["id"]]
    assert all(ch.balance_transaction is None for ch in page.data)  # no money moved

    page = client_for(srv).v1.charges.list(
        {"limit": 3, "expand": ["data.balance_transaction"], "created": {"lt": T0 + 20}}
    )
    for ch in page.data:
        bt = ch.balance_transaction
        assert bt.object == "balance_transaction" and bt.source == ch.id and bt.type == "charge"
        assert bt.amount == ch.amount and bt.fee == (ch.amount * 29 + 500) // 1000 + 30 and bt.net == bt.amount - bt.fee
        assert bt.created == ch.created and bt.fee_details[0].type == "stripe_fee"

    plain = client_for(srv).v1.charges.retrieve(world["charges"][0]["id"])
    assert plain.balance_transaction.startswith("txn_")
    expanded = client_for(srv).v1.charges.retrieve(world["charges"][0]["id"], {"expand": ["balance_transaction"]})
    assert expanded.balance_transaction.id == plain.balance_transaction


def test_payment_intent_expand_latest_charge(srv: StandinServer, world: dict[str, Any]) -> None:
    page = client_for(srv).v1.payment_intents.list({"limit": 10, "expand": ["data.latest_charge"]})
    by_id = {pi.id: pi for pi in page.data}
    assert by_id[world["pi"]["id"]].latest_charge.id == world["pi_charge"]["id"]
    assert by_id[world["pi"]["id"]].latest_charge.metadata["order_id"] == "pi-order"
    assert by_id[world["open_pi"]["id"]].latest_charge is None
    nested = client_for(srv).v1.charges.retrieve(
        world["pi_charge"]["id"], {"expand": ["payment_intent.latest_charge.balance_transaction"]}
    )
    assert nested.payment_intent.latest_charge.balance_transaction.source == world["pi_charge"]["id"]


def test_expand_must_name_list_items(srv: StandinServer) -> None:
    with pytest.raises(stripe.InvalidRequestError, match="data.balance_transaction"):
        client_for(srv).v1.charges.list({"expand": ["balance_transaction"]})
    with pytest.raises(stripe.InvalidRequestError, match="cannot be expanded"):
        client_for(srv).v1.charges.list({"expand": ["data.amount"]})


# --------------------------------------------------------------------------- errors


def test_retrieve_missing_is_404(srv: StandinServer) -> None:
    with pytest.raises(stripe.InvalidRequestError) as err:
        client_for(srv).v1.charges.retrieve("ch_missing")
    assert err.value.http_status == 404 and err.value.code == "resource_missing"
    assert "No such charge: 'ch_missing'" in str(err.value.user_message)


def test_bad_key_is_authentication_error_without_echoing_it(srv: StandinServer) -> None:
    bad = "sk_test_51NotTheRightKeyAtAll9876"
    with pytest.raises(stripe.AuthenticationError) as err:
        client_for(srv, key=bad).v1.charges.list()
    assert err.value.http_status == 401
    assert bad not in str(err.value) and bad not in (err.value.user_message or "")
    assert "sk_test_" in (err.value.user_message or "")


def test_mask_key_never_reveals_short_keys() -> None:
    assert mask_key("sk_test_standin") == "sk_test_*******"
    assert mask_key("sk_test_51NotTheRightKeyAtAll9876").endswith("9876")
    assert "abc" not in mask_key("abc")


def test_restricted_key_lacks_permission(srv: StandinServer) -> None:
    client = client_for(srv, key=RESTRICTED)
    with pytest.raises(stripe.PermissionError) as err:
        client.v1.charges.list()
    assert err.value.http_status == 403 and "rak_charge_read" in (err.value.user_message or "")
    assert RESTRICTED not in (err.value.user_message or "")
    assert client.v1.payment_intents.list({"limit": 1}).object == "list"  # other resources stay readable


def test_unknown_parameter_and_bad_values(srv: StandinServer) -> None:
    client = client_for(srv)
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.raw_request("get", "/v1/charges", foo="bar")
    assert err.value.param == "foo" and "Received unknown parameter: foo" in (err.value.user_message or "")
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.charges.list({"limit": 101})
    assert err.value.param == "limit"
    with pytest.raises(stripe.InvalidRequestError):
        client.raw_request("get", "/v1/charges", created={"gte": "yesterday"})
    with pytest.raises(stripe.InvalidRequestError):
        client.raw_request("get", "/v1/charges", starting_after="ch_a", ending_before="ch_b")
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.raw_request("get", "/v1/nothing")
    assert err.value.http_status == 404
    with pytest.raises(stripe.InvalidRequestError):
        client.raw_request("post", "/v1/charges", amount=100)


# --------------------------------------------------------------------------- faults and limits


def test_injected_500_is_retried_by_sdk(srv: StandinServer, no_retry_delay: None) -> None:
    before = srv.requests
    srv.inject(path_prefix="/v1/charges", fault="500", times=1)
    page = client_for(srv, retries=2).v1.charges.list({"limit": 1})
    assert len(page.data) == 1
    assert srv.requests - before == 2 and srv.faults_served >= 1


def test_should_retry_header_controls_sdk_retries(srv: StandinServer, no_retry_delay: None) -> None:
    srv.inject(path_prefix="/v1/charges", fault="should_retry_429")
    assert len(client_for(srv, retries=1).v1.charges.list({"limit": 1}).data) == 1
    before = srv.requests
    srv.inject(path_prefix="/v1/charges", fault="should_not_retry_500")
    with pytest.raises(stripe.APIError) as err:
        client_for(srv, retries=2).v1.charges.list({"limit": 1})
    assert err.value.http_status == 500 and srv.requests - before == 1


def test_injected_429_surfaces_as_rate_limit_error(srv: StandinServer, no_retry_delay: None) -> None:
    before = srv.requests
    srv.inject(path_prefix="/v1/charges", fault="429")
    with pytest.raises(stripe.RateLimitError) as err:
        client_for(srv, retries=2).v1.charges.list()
    assert srv.requests - before == 1  # the SDK does not retry a plain 429
    assert err.value.json_body["error"]["code"] == "rate_limit" and "retry-after" not in {
        k.lower() for k in (err.value.headers or {})
    }
    srv.inject(path_prefix="/v1/charges", fault="429_retry_after", retry_after=3)
    with pytest.raises(stripe.RateLimitError) as err:
        client_for(srv).v1.charges.list()
    assert err.value.headers["Retry-After"] == "3"


def test_fault_predicate_only_hits_matching_requests(srv: StandinServer) -> None:
    srv.inject(path_prefix="/v1/charges", fault="503", when=lambda query: "starting_after" in query)
    client = client_for(srv)
    first = client.v1.charges.list({"limit": 2})
    with pytest.raises(stripe.APIError) as err:
        client.v1.charges.list({"limit": 2, "starting_after": first.data[-1].id})
    assert err.value.http_status == 503
    assert client.v1.charges.list({"limit": 2, "starting_after": first.data[-1].id}).data  # consumed


def test_injected_auth_faults(srv: StandinServer) -> None:
    srv.inject(path_prefix="/v1/refunds", fault="401")
    srv.inject(path_prefix="/v1/refunds", fault="403")
    with pytest.raises(stripe.AuthenticationError):
        client_for(srv).v1.refunds.list()
    with pytest.raises(stripe.PermissionError):
        client_for(srv).v1.refunds.list()
    assert client_for(srv).v1.refunds.list().object == "list"


def test_dropped_connection_is_a_connection_error(srv: StandinServer) -> None:
    srv.inject(path_prefix="/v1/charges", fault="drop")
    with pytest.raises(stripe.APIConnectionError):
        client_for(srv).v1.charges.list()
    srv.inject(path_prefix="/v1/charges", fault="drop", stage="before")
    with pytest.raises(stripe.APIConnectionError):
        client_for(srv).v1.charges.list()
    assert len(client_for(srv).v1.charges.list({"limit": 3}).data) == 3


def test_rate_limit_buckets(srv: StandinServer) -> None:
    # One token per second and per endpoint: back-to-back requests exhaust it at once.
    srv.set_rate_limit(per_endpoint=1)
    before = srv.rate_limited
    client = client_for(srv)
    client.v1.disputes.list()
    with pytest.raises(stripe.RateLimitError):
        client.v1.disputes.list()
    with pytest.raises(stripe.RateLimitError):
        client.v1.disputes.retrieve("dp_any")  # retrieves share their list's bucket
    client.v1.payment_intents.list({"limit": 1})  # another endpoint has its own bucket
    assert srv.rate_limited - before == 2
    srv.set_rate_limit(account=1)
    client.v1.refunds.list()
    with pytest.raises(stripe.RateLimitError):
        client.v1.payment_intents.list()


def test_hang_is_cut_by_close() -> None:
    store = StandinStore(api_key=KEY)
    server = serve(store)  # a plain object works too; close() ends it
    server.inject(path_prefix="/v1/charges", fault="hang")
    outcome: list[BaseException | None] = []

    def call() -> None:
        try:
            client_for(server).v1.charges.list()
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
            outcome.append(exc)

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    deadline = time.monotonic() + 10
    while server.faults_served < 1 and time.monotonic() < deadline:
        time.sleep(0.005)  # wait until the request is being held, not a timing measurement
    server.close()
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert isinstance(outcome[0], stripe.APIConnectionError)
    server.close()  # idempotent


def test_hang_with_seconds_then_answers(srv: StandinServer) -> None:
    srv.inject(path_prefix="/v1/charges", fault="hang", seconds=0.01)
    assert client_for(srv).v1.charges.list({"limit": 1}).object == "list"


# --------------------------------------------------------------------------- money


def test_refunds_update_the_charge() -> None:
    store = StandinStore(api_key=KEY)
    charge = store.create_charge(amount=5000, currency="usd", created=T0, metadata={"order_id": "r1"})
    with serve(store) as server:
        client = client_for(server)
        first = store.create_refund(charge["id"], amount=2000, created=T0 + 10)
        seen = client.v1.charges.retrieve(charge["id"])
        assert (seen.amount_refunded, seen.refunded) == (2000, False)
        store.create_refund(charge["id"], created=T0 + 20)  # the remaining 3000
        seen = client.v1.charges.retrieve(charge["id"], {"expand": ["refunds"]})
        assert (seen.amount_refunded, seen.refunded) == (5000, True)
        assert [r.amount for r in seen.refunds.data] == [3000, 2000]
        refunds = client.v1.refunds.list({"charge": charge["id"], "expand": ["data.balance_transaction"]})
        assert [r.balance_transaction.amount for r in refunds.data] == [-3000, -2000]
        assert (
            refunds.data[-1].id == first["id"] and refunds.data[-1].balance_transaction.reporting_category == "refund"
        )
        with pytest.raises(ValueError):
            store.create_refund(charge["id"], amount=1)  # nothing left to refund


def test_failed_refund_and_dispute() -> None:
    store = StandinStore(api_key=KEY)
    charge = store.create_charge(amount=4000, created=T0)
    failed = store.create_refund(charge["id"], amount=1000, created=T0 + 5, status="failed")
    assert failed["balance_transaction"] is None and store.get(charge["id"])["amount_refunded"] == 0
    dispute = store.create_dispute(charge["id"], created=T0 + 50)
    with serve(store) as server:
        client = client_for(server)
        assert client.v1.charges.retrieve(charge["id"]).disputed is True
        seen = client.v1.disputes.retrieve(dispute["id"], {"expand": ["charge"]})
        assert seen.charge.id == charge["id"] and seen.status == "needs_response" and seen.reason == "fraudulent"
        bt = seen.balance_transactions[0]
        assert (bt.type, bt.reporting_category, bt.amount, bt.fee, bt.net) == (
            "adjustment",
            "dispute",
            -4000,
            1500,
            -5500,
        )


def test_exchange_rate_settlement_is_exact() -> None:
    store = StandinStore(api_key=KEY)
    charge = store.create_charge(
        amount=1000, currency="eur", created=T0, settlement_currency="usd", exchange_rate="1.0843"
    )
    half = store.create_charge(
        amount=5, currency="eur", created=T0 + 1, settlement_currency="usd", exchange_rate=Decimal("0.5"), fee=0
    )
    with serve(store) as server:
        bt = (
            client_for(server)
            .v1.charges.retrieve(charge["id"], {"expand": ["balance_transaction"]})
            .balance_transaction
        )
        assert (bt.amount, bt.currency, bt.exchange_rate) == (1084, "usd", 1.0843)
        assert bt.fee == (1084 * 29 + 500) // 1000 + 30 and bt.net == 1084 - bt.fee
        # 2.5 rounds half-up (away from zero) to 3, not half-even to 2.
        assert store.get(half["balance_transaction"])["amount"] == 3
    assert settle_amount(15, "0.1") == 2 and settle_amount(25, "0.1") == 3 and settle_amount(1, "0.49") == 0


def test_update_charge_is_served_fresh() -> None:
    store = StandinStore(api_key=KEY)
    charge = store.create_charge(amount=100, created=T0, metadata={"order_id": "before"})
    with serve(store) as server:
        client = client_for(server)
        assert client.v1.charges.retrieve(charge["id"]).metadata["order_id"] == "before"  # now cached
        store.update_charge(charge["id"], metadata={"order_id": "after"})
        assert client.v1.charges.retrieve(charge["id"]).metadata["order_id"] == "after"
        store.update_charge(charge["id"], created=T0 - 10)
        newer = store.create_charge(amount=200, created=T0 - 5)
        assert [ch.id for ch in client.v1.charges.list().data] == [newer["id"], charge["id"]]


def test_out_of_order_inserts_are_listed_in_order() -> None:
    store = StandinStore(api_key=KEY)
    with store.bulk():
        made = [store.create_charge(amount=100 + n, created=T0 + (n * 7919) % 50) for n in range(50)]
    expected = [ch["id"] for ch in sorted(made, key=lambda ch: ch["created"], reverse=True)]
    with serve(store) as server:
        listed = [ch.id for ch in client_for(server).v1.charges.list({"limit": 9}).auto_paging_iter()]
    assert listed == expected


def test_backward_paging_with_ending_before(srv: StandinServer, world: dict[str, Any]) -> None:
    newest_first = [ch["id"] for ch in reversed(world["charges"])]
    page = client_for(srv).v1.charges.list(
        {"limit": 8, "created": {"gte": T0, "lt": T0 + 20}, "ending_before": newest_first[-1]}
    )
    # The SDK walks backwards from the cursor: oldest first.
    assert [ch.id for ch in page.auto_paging_iter()] == list(reversed(newest_first[:-1]))


def test_more_filters(srv: StandinServer, world: dict[str, Any]) -> None:
    store: StandinStore = world["store"]
    client = client_for(srv)
    complete = client.v1.checkout.sessions.list({"status": "complete", "limit": 100})
    assert len(complete.data) == 6 and not complete.has_more
    assert client.v1.checkout.sessions.list({"status": "expired"}).data == []
    txns = [store.get(ch["balance_transaction"])["id"] for ch in world["charges"][:3]]
    store.assign_payout(world["payout"]["source"], txns)
    paid_out = client.v1.balance_transactions.list({"payout": world["payout"]["source"], "limit": 100})
    assert {bt.id for bt in paid_out.data} == {*txns, world["payout"]["id"]}
    both = client.v1.balance_transactions.list({"type": "charge", "source": world["charges"][1]["id"]})
    assert [bt.id for bt in both.data] == [txns[1]]


def test_concurrent_clients_each_see_every_charge(srv: StandinServer, world: dict[str, Any]) -> None:
    expected = [ch["id"] for ch in reversed(world["charges"])]
    results: list[list[str]] = []

    def walk() -> None:
        page = client_for(srv).v1.charges.list(
            {"limit": 5, "created": {"gte": T0, "lt": T0 + 20}, "expand": ["data.balance_transaction"]}
        )
        results.append([ch.id for ch in page.auto_paging_iter()])

    threads = [threading.Thread(target=walk) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results == [expected] * 4


@settings(max_examples=40, deadline=None)
@given(
    metadata=st.dictionaries(st.text(min_size=1, max_size=12), st.text(max_size=30), max_size=4),
    description=st.one_of(st.none(), st.text(max_size=40)),
)
def test_spliced_expansion_matches_the_objects(metadata: dict[str, str], description: str | None) -> None:
    """Cached-and-spliced JSON equals the stored dicts, whatever text the metadata holds."""
    store = StandinStore(api_key=KEY)
    metadata = {**metadata, "lookalike": "\x00standin-slot-0000000000000000-0"}
    pi = store.create_payment_intent(amount=1200, created=T0, metadata=metadata, description=description)
    charge = store.create_charge(
        amount=1200, created=T0, payment_intent=pi["id"], metadata=metadata, description=description
    )
    refund = store.create_refund(charge["id"], amount=200, created=T0 + 1, metadata=metadata)

    def plain(object_id: str) -> dict[str, Any]:
        return json.loads(json.dumps(store.get(object_id)))

    expected = plain(charge["id"])
    expected["balance_transaction"] = plain(charge["balance_transaction"])
    expected["payment_intent"] = plain(pi["id"])
    expected["payment_intent"]["latest_charge"] = plain(charge["id"])
    tree = parse_expand(RESOURCES["charge"], ["balance_transaction", "payment_intent.latest_charge"], is_list=False)
    assert json.loads(store.retrieve_json("charge", charge["id"], tree)) == expected
    assert json.loads(store.retrieve_json("charge", charge["id"])) == plain(charge["id"])

    page = json.loads(
        store.list_page(
            "refund",
            expand=parse_expand(RESOURCES["refund"], ["data.charge", "data.balance_transaction"], is_list=True),
        )
    )
    want = plain(refund["id"])
    want["charge"] = plain(charge["id"])
    want["balance_transaction"] = plain(refund["balance_transaction"])
    assert page["data"] == [want]


# --------------------------------------------------------------------------- as API version 2026-10-28.endive
# Stripe's changelog, 2025-03-31.basil, "Partially capturing or canceling payments no longer creates a
# Refund" (still true in endive, the version stripe-python 16 pins).


def test_answers_as_the_pinned_version_and_refuses_an_unknown_one() -> None:
    from reconcile.demo.standin.server import API_VERSION

    assert API_VERSION == stripe.api_version  # the SDK's public pin, no private module read
    store = StandinStore(api_key=KEY)
    with serve(store) as server:
        answer = client_for(server).raw_request("get", "/v1/charges")
        assert answer.headers["Stripe-Version"] == API_VERSION
        other = stripe.StripeClient(KEY, base_addresses={"api": server.url}, stripe_version="2024-06-20")
        with pytest.raises(stripe.InvalidRequestError) as refused:
            other.v1.charges.list()
        assert refused.value.http_status == 400
        assert refused.value.error.type == "invalid_request_error"
        assert refused.value.user_message == "Invalid Stripe API version: 2024-06-20"


def test_partial_capture_creates_no_refund_and_one_balance_transaction() -> None:
    store = StandinStore(api_key=KEY)
    charge = store.create_charge(amount=5000, created=T0, amount_captured=4000)
    with serve(store) as server:
        client = client_for(server)
        seen = client.v1.charges.retrieve(charge["id"], {"expand": ["balance_transaction", "refunds"]})
        assert (seen.amount, seen.amount_captured, seen.amount_refunded, seen.refunded) == (5000, 4000, 0, False)
        assert seen.balance_transaction.amount == 4000  # only what was captured moved
        assert seen.refunds.data == [] and client.v1.refunds.list({"charge": charge["id"]}).data == []
        txns = client.v1.balance_transactions.list({"source": charge["id"]}).data
        assert [t.amount for t in txns] == [4000]
        store.create_refund(charge["id"], amount=400, created=T0 + 10)  # money returned to the customer
        seen = client.v1.charges.retrieve(charge["id"])
        assert (seen.amount_refunded, seen.refunded) == (400, False)
        store.create_refund(charge["id"], created=T0 + 20)  # the rest of what was captured
        seen = client.v1.charges.retrieve(charge["id"])
        assert (seen.amount_refunded, seen.refunded) == (4000, True)
    with pytest.raises(ValueError):
        store.create_charge(amount=100, created=T0, amount_captured=101)
    with pytest.raises(ValueError):  # the released 10.00 was never refundable
        store.create_refund(charge["id"], amount=1)


@pytest.mark.parametrize("reason", ["requested_by_customer", "expired"])
def test_canceling_a_payment_intent_releases_its_charge_without_a_refund(reason: str) -> None:
    store = StandinStore(api_key=KEY)
    pi = store.create_payment_intent(amount=5000, created=T0, status="requires_capture", capture_method="manual")
    charge = store.create_charge(amount=5000, created=T0 + 1, captured=False, payment_intent=pi["id"])
    store.cancel_payment_intent(pi["id"], reason, at=T0 + 7 * 86400)
    with serve(store) as server:
        client = client_for(server)
        intent = client.v1.payment_intents.retrieve(pi["id"])
        assert (intent.status, intent.cancellation_reason, intent.canceled_at) == ("canceled", reason, T0 + 7 * 86400)
        seen = client.v1.charges.retrieve(charge["id"], {"expand": ["refunds"]})
        assert (seen.captured, seen.amount_captured, seen.refunded, seen.amount_refunded) == (False, 0, False, 0)
        assert seen.refunds.data == [] and client.v1.refunds.list().data == []
        assert seen.payment_method_details.card.capture_before == T0 + 1 + 7 * 86400
        assert client.v1.balance_transactions.list().data == []


def test_charges_include_refunds_only_when_expanded() -> None:
    store = StandinStore(api_key=KEY)
    charge = store.create_charge(amount=5000, created=T0)
    refund = store.create_refund(charge["id"], amount=1000, created=T0 + 1)
    with serve(store) as server:
        client = client_for(server)
        plain = client.raw_request("get", f"/v1/charges/{charge['id']}").data
        assert "refunds" not in plain
        listed = client.raw_request("get", "/v1/charges", expand=["data.refunds"]).data["data"][0]
        assert listed["refunds"]["data"][0]["id"] == refund["id"] and len(listed["refunds"]["data"]) == 1
        assert listed["refunds"]["url"] == f"/v1/charges/{charge['id']}/refunds"


def test_dispute_statuses_are_the_sdks_and_inquiries_withdraw_nothing() -> None:
    from typing import get_args

    from reconcile.demo.standin.store import DISPUTE_STATUSES

    assert set(DISPUTE_STATUSES) == set(get_args(get_args(stripe.Dispute.__annotations__["status"])[0]))
    store = StandinStore(api_key=KEY)
    for n, status in enumerate(DISPUTE_STATUSES):
        store.create_dispute(store.create_charge(amount=1000, created=T0 + n)["id"], status=status)
    with pytest.raises(ValueError):
        store.create_dispute(store.create_charge(amount=1000, created=T0)["id"], status="charge_refunded")
    with serve(store) as server:
        client = client_for(server)
        disputes = {d.status: d for d in client.v1.disputes.list({"limit": 100}).data}
        assert set(disputes) == set(DISPUTE_STATUSES)
        for status in ("warning_needs_response", "warning_under_review", "warning_closed", "prevented"):
            assert disputes[status].balance_transactions == []
        assert disputes["appeal_needs_response"].balance_transactions[0].amount == -1000


def test_open_checkout_sessions_have_no_payment_intent_until_confirmed() -> None:
    store = StandinStore(api_key=KEY)
    pi = store.create_payment_intent(amount=100, created=T0, status="requires_payment_method")
    with pytest.raises(ValueError):
        store.create_checkout_session(created=T0, status="open", payment_intent=pi["id"])
    session = store.create_checkout_session(created=T0, status="open", payment_status="unpaid", amount_total=100)
    with serve(store) as server:
        seen = client_for(server).v1.checkout.sessions.retrieve(session["id"])
        assert seen.status == "open" and seen.payment_intent is None


def test_unordered_lists_page_every_object_once_in_no_created_order() -> None:
    store = StandinStore(api_key=KEY)
    made = [store.create_payment_intent(amount=100 + n, created=T0 + n) for n in range(250)]
    store.unordered.add("payment_intent")
    with serve(store) as server:
        client = client_for(server)
        seen = [p.id for p in client.v1.payment_intents.list({"limit": 100}).auto_paging_iter()]
        assert sorted(seen) == sorted(p["id"] for p in made) and len(seen) == 250
        created = [store.get(i)["created"] for i in seen]
        assert created != sorted(created, reverse=True)  # not newest first
        bounded = client.v1.payment_intents.list({"limit": 100, "created": {"gte": T0 + 10, "lt": T0 + 20}})
        assert sorted(p.created for p in bounded.auto_paging_iter()) == list(range(T0 + 10, T0 + 20))


def test_checkout_session_filters_of_the_real_api() -> None:
    store = StandinStore(api_key=KEY)
    one = store.create_checkout_session(created=T0, customer_email="a@example.com")
    store.update(one["id"], payment_link="plink_1", subscription="sub_1")
    other = store.create_checkout_session(created=T0 + 1, customer_email="b@example.com")
    store.create_charge(amount=100, created=T0)
    with serve(store) as server:
        client = client_for(server)
        by_email = client.v1.checkout.sessions.list({"customer_details": {"email": "b@example.com"}})
        assert [s.id for s in by_email.data] == [other["id"]]
        assert [s.id for s in client.v1.checkout.sessions.list({"payment_link": "plink_1"}).data] == [one["id"]]
        assert [s.id for s in client.v1.checkout.sessions.list({"subscription": "sub_1"}).data] == [one["id"]]
        assert client.v1.charges.list({"transfer_group": "nothing"}).data == []
