"""The decision: join charges with orders and give each order and each unlinked charge one outcome.

Pure: frames in, a frame of outcomes out. No I/O; repairs and reports act on the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

# Outcome names, used everywhere (report, summary, logs).
OK = "ok"
REPAIRED = "repaired"
MARKED_FAILED = "marked_failed"
STALE_PENDING = "stale_pending"
PAID_WITHOUT_CHARGE = "paid_without_charge"
AMOUNT_MISMATCH = "amount_mismatch"
DUPLICATE_CHARGE = "duplicate_charge"
ORPHAN_CHARGE = "orphan_charge"
REFUNDED_OR_DISPUTED = "refunded_or_disputed"
UNCAPTURED = "uncaptured"
IN_FLIGHT = "in_flight"
FAILED_BUT_CHARGED = "failed_but_charged"
DATA_PROBLEM = "data_problem"

OUTCOMES = (
    OK, REPAIRED, MARKED_FAILED, IN_FLIGHT, STALE_PENDING,
    PAID_WITHOUT_CHARGE, AMOUNT_MISMATCH, DUPLICATE_CHARGE, ORPHAN_CHARGE,
    REFUNDED_OR_DISPUTED, UNCAPTURED, FAILED_BUT_CHARGED, DATA_PROBLEM,
)
# Outcomes a person must look at; the others were handled or are only listed.
NEEDS_PERSON = (
    PAID_WITHOUT_CHARGE, AMOUNT_MISMATCH, DUPLICATE_CHARGE, ORPHAN_CHARGE,
    REFUNDED_OR_DISPUTED, UNCAPTURED, FAILED_BUT_CHARGED, DATA_PROBLEM,
)
# Outcomes whose order needs a look past the window's edges before it is believed.
NEEDS_EDGE_LOOK = (PAID_WITHOUT_CHARGE, STALE_PENDING)

ORDER_COLUMNS = ["order_id", "order_key", "status", "amount", "currency", "created", "stored_charge_id", "email", "problem"]
CHARGE_COLUMNS = [
    "charge_id", "created", "status", "captured", "amount", "amount_captured", "amount_refunded",
    "refunded", "disputed", "currency", "order_ref", "payment_intent", "description", "email",
    "livemode", "failure_code", "settlement_currency", "settlement_amount", "exchange_rate", "in_window",
]
RESULT_COLUMNS = [
    "outcome", "order_key", "order_id", "order_status", "amount", "currency", "order_created",
    "charge_id", "charge_amount", "charge_currency", "charge_created", "amount_refunded",
    "settlement_amount", "settlement_currency", "email", "description", "livemode", "stored_charge_id", "detail",
]


@dataclass(frozen=True)
class Rules:
    pending_status: str
    paid_statuses: tuple[str, ...]
    failed_status: str
    grace_seconds: int
    now: int
    amount_tolerance: int = 0


def _frame(data: list[dict[str, Any]] | dict[str, list[Any]], names: list[str]) -> pd.DataFrame:
    """Rows (dicts) or columns (a dict of lists, see reconcile/columns.py) -> a frame of ``names``."""
    if isinstance(data, dict) and any(len(values) for values in data.values()):
        return pd.DataFrame(data, columns=names)
    return pd.DataFrame.from_records([] if isinstance(data, dict) else data, columns=names)  # empty: object columns


def orders_frame(records: list[dict[str, Any]] | dict[str, list[Any]]) -> pd.DataFrame:
    frame = _frame(records, ORDER_COLUMNS)
    frame["amount"] = frame["amount"].astype("Int64")
    frame["created"] = frame["created"].astype("Int64")
    return frame


def charges_frame(rows: list[dict[str, Any]] | dict[str, list[Any]]) -> pd.DataFrame:
    frame = _frame(rows, CHARGE_COLUMNS)
    if frame.empty:
        frame = frame.astype({"created": "int64", "amount": "int64", "amount_captured": "int64", "amount_refunded": "int64"})
    frame["in_window"] = ~frame["in_window"].eq(False)  # rows without the flag come from the window itself
    frame["settlement_amount"] = frame["settlement_amount"].astype("Int64")
    # A charge pulled twice (window and edge look) counts once.
    return frame.drop_duplicates("charge_id", keep="first").reset_index(drop=True)


def with_more_charges(charges: pd.DataFrame, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The window's charges plus more found past its edges (a charge already present counts once)."""
    both = pd.concat([charges, charges_frame(rows)], ignore_index=True)
    return both.drop_duplicates("charge_id", keep="first").reset_index(drop=True)


