"""The decision: join charges with orders and give each order and each unlinked charge one outcome.

Pure: frames in, a frame of outcomes out. No I/O; repairs and reports act on the result.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from reconcile.config import DEFAULT_LINK_BY, DEFAULT_SETTLE_WITHIN
from reconcile.decide import deadlines, match
from reconcile.decide.columns import ORDER_COLUMNS, Columns, length, order_ids
from reconcile.decide.columns import frame as frame_of
from reconcile.decide.findings import ItemKind
from reconcile.decide.inputs import ChargeRow, OrderRecord


class Outcome(ItemKind):
    """Every outcome an order or a charge can get, with what is known about it (as http.HTTPStatus).

    A StrEnum (findings.ItemKind): a member is its code (`Outcome.REPAIRED == "repaired"`), so frames,
    documents and JSON hold the same strings. Declaration order is the report's order.
    """

    automatic: bool  # the job handles it itself: a compare-and-set repair of the order
    needs_edge_look: bool  # its order needs a look past the window's edges before it is believed
    unpaid: bool  # an order with no money, which may pair with an unreferenced charge (a probable match)

    def __new__(
        cls,
        code: str,
        needs_person: bool = False,
        automatic: bool = False,
        needs_edge_look: bool = False,
        unpaid: bool = False,
    ) -> Outcome:
        member = str.__new__(cls, code)
        member._value_ = code
        member.needs_person = needs_person
        member.automatic = automatic
        member.needs_edge_look = needs_edge_look
        member.unpaid = unpaid
        return member

    # code, needs_person, automatic, needs_edge_look, unpaid
    OK = "ok"
    REPAIRED = "repaired", False, True
    MARKED_FAILED = "marked_failed", False, True, False, True
    IN_FLIGHT = "in_flight"
    STALE_PENDING = "stale_pending", False, False, True, True
    OVERDUE_PROCESSING = "overdue_processing", True
    PAID_WITHOUT_CHARGE = "paid_without_charge", True, False, True, True
    AMOUNT_MISMATCH = "amount_mismatch", True
    DUPLICATE_CHARGE = "duplicate_charge", True
    ORPHAN_CHARGE = "orphan_charge", True
    REFUNDED_OR_DISPUTED = "refunded_or_disputed", True
    UNCAPTURED = "uncaptured", True
    FAILED_BUT_CHARGED = "failed_but_charged", True
    DATA_PROBLEM = "data_problem", True
    LINK_CONFLICT = "link_conflict", True
    PROBABLE_MATCH = "probable_match", True, False, True
    REPAIR_UNDONE = "repair_undone", True


# The members by the names the rest of the job uses (c.REPAIRED, ...).
OK = Outcome.OK
REPAIRED = Outcome.REPAIRED
MARKED_FAILED = Outcome.MARKED_FAILED
IN_FLIGHT = Outcome.IN_FLIGHT
STALE_PENDING = Outcome.STALE_PENDING
OVERDUE_PROCESSING = Outcome.OVERDUE_PROCESSING
PAID_WITHOUT_CHARGE = Outcome.PAID_WITHOUT_CHARGE
AMOUNT_MISMATCH = Outcome.AMOUNT_MISMATCH
DUPLICATE_CHARGE = Outcome.DUPLICATE_CHARGE
ORPHAN_CHARGE = Outcome.ORPHAN_CHARGE
REFUNDED_OR_DISPUTED = Outcome.REFUNDED_OR_DISPUTED
UNCAPTURED = Outcome.UNCAPTURED
FAILED_BUT_CHARGED = Outcome.FAILED_BUT_CHARGED
DATA_PROBLEM = Outcome.DATA_PROBLEM
LINK_CONFLICT = Outcome.LINK_CONFLICT
PROBABLE_MATCH = Outcome.PROBABLE_MATCH
REPAIR_UNDONE = Outcome.REPAIR_UNDONE

# Derived from the members (one home): every outcome in order, and those of each kind.
OUTCOMES = tuple(Outcome)
NEEDS_PERSON = tuple(o for o in Outcome if o.needs_person)
HANDLED = tuple(o for o in Outcome if o.automatic)
NEEDS_EDGE_LOOK = tuple(o for o in Outcome if o.needs_edge_look)
UNPAID_OUTCOMES = tuple(o for o in Outcome if o.unpaid)

CHARGE_COLUMNS = [
    "charge_id",
    "created",
    "status",
    "captured",
    "amount",
    "amount_captured",
    "amount_refunded",
    "refunded",
    "disputed",
    "currency",
    "order_ref",
    "payment_intent",
    "description",
    "email",
    "livemode",
    "failure_code",
    "settlement_currency",
    "settlement_amount",
    "exchange_rate",
    "in_window",
    "capture_before",
    "payment_method_type",
]
RESULT_COLUMNS = [
    "outcome",
    "order_key",
    "order_id",
    "order_status",
    "amount",
    "currency",
    "order_created",
    "charge_id",
    "charge_amount",
    "charge_currency",
    "charge_created",
    "amount_refunded",
    "settlement_amount",
    "settlement_currency",
    "email",
    "description",
    "livemode",
    "stored_charge_id",
    "detail",
    "link_kind",
    "charge_ids",
    "facts",
    "expected_end",  # unix seconds: the order's deadline (decide/deadlines.py); None for a charge alone
]


@dataclass(frozen=True)
class Facts:
    """The codes and numbers behind an outcome that its row's columns do not hold; report/wording.py
    words them. A row without Facts (None) needs none: its outcome and columns say it all."""

    problem: str | None = None  # what the order store found wrong with the order document
    authorized: int | None = None  # the paid charge's authorized amount (above captured: a partial capture)
    disputed: bool = False  # the paid charge is disputed
    order_refunded: int = 0  # minor units the order records as refunded
    failed_charges: int = 0
    pending_charges: int = 0
    released: int = 0  # the order's authorizations released uncaptured
    # Why the first was released: its PaymentIntent's cancellation_reason, or AUTHORIZATION_LAPSED.
    released_reason: str | None = None
    # The order's charge-less attempts: (state in match.ATTEMPT_STATES, the first such object, None
    # when unknown), in ATTEMPT_STATES order.
    attempts: tuple[tuple[str, match.PaymentObject | None], ...] = ()
    young: bool = False  # the order is younger than the grace period
    paid_charges: tuple[str, ...] = ()  # every succeeded charge of the order (a duplicate charge)
    # A duplicate charge: what its paid charges after the first took (captured, minor units; None when
    # they are not all in the first's currency): the money to give back.
    extra_paid: int | None = None
    conflict: tuple[match.Conflict, ...] = ()  # the payments whose links disagree about the order
    ref_source: str | None = None  # an orphan charge: where the order id it names comes from (match.SOURCES)
    too_many_pairings: int = 0  # an orphan charge: candidate pairs too many to propose probable matches
    notes: tuple[match.Tie, ...] = ()  # candidates equally likely (no pair proposed)
    pair: match.Pairing | None = None  # a probable match: the pair and why
    # An uncaptured order: when the authorization of its latest uncaptured charge lapses (unix seconds),
    # the deadline to capture or cancel it.
    capture_before: int | None = None
    # A repair a person undid (`reconcile undo`): who and when ("by NAME on DATE"); the job leaves
    # the order alone until a person clears the marker (`reconcile items clear`).
    undone: str | None = None
    would_be: str | None = None  # what the job would have done to an order whose repair was undone
    # The payment method type (of its pending charge, or the one orders.settle_within lists), and the
    # seconds settle_within gives it; None: the order's own expected end or the grace period set its deadline.
    method: str | None = None
    settle_seconds: int | None = None
    own_deadline: bool = False  # the deadline is the order's own expected end


@dataclass(frozen=True)
class Rules:
    pending_status: str
    paid_statuses: tuple[str, ...]
    failed_status: str
    grace_seconds: int
    now: int
    amount_tolerance: int = 0
    repair_within_tolerance: bool = False
    link_by: tuple[str, ...] = DEFAULT_LINK_BY
    probable_matches: bool = True
    probable_drift_seconds: int = 30 * 60
    # Past this many candidate pairs no probable match is proposed (a link kind not configured, not a
    # few crashed checkouts); a rule of its own so a test can reach it with a handful of rows.
    max_pairs: int = match.MAX_PAIRS
    # (order_key, charge_id) pairs a person dismissed: never proposed as probable matches again.
    dismissed_pairs: frozenset[tuple[str, str]] = frozenset()
    # Per Stripe payment method type, seconds its payment may take to settle (orders.settle_within).
    settle_seconds: tuple[tuple[str, int], ...] = tuple(
        (method, int(span.total_seconds())) for method, span in DEFAULT_SETTLE_WITHIN
    )


# Order columns of integers: built as Int64 straight from the Python ints, never through float64 (a
# column of ints and None infers float64, which rounds above 2**53 and cannot take 2**63-1 back).
_EXACT_ORDER_COLUMNS = ("amount", "created", "refunded_amount", "expected_end")


def orders_frame(records: Sequence[OrderRecord] | Columns) -> pd.DataFrame:
    size = length(records) if isinstance(records, dict) else len(records)
    exact = {}
    for name in _EXACT_ORDER_COLUMNS:  # taken out first: frame_of hands the columns over
        values: Any = records.pop(name, None) if isinstance(records, dict) else [r.get(name) for r in records]
        if values is None:
            values = [None] * size
        exact[name] = pd.array(values if isinstance(values, np.ndarray) else list(values), dtype="Int64")
        del values
    frame = frame_of(records, ORDER_COLUMNS)
    for name, column in exact.items():
        frame[name] = column
    # What the shop itself refunded (absent: nothing); unreadable values are a `problem` already.
    frame["refunded_amount"] = frame["refunded_amount"].fillna(0)
    return frame


def charges_frame(rows: Sequence[ChargeRow] | Columns) -> pd.DataFrame:
    frame = frame_of(rows, CHARGE_COLUMNS)
    if frame.empty:
        frame = frame.astype(
            {"created": "int64", "amount": "int64", "amount_captured": "int64", "amount_refunded": "int64"}
        )
    frame["in_window"] = ~frame["in_window"].eq(False)  # rows without the flag come from the window itself
    frame["settlement_amount"] = frame["settlement_amount"].astype("Int64")
    frame["capture_before"] = frame["capture_before"].astype("Int64")
    # API version: since 2025-03-31.basil `amount_refunded` is only money returned to the customer
    # (a partial capture's released remainder and a cancellation no longer count in it).
    frame["customer_refunded"] = frame["amount_refunded"].astype("int64")
    # A charge pulled twice (window and edge look) counts once.
    return frame.drop_duplicates("charge_id", keep="first").reset_index(drop=True)


# A card authorization lapses 7 days after it is made unless the charge says otherwise
# (payment_method_details.card.capture_before); Stripe then releases it.
AUTHORIZATION_SECONDS = 7 * 86400


def released_authorizations(charges: pd.DataFrame, intents: pd.DataFrame, now: int) -> pd.Series:
    """Uncaptured charges whose hold is gone: the PaymentIntent was canceled (for any reason,
    `expired` included) or the authorization window has passed.

    API version: since 2025-03-31.basil a cancellation creates no Refund and leaves the charge
    `refunded: false`, `amount_captured: 0`; only the PaymentIntent says so. Earlier versions set
    `refunded: true`, which still counts here.
    """
    authorized = charges["status"].eq("succeeded") & ~charges["captured"].astype(bool)
    if not authorized.any():
        return authorized
    canceled = set(intents.loc[intents["status"].eq("canceled"), "pi_id"]) if len(intents) else set()
    lapses = (
        charges["capture_before"].astype("Int64").fillna(charges["created"].astype("int64") + AUTHORIZATION_SECONDS)
    )
    lapsed = lapses.le(now).fillna(False).astype(bool)
    return authorized & (charges["refunded"].astype(bool) | charges["payment_intent"].isin(list(canceled)) | lapsed)


# The release reason of an authorization that lapsed (no PaymentIntent cancellation says why).
AUTHORIZATION_LAPSED = ""


def _release_reasons(released: pd.DataFrame, intents: pd.DataFrame) -> pd.Series:
    """Why each released authorization was released: its PaymentIntent's cancellation_reason, else
    AUTHORIZATION_LAPSED (report/wording.py words them)."""
    reasons = intents.set_index("pi_id")["cancellation_reason"] if len(intents) else pd.Series(dtype=object)
    reasons = reasons[~reasons.index.duplicated()]
    reason = released["payment_intent"].map(reasons)
    return reason.where(reason.notna(), AUTHORIZATION_LAPSED)


# The paid charge's columns an order's outcome and its report row use (as c_<name>).
_FIRST_PAID = (
    "charge_id",
    "amount",
    "amount_captured",
    "currency",
    "created",
    "customer_refunded",
    "disputed",
    "settlement_amount",
    "settlement_currency",
    "description",
    "email",
    "livemode",
    "link_kind",
)
# Those an order's outcome depends on: taken for every order; the others only for the rows kept.
_FOR_OUTCOME = ("amount_captured", "currency", "customer_refunded", "disputed")


def classify(
    orders: pd.DataFrame,
    charges: pd.DataFrame,
    rules: Rules,
    intents: pd.DataFrame | None = None,
    sessions: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per order whose outcome is not ok, plus one per succeeded charge in the window that
    names no known order. An order with no row is ok: counted (`outcome_counts`), not carried (at a
    million orders its row would hold every column of its charge, ~100 MB).

    `intents` and `sessions` (match.intents_frame / sessions_frame) add the PaymentIntent and
    Checkout Session links; a probable pair of an unpaid order and an unreferenced charge
    becomes one `probable_match` row carrying both.
    """
    intents = match.intents_frame([]) if intents is None else intents
    links = match.link(
        charges,
        orders,
        intents,
        match.sessions_frame([]) if sessions is None else sessions,
        rules.link_by,
    )
    charges = links.charges
    kinds = _charge_kinds(charges, intents, rules, links)
    frame, first = _order_frame(orders, charges, kinds, intents, links)
    methods = deadlines.order_methods(
        orders,
        charges,
        intents,
        match.sessions_frame([]) if sessions is None else sessions,
        links,
        dict(rules.settle_seconds),
    )
    frame["method"], frame["settle"] = methods.method, methods.seconds
    frame["deadline"] = deadlines.deadlines(orders, methods, rules.grace_seconds)
    outcome = _outcome_codes(frame, rules, links)
    kept = np.flatnonzero(outcome != OK)
    frame = frame.iloc[kept].reset_index(drop=True)
    for name in _FIRST_PAID:  # the paid charge's other columns, for the rows kept only
        if f"c_{name}" not in frame.columns:
            frame[f"c_{name}"] = _take_rows(charges[name], first[kept])
    result = _result_frame(frame, outcome[kept])
    del outcome, first, kept
    _show_uncaptured_charge(result, charges.loc[kinds.uncaptured & kinds.linked])
    facts, named = _facts(result, frame, charges, rules, links)
    undone = frame["undone"].to_numpy(copy=True) if "undone" in frame.columns else None
    result["expected_end"] = frame["deadline"].astype("Int64").array
    del frame
    result["facts"], result["charge_ids"] = _objects(facts, result.index), _objects(named, result.index)
    orphans = _orphans(charges, (kinds.paid | kinds.uncaptured) & ~kinds.linked)
    result = pd.concat([result, orphans], ignore_index=True)[RESULT_COLUMNS] if len(orphans) else result[RESULT_COLUMNS]
    result = _honour_undone(result, undone)
    if rules.probable_matches:
        unreferenced = charges.loc[kinds.paid & ~kinds.referenced & ~kinds.linked & charges["in_window"]]
        result = _probable_matches(result, pd.Index(unreferenced["charge_id"]), rules)
    return result


