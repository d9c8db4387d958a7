"""Load orders from MongoDB and turn each document into a checked, flat record."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator

from bson import ObjectId
from dateutil import parser as date_parser
from pymongo.collection import Collection

from reconcile.columns import Columns, rows, share
from reconcile.config import OrdersConfig
from reconcile.mongo import mongo_errors
from reconcile.timeutil import as_utc

log = logging.getLogger(__name__)

BATCH = 1000


def projection(config: OrdersConfig) -> dict[str, int]:
    wanted = [
        config.status_field,
        config.amount_field,
        config.currency_field,
        config.created_at_field,
        config.charge_id_field,
        config.email_field,
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
        return value, None
    if value is None:
        return None, "amount is missing"
    shown = str(value)[:40]
    return None, f"amount {shown!r} is a {type(value).__name__}, expected an integer in minor units"


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
    if isinstance(currency, str) and currency.strip():
        currency = currency.strip().lower()
    else:
        problems.append("currency is missing")
        currency = None
    charge_id = _get(doc, config.charge_id_field)
    email = _get(doc, config.email_field) if config.email_field else None
    return {
        "order_id": doc["_id"],
        "order_key": str(doc["_id"]),
        "status": status,
        "amount": amount,
        "currency": currency,
        "created": created,
        "stored_charge_id": charge_id.strip() if isinstance(charge_id, str) and charge_id.strip() else None,
        "email": email if isinstance(email, str) else None,
        "problem": "; ".join(problems) or None,
    }


ORDER_FIELDS = ("order_id", "order_key", "status", "amount", "currency", "created", "stored_charge_id", "email", "problem")


# _id types kept as they are to tell documents apart (an ObjectId never equals its hex string);
# any other type is keyed by type name and text.
_PLAIN_IDS = (ObjectId, str, int)


class _OrderColumns:
    """Order documents -> columns as they stream in; no document is kept.

    Plain documents (the vast majority) take a fast path with the same result as
    `order_record`; anything unusual goes through `order_record` itself.
    """

    def __init__(self, config: OrdersConfig) -> None:
        self.config = config
        self.columns: Columns = {name: [] for name in ORDER_FIELDS}
        self.seen: set[Any] = set()
        names = [config.amount_field, config.status_field, config.currency_field, config.created_at_field,
                 config.charge_id_field, config.email_field or ""]
        self._flat = all("." not in name for name in names)

    def add(self, cursor: Iterable[dict[str, Any]]) -> None:
        cfg, seen = self.config, self.seen
        cols = [self.columns[name] for name in ORDER_FIELDS]
        ids, keys, statuses, amounts, currencies, created, charge_ids, emails, problems = cols
        amount_f, status_f, currency_f = cfg.amount_field, cfg.status_field, cfg.currency_field
        created_f, charge_f, email_f = cfg.created_at_field, cfg.charge_id_field, cfg.email_field
        flat = self._flat
        for doc in cursor:
            doc_id = doc["_id"]
            key = doc_id if doc_id.__class__ in _PLAIN_IDS else (type(doc_id).__name__, str(doc_id))
            if key in seen:
                continue
            seen.add(key)
            if flat:
                # The fast path: a plain document, same result as order_record, in a third of the time.
                amount, status, currency = doc.get(amount_f), doc.get(status_f), doc.get(currency_f)
                when = doc.get(created_f)
                if (
                    amount.__class__ is int and status.__class__ is str and currency.__class__ is str
                    and when.__class__ is datetime and currency.strip()
                ):
                    charge_id = doc.get(charge_f)
                    email = doc.get(email_f) if email_f else None
                    ids.append(doc_id)
                    keys.append(str(doc_id))
                    statuses.append(share(status))
                    amounts.append(amount)
                    currencies.append(share(currency.strip().lower()))
                    created.append(int((when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()))
                    charge_ids.append(charge_id.strip() or None if charge_id.__class__ is str else None)
                    emails.append(email if isinstance(email, str) else None)
                    problems.append(None)
                    continue
            record = order_record(doc, cfg)
            for column, name in zip(cols, ORDER_FIELDS):
                column.append(share(record[name]))


def check_indexes(orders: Collection, config: OrdersConfig) -> list[str]:
    """The fields the job's queries need indexed that have no index starting with them; each logged once.

    The job does not build indexes itself: on a big collection that is a decision for whoever runs
    the database (it loads the server while it builds).
    """
    needed = [config.created_at_field, config.charge_id_field]
    with mongo_errors("reading the orders collection's indexes"):
        indexed = {spec["key"][0][0] for spec in orders.index_information().values() if spec.get("key")}
    missing = [name for name in needed if name not in indexed]
    for name in missing:
        log.warning("load.index_missing", extra={
            "collection": orders.name, "field": name,
            "hint": f"db.{orders.name}.createIndex({{\"{name}\": 1}}): without it every run scans the collection",
        })
    return missing


def load_order_columns(
    orders: Collection,
    config: OrdersConfig,
    since: datetime,
    until: datetime,
    order_refs: Iterable[str] = (),
    charge_ids: Iterable[str] = (),
) -> Columns:
    """Orders created in the window, plus those named by a charge (by _id) or naming one (by stored
    charge id), as columns (the fields of `order_record`). Memory stays near the columns' own size."""
    fields = projection(config)
    out = _OrderColumns(config)
    with mongo_errors("loading orders"):
        out.add(orders.find({config.created_at_field: {"$gte": since, "$lt": until}}, fields, batch_size=BATCH * 5))
        in_window = len(out.seen)
        loaded_keys = set(out.columns["order_key"])
        refs = sorted({r for r in order_refs if r not in loaded_keys})
        del loaded_keys
        for batch in _batches([c for ref in refs for c in id_candidates(ref)]):
            out.add(orders.find({"_id": {"$in": batch}}, fields))
        known_charges = set(out.columns["stored_charge_id"])
        wanted = sorted({c for c in charge_ids if c not in known_charges})
        for batch in _batches(wanted):
            out.add(orders.find({config.charge_id_field: {"$in": batch}}, fields))
    log.info("load.orders", extra={"in_window": in_window, "by_reference": len(out.seen) - in_window})
    _flag_shared_ids(out.columns)
    return out.columns


def load_orders(
    orders: Collection,
    config: OrdersConfig,
    since: datetime,
    until: datetime,
    order_refs: Iterable[str] = (),
    charge_ids: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """As load_order_columns, one record (dict) per order: for small loads and tests."""
    return rows(load_order_columns(orders, config, since, until, order_refs, charge_ids))


def _flag_shared_ids(columns: Columns) -> None:
    """Two documents whose ids print the same (ObjectId and string) cannot be told apart by Stripe."""
    keys = columns["order_key"]
    if len(set(keys)) == len(keys):
        return
    positions: dict[str, list[int]] = {}
    for position, key in enumerate(keys):
        positions.setdefault(key, []).append(position)
    problems = columns["problem"]
    for key, group in positions.items():
        if len(group) > 1:
            note = f"{len(group)} orders share the id {key} with different types (ObjectId and string)"
            for position in group:
                problems[position] = "; ".join(filter(None, [problems[position], note]))