def link_charges(charges: pd.DataFrame, orders: pd.DataFrame) -> pd.Series:
    """The order key each charge belongs to: by metadata order id, else by the order's stored charge id."""
    keys = pd.Index(orders["order_key"].unique())
    by_metadata = charges["order_ref"].where(charges["order_ref"].isin(keys))
    stored = orders.dropna(subset=["stored_charge_id"]).drop_duplicates("stored_charge_id")
    by_stored = charges["charge_id"].map(pd.Series(stored["order_key"].values, index=stored["stored_charge_id"].values))
    return by_metadata.where(by_metadata.notna(), by_stored)


def classify(orders: pd.DataFrame, charges: pd.DataFrame, rules: Rules) -> pd.DataFrame:
    """One outcome per order, plus one per succeeded charge in the window that names no known order."""
    charges = charges.assign(order_key=link_charges(charges, orders))
    settled = charges["status"].eq("succeeded")
    is_paid = settled & charges["captured"] & charges["amount_captured"].gt(0)
    is_uncaptured = settled & ~charges["captured"] & ~charges["refunded"]
    linked = charges["order_key"].notna()

    def count(mask: pd.Series) -> pd.Series:
        return charges.loc[mask & linked].groupby("order_key").size()

    paid = charges.loc[is_paid & linked]
    # The earliest paid charge of each order; only orders with several need the (slow) string sort.
    several = paid["order_key"].duplicated(keep=False)
    first_paid = pd.concat([
        paid.loc[~several],
        paid.loc[several].sort_values(["created", "charge_id"]).drop_duplicates("order_key", keep="first"),
    ]).set_index("order_key")
    per_order = pd.DataFrame({
        "paid_count": count(is_paid),
        "failed_count": count(charges["status"].eq("failed")),
        "pending_count": count(charges["status"].eq("pending")),
        "uncaptured_count": count(is_uncaptured),
    })
    per_order = per_order.join(first_paid[[
        "charge_id", "amount_captured", "currency", "created", "amount_refunded", "disputed",
        "settlement_amount", "settlement_currency", "description", "email", "livemode",
    ]].add_prefix("c_"), how="left")
    frame = orders.join(per_order, on="order_key")
    for column in ("paid_count", "failed_count", "pending_count", "uncaptured_count"):
        frame[column] = frame[column].fillna(0).astype(int)

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
    money_moved_back = (frame["c_amount_refunded"].fillna(0).gt(0) | frame["c_disputed"].fillna(False).astype(bool))

    conditions = [
        (frame["problem"].notna(), DATA_PROBLEM),
        (~(pending | paid_order | failed_order), DATA_PROBLEM),
        (pending & young, IN_FLIGHT),
        (frame["paid_count"].gt(1), DUPLICATE_CHARGE),
        (one & pending & ~exact, AMOUNT_MISMATCH),
        (one & paid_order & ~within, AMOUNT_MISMATCH),
        (one & ~failed_order & money_moved_back, REFUNDED_OR_DISPUTED),
        (one & pending, REPAIRED),
        (one & failed_order, FAILED_BUT_CHARGED),
        (one, OK),
        (frame["uncaptured_count"].gt(0), UNCAPTURED),
        (paid_order, PAID_WITHOUT_CHARGE),
        (pending & frame["pending_count"].gt(0), IN_FLIGHT),
        (pending & frame["failed_count"].gt(0), MARKED_FAILED),
        (pending, STALE_PENDING),
    ]
    outcome = np.select([c.to_numpy(dtype=bool) for c, _ in conditions], [o for _, o in conditions], default=OK)
    result = pd.DataFrame({
        "outcome": outcome,
        "order_key": frame["order_key"],
        "order_id": frame["order_id"],
        "order_status": frame["status"],
        "amount": frame["amount"],
        "currency": frame["currency"],
        "order_created": frame["created"],
        "charge_id": frame["c_charge_id"],
        "charge_amount": captured,
        "charge_currency": frame["c_currency"],
        "charge_created": frame["c_created"].astype("Int64"),
        "amount_refunded": frame["c_amount_refunded"].astype("Int64"),
        "settlement_amount": frame["c_settlement_amount"].astype("Int64"),
        "settlement_currency": frame["c_settlement_currency"],
        "email": frame["email"].fillna(frame["c_email"]),
        "description": frame["c_description"],
        "livemode": frame["c_livemode"],
        "stored_charge_id": frame["stored_charge_id"],
        "detail": None,
    })
    result["detail"] = _details(result, frame, charges, rules)
    orphans = _orphans(charges, is_paid | is_uncaptured)
    return pd.concat([result, orphans], ignore_index=True)[RESULT_COLUMNS] if len(orphans) else result[RESULT_COLUMNS]