def outcome_counts(outcomes: pd.DataFrame, orders: int) -> dict[str, int]:
    """How many of each outcome (OUTCOMES order) `classify` gave for `orders` orders: those without a
    row are ok. Every other row but an orphan charge is one order's (a probable match too)."""
    counts = {str(o): int(n) for o, n in outcomes["outcome"].value_counts().reindex(OUTCOMES, fill_value=0).items()}
    counts[OK] = orders - int(outcomes["outcome"].ne(ORPHAN_CHARGE).sum())
    return counts


@dataclass(frozen=True)
class _ChargeKinds:
    """Per charge row: what kind of money it is, and whether it names a known order."""

    paid: pd.Series  # succeeded, captured, some money taken
    released: pd.Series  # an authorization released: no money and no attempt in progress
    uncaptured: pd.Series  # an authorization still held
    linked: pd.Series  # names a known order
    referenced: pd.Series  # names an order by some reference, known or not


def _charge_kinds(charges: pd.DataFrame, intents: pd.DataFrame, rules: Rules, links: match.Links) -> _ChargeKinds:
    settled = charges["status"].eq("succeeded")
    is_paid = settled & charges["captured"] & charges["amount_captured"].gt(0)
    # A released authorization is no money and no attempt in progress: a failed attempt for a
    # pending order, nothing for a paid one, and no item at all when it names no order.
    is_released = released_authorizations(charges, intents, rules.now)
    is_uncaptured = settled & ~charges["captured"] & ~is_released
    return _ChargeKinds(
        is_paid,
        is_released,
        is_uncaptured,
        pd.Series(links.charge_codes >= 0, index=charges.index),  # as charges["order_key"].notna(), no scan
        pd.Series(links.charge_refs, index=charges.index),
    )


