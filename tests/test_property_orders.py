"""Property: one strange order document never stops the job, is never changed, and never hides the others.

Hypothesis puts an arbitrary BSON-like value (ints past 2**53 and 2**63, NaN and infinities, floats
with and without a fraction, Decimal128s, bools, strings, dates with extreme offsets, ObjectIds,
binary, lists, documents...) into one configured field of one order among normal stuck orders,
each with a succeeded charge naming it. The run never crashes; the normal orders are repaired as
usual; the odd order, when its value is not one the job can hold exactly, is a `data_problem`
naming it and its document is not changed by one byte.

mongomock, not nx-27017: it keeps every BSON type (nx-27017 has no Decimal128) and needs no
server per example. The end-to-end case on nx-27017 is in test_reliability.py.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import mongomock
from bson import Binary, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from conftest import API_KEY
from hypothesis import HealthCheck, example, given, reject, settings
from hypothesis import strategies as st

from reconcile.config import parse_config
from reconcile.decide import classify as c
from reconcile.demo.shop import ShopSeeder
from reconcile.demo.standin import StandinStore, serve
from reconcile.run import window as job
from reconcile.stripe import pull as stripe_pull
from reconcile.timeutil import utcnow

INT64_MAX = 2**63 - 1  # a BSON int64
FIELDS = ("amount", "status", "currency", "created_at", "charge_id", "email", "refunded", "pi_id", "session_id")
NORMAL_STUCK = 3

_edge_ints = st.sampled_from(
    [0, 1, 2500, 2**31, 2**53, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -1, -(2**63), 10**30, -(10**30)]
)
_decimals = st.sampled_from(["2500", "25.00", "2500.5", "NaN", "-Infinity", "1E+40", "-0", "9223372036854775808"])
# Dates as a driver returns them (BSON dates are UTC milliseconds): naive or UTC, year 1 to 9999.
_datetimes = st.one_of(
    st.datetimes(min_value=datetime.min, max_value=datetime.max),
    st.datetimes(min_value=datetime.min, max_value=datetime.max, timezones=st.just(UTC)),
)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    _edge_ints,
    st.builds(Int64, st.integers(-(2**63), 2**63 - 1)),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([2500.0, 2500.5, 2.0**53 + 2, 9.3e18, -0.0]),
    st.builds(lambda t: Decimal128(Decimal(t)), _decimals),
    st.text(max_size=30),
    st.sampled_from(["2500", "usd", "USD ", "created", "accepted", "2026-01-01T00:00:00+14:00", "ch_missing", ""]),
    _datetimes,
    st.builds(ObjectId),
    st.builds(Binary, st.binary(max_size=8)),
    st.sampled_from([Regex("^a"), Timestamp(1, 1), MinKey(), MaxKey()]),
)
bson_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["a", "$numberLong", "x.y"]), inner, max_size=2)
    ),
    max_leaves=4,
)


def _exact_int(value: object, allow_none: bool) -> bool:
    if value is None:
        return allow_none
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= INT64_MAX


def _readable(field: str, value: object) -> bool:
    """Whether the job may read this value as a normal one (then the order may be repaired or listed)."""
    if field == "amount":
        return _exact_int(value, allow_none=False)
    if field == "refunded":
        return _exact_int(value, allow_none=True)
    if field == "status":
        return value == "created"
    if field == "currency":
        return isinstance(value, str) and value.strip().lower() == "usd"
    if field == "created_at":
        return isinstance(value, (datetime, str))  # a date, or a string that may parse as one
    if field == "charge_id":
        return value is None or isinstance(value, str)
    return True  # email and the stored PaymentIntent / session ids: never written, odd values are ignored


CONFIG = {
    "orders": {
        "refunded_amount_field": "refunded",
        "payment_intent_id_field": "pi_id",
        "checkout_session_id_field": "session_id",
    },
    "mongodb": {"database": "shop"},
}


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(FIELDS), value=bson_values)
@example(field="amount", value=2**63 - 1)
@example(field="amount", value=2**53 + 1)
@example(field="amount", value=float("nan"))
@example(field="amount", value=2500.0)
@example(field="amount", value=Decimal128("25.50"))
@example(field="amount", value=Decimal128("2500"))
@example(field="amount", value=True)
@example(field="refunded", value=-1)
@example(field="charge_id", value={"$ne": None})
@example(field="created_at", value=datetime.min)
@example(field="created_at", value="0001-01-01T00:00:00+14:00")
@example(field="status", value=["created"])
def test_one_odd_order_field_never_stops_the_job_nor_is_changed(field, value):
    now = utcnow()
    store = StandinStore(api_key=API_KEY)
    db = mongomock.MongoClient(tz_aware=True).shop
    shop = ShopSeeder(store, db.orders, now)
    normal = []
    for _ in range(NORMAL_STUCK):
        normal.append(shop.order(c.REPAIRED))
        shop.charge(normal[-1])
    # An order with the value missing in the amount column beside it: the column once went through float64.
    broken = shop.order(None, amount=None)
    shop.charge(broken)
    odd = shop.order(None)
    try:
        db.orders.update_one({"_id": odd}, {"$set": {field: value}})
    except OverflowError:  # not BSON (an int past 8 bytes): no database can hold it (see the unit test below)
        reject()
    shop.charge(odd)
    before = db.orders.find_one({"_id": odd})

    with serve(store) as server:
        config = parse_config({"stripe": {"api_base": server.url}, **CONFIG})
        client = stripe_pull.make_client(API_KEY, config.stripe)
        request = job.RunRequest(since=now - timedelta(days=1), until=now, now=now, report_dir=_report_dir())
        try:
            result = job.run(config, client, db, request)  # never raises
        except NotImplementedError as exc:  # mongomock cannot order some types in a range query; MongoDB can
            if "Mongomock" not in str(exc):
                raise
            reject()

    summary = result.summary.to_json()
    assert set(summary["repaired"]) - {str(odd)} == {str(o) for o in normal}
    for order_id in normal:
        assert db.orders.find_one({"_id": order_id})["status"] == "accepted"
    problems = {d["order_id"]: d["detail"] for d in summary["discrepancies"] if d["outcome"] == c.DATA_PROBLEM}
    assert str(broken) in problems
    if not _readable(field, value):
        assert str(odd) in problems, f"{field}={value!r} was not made a data_problem"
        after = db.orders.find_one({"_id": odd})
        assert _same(after, before), f"the order with {field}={value!r} was changed"
        assert db.reconcile_audit.count_documents({"order_key": str(odd)}) == 0


def _same(a: object, b: object) -> bool:
    """Equal documents, NaN equal to itself (a NaN amount is left as it was)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


_dirs: list = []


def _report_dir():
    import tempfile
    from pathlib import Path

    if not _dirs:
        _dirs.append(tempfile.TemporaryDirectory(prefix="reconcile-prop-"))
    return Path(_dirs[0].name)


def test_values_past_int64_are_problems_when_a_driver_hands_them_over():
    """A Python int past int64 cannot come from BSON, but the record must not carry one into an Int64 column."""
    from reconcile.config import OrdersConfig
    from reconcile.store.orders import order_record

    base = {"_id": "o", "status": "created", "currency": "usd", "created_at": datetime(2026, 1, 1)}
    config = OrdersConfig(refunded_amount_field="refunded")
    assert order_record({**base, "amount": 2**63 - 1}, config)["problem"] is None
    assert "beyond a 64-bit integer" in order_record({**base, "amount": 2**63}, config)["problem"]
    assert "not a non-negative integer" in order_record({**base, "amount": 1, "refunded": 2**64}, config)["problem"]
    frame = c.orders_frame([order_record({**base, "amount": 2**63 - 1}, config), order_record(base, config)])
    assert frame["amount"].tolist()[0] == 2**63 - 1
