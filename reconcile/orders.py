"""Load orders from MongoDB and turn each document into a checked, flat record."""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from typing import Any, Iterable, Iterator

from bson import ObjectId
from dateutil import parser as date_parser
from pymongo.collection import Collection

from reconcile.config import OrdersConfig
from reconcile.mongo import mongo_errors
from reconcile.timeutil import as_utc, to_unix

log = logging.getLogger(__name__)

BATCH = 1000
_CURRENCY = re.compile(r"^[a-z]{3}$")


def projection(config: OrdersConfig) -> dict[str, int]:
    wanted = [
        config.status_field,
        config.amount_field,
        config.currency_field,
        config.created_at_field,
        config.charge_id_field,
        config.email_field,
        config.payment_intent_id_field,
        config.checkout_session_id_field,
        config.refunded_amount_field,
    ]
    return {name: 1 for name in wanted if name}


def _get(doc: dict[str, Any], dotted: str) -> Any:
    value: Any = doc
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def id_candidates(ref: str) -> list[Any]:
    """An order id from Stripe metadata may name a string _id or an ObjectId: look up both."""
    candidates: list[Any] = [ref]
    if ObjectId.is_valid(ref) and len(ref) == 24:
        candidates.append(ObjectId(ref))
    return candidates


def _batches(items: list[Any], size: int = BATCH) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _parse_created(value: Any) -> tuple[int | None, str | None]:
    if isinstance(value, datetime):
        return int(as_utc(value).timestamp()), None
    if isinstance(value, str):
        try:
            return int(as_utc(date_parser.isoparse(value)).timestamp()), None
        except (ValueError, OverflowError):
            return None, f"created_at {value[:40]!r} is not a date"
    if value is None:
        return None, "created_at is missing"
    return None, f"created_at has type {type(value).__name__}, expected a date"


def _parse_amount(value: Any) -> tuple[int | None, str | None]:
    if isinstance(value, bool):
        return None, "amount is a boolean"
    if isinstance(value, int):
        return (value, None) if value >= 0 else (None, f"amount {value} is negative")
    if value is None:
        return None, "amount is missing"
    shown = str(value)[:40]
    return None, f"amount {shown!r} is a {type(value).__name__}, expected an integer in minor units"


def _stored_id(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _parse_refunded(value: Any) -> tuple[int | None, str | None]:
    """The shop's own record of what it refunded: absent means nothing."""
    if value is None:
        return 0, None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value, None
    shown = str(value)[:40]
    return None, f"refunded amount {shown!r} is not a non-negative integer in minor units"


def order_record(doc: dict[str, Any], config: OrdersConfig) -> dict[str, Any]:
    """Flatten one order document; anything odd becomes a `problem` string, never an exception."""
    problems = []
    amount, problem = _parse_amount(_get(doc, config.amount_field))
    if problem:
        problems.append(problem)
    created, problem = _parse_created(_get(doc, config.created_at_field))
    if problem:
        problems.append(problem)
    status = _get(doc, config.status_field)
    if not isinstance(status, str):
        problems.append("status is missing" if status is None else f"status has type {type(status).__name__}")
        status = None
    currency = _get(doc, config.currency_field)
    if isinstance(currency, str) and _CURRENCY.match(currency.strip().lower()):
        currency = currency.strip().lower()
    else:
        problems.append(
            "currency is missing" if currency is None or currency == ""
            else f"currency {str(currency)[:40]!r} is not a three-letter ISO code"
        )
        currency = None
    charge_id = _get(doc, config.charge_id_field)
    email = _get(doc, config.email_field) if config.email_field else None
    refunded, problem = _parse_refunded(_get(doc, config.refunded_amount_field)) if config.refunded_amount_field else (0, None)
    if problem:
        problems.append(problem)
    intent_id = _get(doc, config.payment_intent_id_field) if config.payment_intent_id_field else None
    session_id = _get(doc, config.checkout_session_id_field) if config.checkout_session_id_field else None
    return {
        "order_id": doc["_id"],
        "order_key": str(doc["_id"]),
        "status": status,
        "amount": amount,
        "currency": currency,
        "created": created,
        "stored_charge_id": _stored_id(charge_id),
        "email": email if isinstance(email, str) else None,
        "problem": "; ".join(problems) or None,
        "stored_payment_intent_id": _stored_id(intent_id),
        "stored_session_id": _stored_id(session_id),
        "refunded_amount": refunded,
    }


def _typed_key(value: Any) -> tuple[str, str]:
    return type(value).__name__, str(value)


def load_orders(
    orders: Collection,
    config: OrdersConfig,
    since: datetime,
    until: datetime,
    order_refs: Iterable[str] = (),
    charge_ids: Iterable[str] = (),
    payment_intent_ids: Iterable[str] = (),
    session_ids: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """Orders created in the window, plus those named by Stripe (by _id) or naming a Stripe object (by stored id).

    `charge_ids`, `payment_intent_ids` and `session_ids` are looked up in the order fields that
    store them (when configured), in batches of `$in`.
    """
    fields = projection(config)
    docs: dict[tuple[str, str], dict[str, Any]] = {}

    def add(cursor: Iterable[dict[str, Any]]) -> None:
        for doc in cursor:
            docs.setdefault(_typed_key(doc["_id"]), doc)

    with mongo_errors("loading orders"):
        add(orders.find({config.created_at_field: {"$gte": since, "$lt": until}}, fields))
        add(_string_dated(orders, config, since, until, fields))
        in_window = len(docs)
        loaded_keys = {key for _, key in docs}
        refs = sorted({r for r in order_refs if r not in loaded_keys})
        for batch in _batches([c for ref in refs for c in id_candidates(ref)]):
            add(orders.find({"_id": {"$in": batch}}, fields))
        for field, ids in (
            (config.charge_id_field, charge_ids),
            (config.payment_intent_id_field, payment_intent_ids),
            (config.checkout_session_id_field, session_ids),
        ):
            if not field:
                continue
            known = {_get(d, field) for d in docs.values()}
            wanted = sorted({i for i in ids if i and i not in known})
            for batch in _batches(wanted):
                add(orders.find({field: {"$in": batch}}, fields))
    log.info("load.orders", extra={"in_window": in_window, "by_reference": len(docs) - in_window})
    records = [order_record(doc, config) for doc in docs.values()]
    _flag_shared_ids(records)
    return records


def _string_dated(
    orders: Collection, config: OrdersConfig, since: datetime, until: datetime, fields: dict[str, int]
) -> Iterator[dict[str, Any]]:
    """Orders whose created_at is an ISO string: a date range never matches strings in MongoDB.

    The string range is a day wider on each side (offsets like +09:00); each date is then parsed
    and kept only inside the window (or when it cannot be parsed: that is a data problem to show).
    """
    low = (since - timedelta(days=1)).date().isoformat()
    high = (until + timedelta(days=2)).date().isoformat()
    start, end = to_unix(since), to_unix(until)
    for doc in orders.find({config.created_at_field: {"$type": "string", "$gte": low, "$lt": high}}, fields):
        created, _ = _parse_created(_get(doc, config.created_at_field))
        if created is None or start <= created < end:
            yield doc


def _flag_shared_ids(records: list[dict[str, Any]]) -> None:
    """Two documents whose ids print the same (ObjectId and string) cannot be told apart by Stripe."""
    by_key: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_key.setdefault(record["order_key"], []).append(record)
    for key, group in by_key.items():
        if len(group) > 1:
            for record in group:
                note = f"{len(group)} orders share the id {key} with different types (ObjectId and string)"
                record["problem"] = "; ".join(filter(None, [record["problem"], note]))