def _order_frame(
    orders: pd.DataFrame, charges: pd.DataFrame, kinds: _ChargeKinds, intents: pd.DataFrame, links: match.Links
) -> tuple[pd.DataFrame, np.ndarray]:
    """The orders with, per order, how many charges of each kind it has, why its authorizations
    were released, its attempts' states and the columns of its first paid charge an outcome needs
    (_FOR_OUTCOME, as c_<name>); and per order the row of that charge (-1: none), for the others.

    Built by position, never by joining frames: the orders' own columns are shared, not copied
    (copy-on-write), and each charge column is taken once for the orders (memory at a million:
    a join copies every column of both sides).
    """
    codes = links.charge_codes  # each charge's order's key number (-1: none), as match numbered them
    at = links.order_codes  # each order's key number
    order_keys = pd.Index(orders["order_key"])
    has = at >= 0
    size = links.n_codes

    def per_order(per_key: np.ndarray, missing: Any) -> np.ndarray:
        out = np.full(len(at), missing, dtype=per_key.dtype)
        out[has] = per_key[at[has]]
        return out

    def count(mask: pd.Series) -> np.ndarray:  # int32: 4 bytes an order, and no order has 2**31 charges
        rows = codes[mask.to_numpy(dtype=bool) & (codes >= 0)]
        return per_order(np.bincount(rows, minlength=size).astype(np.int32), 0)

    data: dict[str, Any] = {name: orders[name] for name in orders.columns}
    data["paid_count"] = count(kinds.paid)
    data["failed_count"] = count(charges["status"].eq("failed"))
    data["pending_count"] = count(charges["status"].eq("pending"))
    data["uncaptured_count"] = count(kinds.uncaptured)
    data["released_count"] = count(kinds.released)
    released = charges.loc[kinds.released & kinds.linked, ["order_key", "payment_intent"]]
    why = np.full(len(at), None, dtype=object)
    if len(released):
        reasons = _release_reasons(released, intents).groupby(released["order_key"]).first()
        found = reasons.index.get_indexer(order_keys)
        why[found >= 0] = reasons.to_numpy(dtype=object)[found[found >= 0]]
    data["released_why"] = why
    attempts = links.attempts
    found = attempts.index.get_indexer(order_keys) if len(attempts) else np.full(len(at), -1)
    for state in match.ATTEMPT_STATES:
        values = attempts[state].to_numpy(dtype=np.int32) if len(attempts) else np.zeros(0, dtype=np.int32)
        column = np.zeros(len(at), dtype=np.int32)
        column[found >= 0] = values[found[found >= 0]]
        data[state] = column
    first = per_order(_first_paid(charges, codes, size, (kinds.paid & kinds.linked).to_numpy(dtype=bool)), -1)
    for name in _FOR_OUTCOME:
        data[f"c_{name}"] = _take_rows(charges[name], first)
    return pd.DataFrame(data, index=orders.index, copy=False), first