def _orphans(charges: pd.DataFrame, money: pd.Series) -> pd.DataFrame:
    rows = charges.loc[money & charges["order_key"].isna() & charges["in_window"]]
    detail = np.where(
        rows["order_ref"].notna(),
        "charge names order " + rows["order_ref"].fillna("").str.slice(0, 60) + ", which does not exist",
        "charge names no order",
    )
    return pd.DataFrame({
        "outcome": ORPHAN_CHARGE,
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
        "amount_refunded": rows["amount_refunded"].astype("Int64"),
        "settlement_amount": rows["settlement_amount"],
        "settlement_currency": rows["settlement_currency"],
        "email": rows["email"],
        "description": rows["description"],
        "livemode": rows["livemode"],
        "stored_charge_id": None,
        "detail": detail,
    })


def _details(result: pd.DataFrame, frame: pd.DataFrame, charges: pd.DataFrame, rules: Rules) -> list[str | None]:
    """A short sentence per outcome that is not plain ok; built row by row (few rows)."""
    from reconcile.money import format_amount

    by_order = None
    details: list[str | None] = [None] * len(result)
    positions = np.flatnonzero(result["outcome"].to_numpy() != OK)
    rows = result.iloc[positions].to_dict("records")  # one conversion, not one .iloc per row
    extras = frame.iloc[positions][["problem", "c_disputed", "failed_count", "pending_count"]].to_dict("records")
    for position, row, extra in zip(positions, rows, extras):
        outcome = row["outcome"]
        if outcome == DATA_PROBLEM:
            text = extra["problem"] if isinstance(extra["problem"], str) else f"unknown order status {str(row['order_status'])[:40]!r}"
        elif outcome == DUPLICATE_CHARGE:
            if by_order is None:
                settled = charges.loc[charges["status"].eq("succeeded") & charges["captured"]]
                by_order = settled.groupby("order_key")["charge_id"].apply(list)
            ids = by_order.get(row["order_key"], [])
            text = f"{len(ids)} succeeded charges: " + ", ".join(ids)
        elif outcome == AMOUNT_MISMATCH:
            text = (
                f"order {format_amount(row['amount'], row['currency'] or '')}, "
                f"charge captured {format_amount(row['charge_amount'], row['charge_currency'] or '')}"
            )
        elif outcome == REFUNDED_OR_DISPUTED:
            parts = []
            if pd.notna(row["amount_refunded"]) and row["amount_refunded"] > 0:
                parts.append(f"refunded {format_amount(row['amount_refunded'], row['charge_currency'])}")
            if bool(extra["c_disputed"]):
                parts.append("disputed")
            text = " and ".join(parts) + f" while the order is {row['order_status']}"
        elif outcome == REPAIRED:
            text = f"{rules.pending_status} -> {rules.paid_statuses[0]} (charge succeeded)"
        elif outcome == MARKED_FAILED:
            text = f"{rules.pending_status} -> {rules.failed_status} ({int(extra['failed_count'])} failed charge(s), none succeeded)"
        elif outcome == FAILED_BUT_CHARGED:
            text = f"order is {rules.failed_status} but charge {row['charge_id']} succeeded"
        elif outcome == UNCAPTURED:
            text = "charge authorized, not captured"
        elif outcome == PAID_WITHOUT_CHARGE:
            text = f"order is {row['order_status']} but no succeeded charge was found"
        elif outcome == IN_FLIGHT:
            text = "charge still processing" if extra["pending_count"] else "younger than the grace period"
        elif outcome == STALE_PENDING:
            text = "no charge at all (abandoned checkout, or the request never reached Stripe)"
        else:
            text = None
        details[position] = text
    return details