def _first_paid(charges: pd.DataFrame, codes: np.ndarray, size: int, paid_linked: np.ndarray) -> np.ndarray:
    """Per order key number: the row of its earliest paid charge (by created, then id), -1: none."""
    rows = np.flatnonzero(paid_linked)
    first = np.full(size, -1, dtype=np.int64)
    if not len(rows):
        return first
    row_codes = codes[rows]
    several = pd.Series(row_codes).duplicated(keep=False).to_numpy()
    first[row_codes[~several]] = rows[~several]
    if several.any():  # only orders with several paid charges need the (slow) string sort
        many = rows[several]
        ordered = charges.iloc[many][["created", "charge_id"]].assign(row=many, code=codes[many])
        ordered = ordered.sort_values(["created", "charge_id"]).drop_duplicates("code", keep="first")
        first[ordered["code"].to_numpy()] = ordered["row"].to_numpy()
    return first


def _take_rows(column: pd.Series, rows: np.ndarray) -> Any:
    """column's values at `rows` (-1: missing), in a column type that holds a missing value exactly
    (integers as Int64, never through float; booleans as objects, as a join would make them)."""
    if isinstance(column.dtype, pd.api.extensions.ExtensionDtype):  # str, Int64, boolean: their own missing value
        return column.array.take(rows, allow_fill=True)
    found = rows >= 0
    values = column.to_numpy()
    if values.dtype.kind in "iu":
        return pd.arrays.IntegerArray(
            np.where(found, values[np.where(found, rows, 0)] if len(values) else 0, 0).astype(np.int64), ~found
        )
    out = np.full(len(rows), np.nan, dtype=object)  # as a join fills a column it widens to objects
    out[found] = values[rows[found]].astype(object)
    return out


def _outcome_codes(frame: pd.DataFrame, rules: Rules, links: match.Links) -> np.ndarray:
    """Each order's outcome name (the first rule that holds).

    The masks live only in this function: they are freed before the result frame is built (memory
    at a million orders).
    """
    status = frame["status"]
    pending = status.eq(rules.pending_status)
    paid_order = status.isin(rules.paid_statuses)
    failed_order = status.eq(rules.failed_status)
    young = (rules.now - frame["created"]).lt(rules.grace_seconds).fillna(False).astype(bool)
    one = frame["paid_count"].eq(1)
    captured = frame["c_amount_captured"].astype("Int64")
    difference = (frame["amount"] - captured).abs()
    same_currency = frame["currency"].eq(frame["c_currency"])
    exact = (difference.eq(0) & same_currency).fillna(False).astype(bool)
    within = (difference.le(rules.amount_tolerance) & same_currency).fillna(False).astype(bool)
    repairable = exact | (within & rules.repair_within_tolerance)
    refunded = frame["c_customer_refunded"].astype("Int64").fillna(0)
    disputed = frame["c_disputed"].fillna(False).astype(bool)
    # Expected net: the order's amount less what the shop records as refunded; compared with what
    # the customer finally paid (captured less refunded), within the tolerance.
    net_paid = captured - refunded
    net_gap = ((frame["amount"] - frame["refunded_amount"]) - net_paid).abs()
    net_ok = net_gap.le(rules.amount_tolerance).fillna(False).astype(bool)
    settled_back = (net_paid.eq(0) & ~disputed).fillna(False).astype(bool)
    processing = frame["pending_count"].gt(0) | frame[match.PROCESSING].gt(0)
    # The order's deadline has passed (decide/deadlines.py): its payment should have an answer by now.
    past = frame["deadline"].le(rules.now).fillna(True).astype(bool)
    in_progress = processing | frame[match.OPEN].gt(0)  # an open Checkout Session can still be paid
    failed_attempts = frame["failed_count"].gt(0) | frame[match.CANCELED].gt(0) | frame["released_count"].gt(0)

    conditions = [
        (frame["problem"].notna(), DATA_PROBLEM),
        (~(pending | paid_order | failed_order), DATA_PROBLEM),
        (
            frame["order_key"].isin(list(links.conflicts)) if links.conflicts else pd.Series(False, index=frame.index),
            LINK_CONFLICT,
        ),
        (pending & young, IN_FLIGHT),
        (frame["paid_count"].gt(1), DUPLICATE_CHARGE),
        (one & pending & ~repairable, AMOUNT_MISMATCH),
        (one & paid_order & ~within, AMOUNT_MISMATCH),
        (one & pending & (refunded.gt(0).fillna(False).astype(bool) | disputed), REFUNDED_OR_DISPUTED),
        (one & paid_order & (disputed | ~net_ok), REFUNDED_OR_DISPUTED),
        (one & pending, REPAIRED),
        (one & failed_order & settled_back, OK),  # refunded in full: nothing is owed either way
        (one & failed_order, FAILED_BUT_CHARGED),
        (one, OK),
        (frame["uncaptured_count"].gt(0), UNCAPTURED),
        (paid_order & processing & ~past, IN_FLIGHT),
        (paid_order & processing, OVERDUE_PROCESSING),
        (paid_order, PAID_WITHOUT_CHARGE),
        (pending & processing & ~past, IN_FLIGHT),
        (pending & processing, OVERDUE_PROCESSING),
        (pending & in_progress, IN_FLIGHT),
        (pending & failed_attempts, MARKED_FAILED),
        (pending & ~past, IN_FLIGHT),  # no answer yet, before the order's own expected end
        (pending, STALE_PENDING),
    ]
    # Codes, then the outcome names as shared objects: a million rows would otherwise make a
    # fixed-width text array and a new string object per row.
    names = np.array([OK.value, *(o.value for _, o in conditions)], dtype=object)
    codes = np.select([c.to_numpy(dtype=bool) for c, _ in conditions], range(1, len(conditions) + 1), default=0)
    outcome: np.ndarray = names[codes]
    return outcome


def _result_frame(frame: pd.DataFrame, outcome: np.ndarray) -> pd.DataFrame:
    """The per-order result rows: the order, its first paid charge and its outcome (facts and charge ids come later)."""
    return pd.DataFrame(
        {
            "outcome": outcome,
            "order_key": frame["order_key"],
            "order_id": pd.Series(order_ids(frame["order_id"], frame["order_key"]), index=frame.index, dtype=object),
            "order_status": frame["status"],
            "amount": frame["amount"],
            "currency": frame["currency"],
            "order_created": frame["created"],
            "charge_id": frame["c_charge_id"],
            "charge_amount": frame["c_amount_captured"].astype("Int64"),
            "charge_currency": frame["c_currency"],
            "charge_created": frame["c_created"].astype("Int64"),
            "amount_refunded": frame["c_customer_refunded"].astype("Int64"),
            "settlement_amount": frame["c_settlement_amount"].astype("Int64"),
            "settlement_currency": frame["c_settlement_currency"],
            "email": frame["email"].astype(object).where(frame["email"].notna(), frame["c_email"]),
            "description": frame["c_description"],
            "livemode": frame["c_livemode"],
            "stored_charge_id": frame["stored_charge_id"],
            "detail": None,
            "link_kind": frame["c_link_kind"],
            "charge_ids": None,
            "facts": None,
        },
        copy=False,  # the columns are the joined frame's own (copy-on-write): no second copy of a million rows
    )


def _authorization_lapses(charges: pd.DataFrame) -> pd.Series:
    """Per order: when the authorization of its latest uncaptured charge lapses (the one to capture or cancel)."""
    held = charges.loc[
        charges["status"].eq("succeeded") & ~charges["captured"].astype(bool) & charges["order_key"].notna()
    ]
    if held.empty:
        return pd.Series(dtype="Int64")
    latest = held.sort_values(["created", "charge_id"]).drop_duplicates("order_key", keep="last").set_index("order_key")
    fallback = latest["created"].astype("int64") + AUTHORIZATION_SECONDS
    return latest["capture_before"].astype("Int64").fillna(fallback)


def _honour_undone(result: pd.DataFrame, undone: np.ndarray | None) -> pd.DataFrame:
    """An order whose repair a person undid is never changed again on the job's own: what would
    be a repair (or a failure mark) is `repair_undone`, for a person, until they clear the marker.
    `undone`: the orders' `undone` column (None: no order has one)."""
    if undone is None:
        return result
    held = result["outcome"].isin(HANDLED).to_numpy()[: len(undone)] & pd.notna(undone)
    if not held.any():
        return result
    result = result.copy()
    positions = np.flatnonzero(held)
    facts = result["facts"].to_list()
    before = result["outcome"].to_list()
    for position in positions.tolist():
        facts[position] = replace(
            facts[position] or Facts(), undone=str(undone[position]), would_be=str(before[position])
        )
    outcome = result["outcome"].to_numpy(copy=True)
    outcome[positions] = REPAIR_UNDONE.value
    result["outcome"] = outcome
    result["facts"] = _objects(facts, result.index)
    return result


def _objects(values: Iterable[Any], index: pd.Index) -> pd.Series:
    """A column of Python objects (Facts, lists of ids), kept as they are."""
    return pd.Series(list(values), index=index, dtype=object)


def _show_uncaptured_charge(result: pd.DataFrame, uncaptured: pd.DataFrame) -> None:
    """An `uncaptured` order names its authorized charge (the latest): the one to capture or cancel."""
    rows = result["outcome"].eq(UNCAPTURED)
    if not rows.any() or uncaptured.empty:
        return
    latest = (
        uncaptured.sort_values(["created", "charge_id"])
        .drop_duplicates("order_key", keep="last")
        .set_index("order_key")
    )
    keys = result.loc[rows, "order_key"]
    for column, source in (
        ("charge_id", "charge_id"),
        ("charge_currency", "currency"),
        ("description", "description"),
        ("livemode", "livemode"),
        ("link_kind", "link_kind"),
    ):
        result.loc[rows, column] = keys.map(latest[source]).to_numpy()
    for column, source in (("charge_amount", "amount"), ("charge_created", "created")):  # the authorized amount
        result.loc[rows, column] = pd.array(keys.map(latest[source]).to_numpy(), dtype="Int64")


def _probable_matches(result: pd.DataFrame, unreferenced: pd.Index, rules: Rules) -> pd.DataFrame:
    """Pair unpaid orders with unreferenced charges that are probably the same purchase (one row each pair)."""
    order_rows = result.loc[result["outcome"].isin(UNPAID_OUTCOMES) & result["order_id"].notna()]
    charge_rows = result.loc[result["outcome"].eq(ORPHAN_CHARGE) & result["charge_id"].isin(unreferenced)]
    if order_rows.empty or charge_rows.empty:
        return result
    proposals = match.propose(
        pd.DataFrame(
            {
                "order_key": order_rows["order_key"],
                "amount": order_rows["amount"],
                "currency": order_rows["currency"],
                "created": order_rows["order_created"],
                "email": order_rows["email"],
            }
        ),
        pd.DataFrame(
            {
                "charge_id": charge_rows["charge_id"],
                "amount": charge_rows["charge_amount"],
                "currency": charge_rows["charge_currency"],
                "created": charge_rows["charge_created"],
                "email": charge_rows["email"],
            }
        ),
        rules.probable_drift_seconds,
        rules.amount_tolerance,
        rules.dismissed_pairs,
        rules.max_pairs,
    )
    result = _with_ties(result, proposals, charge_rows.index)
    return _with_pairs(result, proposals.pairs)


def _with_ties(result: pd.DataFrame, proposals: match.Proposals, charge_labels: pd.Index) -> pd.DataFrame:
    """`result` (a copy) with what proposing found but did not pair in its rows' Facts: too many
    pairings to weigh (on every charge row), candidates equally likely (and the charges they name)."""
    result = result.copy()
    facts: dict[Hashable, Facts | None] = dict(zip(result.index, result["facts"], strict=True))
    named: dict[Hashable, list[str] | None] = dict(zip(result.index, result["charge_ids"], strict=True))
    if proposals.skipped:
        for label in charge_labels:
            facts[label] = replace(facts[label] or Facts(), too_many_pairings=proposals.skipped)
    for label, tie in [*proposals.order_notes.items(), *proposals.charge_notes.items()]:
        before = facts[label] or Facts()
        facts[label] = replace(before, notes=(*before.notes, tie))
        if tie.side == "order" and tie.candidates:
            named[label] = [*(named[label] or []), *tie.candidates]
    result["facts"] = _objects(facts.values(), result.index)
    result["charge_ids"] = _objects(named.values(), result.index)
    return result


# The charge's columns a probable match takes from its orphan charge row.
_PAIRED_CHARGE_COLUMNS = (
    "charge_id",
    "charge_amount",
    "charge_currency",
    "charge_created",
    "amount_refunded",
    "settlement_amount",
    "settlement_currency",
    "description",
    "livemode",
)


def _with_pairs(result: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    """Each proposed pair's order row and charge row replaced by one `probable_match` row carrying both."""
    if pairs.empty:
        return result
    paired = result.loc[pairs["order"].to_numpy()].reset_index(drop=True)
    charge = result.loc[pairs["charge"].to_numpy()].reset_index(drop=True)
    for column in _PAIRED_CHARGE_COLUMNS:
        paired[column] = charge[column]
    paired["email"] = paired["email"].where(paired["email"].notna(), charge["email"])
    paired["outcome"] = PROBABLE_MATCH.value
    paired["facts"] = _objects((Facts(pair=pairing) for pairing in match.pairings(pairs)), paired.index)
    paired["charge_ids"] = None
    rest = result.drop(index=[*pairs["order"], *pairs["charge"]])
    return pd.concat([rest, paired], ignore_index=True)[RESULT_COLUMNS]


def _orphans(charges: pd.DataFrame, money: pd.Series) -> pd.DataFrame:
    """`money`: the charges with money that belong to no order."""
    rows = charges.loc[money & charges["in_window"]]
    # A charge naming an order that does not exist says where that name comes from.
    facts = _objects(
        (
            None if pd.isna(ref) else Facts(ref_source=source if isinstance(source, str) else "charge_metadata")
            for ref, source in zip(rows["order_ref"], rows["ref_source"], strict=True)
        ),
        rows.index,
    )
    return pd.DataFrame(
        {
            "outcome": ORPHAN_CHARGE.value,
            "order_key": rows["order_ref"],
            "order_id": None,
            "order_status": None,
            "amount": pd.array([pd.NA] * len(rows), dtype="Int64"),
            "currency": None,
            "order_created": pd.array([pd.NA] * len(rows), dtype="Int64"),
            "charge_id": rows["charge_id"],
            "charge_amount": rows["amount_captured"].where(rows["captured"], rows["amount"]).astype("Int64"),
            "charge_currency": rows["currency"],
            "charge_created": rows["created"].astype("Int64"),
            "amount_refunded": rows["customer_refunded"].astype("Int64"),
            "settlement_amount": rows["settlement_amount"],
            "settlement_currency": rows["settlement_currency"],
            "email": rows["email"],
            "description": rows["description"],
            "livemode": rows["livemode"],
            "stored_charge_id": None,
            "detail": None,
            "link_kind": None,
            "charge_ids": None,
            "facts": facts,
            "expected_end": pd.array([pd.NA] * len(rows), dtype="Int64"),
        }
    )


def _facts(
    result: pd.DataFrame,
    frame: pd.DataFrame,
    charges: pd.DataFrame,
    rules: Rules,
    links: match.Links,
) -> tuple[list[Facts | None], list[list[str] | None]]:
    """Each outcome's Facts, and the charges it names besides its own (built row by row: few rows)."""
    outcome = result["outcome"].to_numpy()
    facts: list[Facts | None] = [None] * len(result)
    named: list[list[str] | None] = [None] * len(result)
    positions = np.flatnonzero(~_plain(outcome, frame))
    if not len(positions):
        return facts, named
    lookups = _ChargeLookups(charges)
    keys = result["order_key"].to_numpy()[positions]
    # Plain dicts of only the columns used: row access on a wide frame costs ~100 us a row.
    extras = frame.iloc[positions][list(_FACT_COLUMNS)].to_dict("records")
    for position, key, kind, extra in zip(positions, keys, outcome[positions], extras, strict=True):
        facts[position] = found = _row_facts(extra, key, kind, lookups, rules, links)
        ids = [*found.paid_charges, *(links.conflict_charges.get(key, ()) if kind == LINK_CONFLICT else ())]
        if kind in (IN_FLIGHT, OVERDUE_PROCESSING):  # the charges to look at again (a re-check retrieves them)
            ids += lookups.pending_charges(key)
        named[position] = ids or None
    return facts, named


def _plain(outcome: np.ndarray, frame: pd.DataFrame) -> np.ndarray:
    """The rows whose outcome needs no Facts: the common ones (a backfill can have hundreds of thousands)."""
    no_attempt = (frame[list(match.ATTEMPT_STATES)].sum(axis=1).eq(0) & frame["released_count"].eq(0)).to_numpy()
    plain: np.ndarray = (outcome == OK) | (outcome == REPAIRED)
    plain |= (
        np.isin(outcome, [STALE_PENDING.value, IN_FLIGHT.value, PAID_WITHOUT_CHARGE.value])
        & no_attempt
        & (frame["pending_count"].to_numpy() == 0)
        & frame["expected_end"].isna().to_numpy()  # an order's own deadline is said in words
    )
    return plain


# The joined frame's columns a row's Facts are built from.
_FACT_COLUMNS = (
    "problem",
    "c_amount",
    "c_disputed",
    "refunded_amount",
    "failed_count",
    "pending_count",
    "released_count",
    "released_why",
    "created",
    "method",
    "settle",
    "expected_end",
    *match.ATTEMPT_STATES,
)


class _ChargeLookups:
    """Per order key, what only a few outcomes need of the charges: built on first use."""

    def __init__(self, charges: pd.DataFrame) -> None:
        self._charges = charges
        self._paid: pd.Series | None = None
        self._lapses: pd.Series | None = None
        self._pending: pd.DataFrame | None = None

    def paid_charges(self, key: str) -> tuple[str, ...]:
        """Every succeeded captured charge of the order."""
        if self._paid is None:
            charges = self._charges
            settled = charges.loc[charges["status"].eq("succeeded") & charges["captured"]]
            self._paid = settled.groupby("order_key")["charge_id"].apply(list)
        return tuple(self._paid.get(key, []))

    def extra_paid(self, key: str) -> int | None:
        """What the order's paid charges after the first (by created, then id) took, in the first's currency."""
        paid = set(self.paid_charges(key))
        charges = self._charges
        rows = charges.loc[charges["charge_id"].isin(paid) & charges["amount_captured"].gt(0)]
        rows = rows.sort_values(["created", "charge_id"])
        if len(rows) < 2 or rows["currency"].nunique() != 1:
            return None
        return int(rows["amount_captured"].iloc[1:].sum())

    def pending_charges(self, key: str) -> list[str]:
        """The order's charges still pending (a bank debit settling)."""
        return list(self._pending_charges()["charge_id"].get(key, []))

    def pending_method(self, key: str) -> str | None:
        """The payment method type of the order's latest pending charge (a type settle_within does not list)."""
        found = self._pending_charges()["method"].get(key)
        return found if isinstance(found, str) else None

    def _pending_charges(self) -> pd.DataFrame:
        if self._pending is None:
            charges = self._charges
            pending = charges.loc[charges["status"].eq("pending") & charges["order_key"].notna()]
            pending = pending.sort_values(["created", "charge_id"])
            by_order = pending.groupby("order_key")
            self._pending = pd.DataFrame(
                {"charge_id": by_order["charge_id"].apply(list), "method": by_order["payment_method_type"].last()}
            )
        return self._pending

    def capture_before(self, key: str) -> int | None:
        """When the authorization of the order's latest uncaptured charge lapses."""
        if self._lapses is None:
            self._lapses = _authorization_lapses(self._charges)
        lapse = self._lapses.get(key)
        return int(lapse) if lapse is not None and pd.notna(lapse) else None


def _row_facts(
    extra: dict[Hashable, Any], key: str, kind: str, lookups: _ChargeLookups, rules: Rules, links: match.Links
) -> Facts:
    """One row's Facts from its _FACT_COLUMNS (`extra`), its order key and its outcome (`kind`)."""
    return Facts(
        problem=extra["problem"] if isinstance(extra["problem"], str) else None,
        authorized=int(extra["c_amount"]) if pd.notna(extra["c_amount"]) else None,
        disputed=bool(extra["c_disputed"]) if pd.notna(extra["c_disputed"]) else False,
        order_refunded=int(extra["refunded_amount"]) if pd.notna(extra["refunded_amount"]) else 0,
        failed_charges=int(extra["failed_count"]),
        pending_charges=int(extra["pending_count"]),
        released=int(extra["released_count"]),
        released_reason=extra["released_why"] if isinstance(extra["released_why"], str) else None,
        attempts=tuple(
            (state, links.attempt_objects.get((key, state))) for state in match.ATTEMPT_STATES if extra[state]
        ),
        young=bool(pd.notna(extra["created"]) and rules.now - extra["created"] < rules.grace_seconds),
        paid_charges=lookups.paid_charges(key) if kind == DUPLICATE_CHARGE else (),
        extra_paid=lookups.extra_paid(key) if kind == DUPLICATE_CHARGE else None,
        conflict=links.conflicts.get(key, ()) if kind == LINK_CONFLICT else (),
        capture_before=lookups.capture_before(key) if kind == UNCAPTURED else None,
        method=extra["method"]
        if isinstance(extra["method"], str)
        else (lookups.pending_method(key) if kind in (IN_FLIGHT, OVERDUE_PROCESSING) else None),
        settle_seconds=int(extra["settle"]) if pd.notna(extra["settle"]) and extra["settle"] >= 0 else None,
        own_deadline=bool(pd.notna(extra["expected_end"])),
    )
