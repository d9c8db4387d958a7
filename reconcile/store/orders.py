"""Load orders from MongoDB and turn each document into a checked, flat record."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import numpy as np
import pandas as pd
import pymongo.errors
from bson import ObjectId
from dateutil import parser as date_parser
from pymongo.collection import Collection

from reconcile.config import OrdersConfig
from reconcile.decide.columns import ORDER_COLUMNS, Columns, order_ids, rows, share
from reconcile.decide.inputs import MovementRow, OrderRecord
from reconcile.errors import MongoUnavailable
from reconcile.store.mongo import Document, mongo_errors
from reconcile.timeutil import as_utc, to_unix

log = logging.getLogger(__name__)

BATCH = 1000
# The sub-document the job leaves on each order it changed (store/repair.py); an undo leaves
# `hold` there, which keeps the job from changing the order again on its own (decide/classify.py).
MARKER = "reconcile"
HOLD = "hold"
_CURRENCY = re.compile(r"^[a-z]{3}$")
# The largest amount a BSON int64 (and the job's Int64 columns) holds; a Python int above it (possible
# through another driver or a mock) cannot be held exactly: that order is a data problem.
INT64_MAX = 2**63 - 1


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
        config.expected_end_field,
    ]
    return {name: 1 for name in wanted if name} | {MARKER: 1}


def undone_text(marker: Any) -> str | None:
    """ "by NAME on DATE" when a person undid the job's change and the marker still holds the order."""
    if not isinstance(marker, dict) or not marker.get(HOLD):
        return None
    at = marker.get("at")
    day = as_utc(at).strftime("%Y-%m-%d") if isinstance(at, datetime) else str(at or "")[:10]
    return f"by {marker.get('by') or 'someone'} on {day or 'an unknown date'}"


def field_value(doc: Document, dotted: str) -> Any:
    """A field of a document by its (possibly dotted) configured name; None where it is missing."""
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
        try:
            return int(as_utc(value).timestamp()), None
        except (ValueError, OverflowError, OSError):  # an offset that takes it past year 1 or 9999
            return None, f"created_at {str(value)[:40]!r} is not a date the job can place"
    if isinstance(value, str):
        try:
            return int(as_utc(date_parser.isoparse(value)).timestamp()), None
        except (ValueError, OverflowError):
            return None, f"created_at {value[:40]!r} is not a date"
    if value is None:
        return None, "created_at is missing"
    return None, f"created_at has type {type(value).__name__}, expected a date"


def _parse_expected_end(value: Any) -> tuple[int | None, str | None]:
    """The order's own deadline for its payment: absent means none (its payment method's applies)."""
    if value is None:
        return None, None
    if isinstance(value, datetime):
        try:
            return int(as_utc(value).timestamp()), None
        except (ValueError, OverflowError, OSError):
            return None, f"expected end {str(value)[:40]!r} is not a date the job can place"
    if isinstance(value, str):
        try:
            return int(as_utc(date_parser.isoparse(value)).timestamp()), None
        except (ValueError, OverflowError):
            return None, f"expected end {value[:40]!r} is not a date"
    return None, f"expected end has type {type(value).__name__}, expected a date"


def _parse_amount(value: Any) -> tuple[int | None, str | None]:
    if isinstance(value, bool):
        return None, "amount is a boolean"
    if isinstance(value, int):
        if value < 0:
            return None, f"amount {value} is negative"
        if value > INT64_MAX:
            return None, f"amount {str(value)[:40]} is beyond a 64-bit integer"
        return int(value), None
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
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= INT64_MAX:
        return int(value), None
    shown = str(value)[:40]
    return None, f"refunded amount {shown!r} is not a non-negative integer in minor units"


def order_record(doc: Document, config: OrdersConfig) -> OrderRecord:
    """Flatten one order document; anything odd becomes a `problem` string, never an exception."""
    problems = []
    amount, problem = _parse_amount(field_value(doc, config.amount_field))
    if problem:
        problems.append(problem)
    created, problem = _parse_created(field_value(doc, config.created_at_field))
    if problem:
        problems.append(problem)
    status = field_value(doc, config.status_field)
    if not isinstance(status, str):
        problems.append("status is missing" if status is None else f"status has type {type(status).__name__}")
        status = None
    currency = field_value(doc, config.currency_field)
    if isinstance(currency, str) and _CURRENCY.match(currency.strip().lower()):
        currency = currency.strip().lower()
    else:
        problems.append(
            "currency is missing"
            if currency is None or currency == ""
            else f"currency {str(currency)[:40]!r} is not a three-letter ISO code"
        )
        currency = None
    charge_id = field_value(doc, config.charge_id_field)
    if charge_id is not None and not isinstance(charge_id, str):
        # A repair overwrites this field; an undo could not put back what it cannot hold.
        problems.append(f"charge id has type {type(charge_id).__name__}, expected a Stripe id")
    email = field_value(doc, config.email_field) if config.email_field else None
    refunded, problem = (
        _parse_refunded(field_value(doc, config.refunded_amount_field)) if config.refunded_amount_field else (0, None)
    )
    if problem:
        problems.append(problem)
    expected_end, problem = (
        _parse_expected_end(field_value(doc, config.expected_end_field)) if config.expected_end_field else (None, None)
    )
    if problem:
        problems.append(problem)
    intent_id = field_value(doc, config.payment_intent_id_field) if config.payment_intent_id_field else None
    session_id = field_value(doc, config.checkout_session_id_field) if config.checkout_session_id_field else None
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
        "undone": undone_text(doc.get(MARKER)),
        "expected_end": expected_end,
    }


# _id types kept as they are to tell documents apart (an ObjectId never equals its hex string);
# any other type is keyed by type name and text.
_PLAIN_IDS = (ObjectId, str, int)


# Integer fields of an order, packed chunk by chunk (OrderColumns).
_INTEGER_FIELDS = ("amount", "created", "refunded_amount", "expected_end")


def _packed(values: list[Any]) -> np.ndarray:
    """A chunk of an integer field: int64 when every value is an int within int64, else objects (None
    for an order with a problem)."""
    if all(v.__class__ is int for v in values):
        try:
            return np.array(values, dtype=np.int64)
        except OverflowError:
            pass
    return np.array(values, dtype=object)


def _stored_fast(value: Any) -> str | None:
    return (value.strip() or None) if value.__class__ is str else None


class OrderColumns:
    """Order documents -> columns as they stream in; no document is kept.

    Plain documents (the vast majority) take a fast path with the same result as
    `order_record`; anything unusual goes through `order_record` itself.
    """

    def __init__(self, config: OrdersConfig) -> None:
        self.config = config
        self.columns: Columns = {name: [] for name in ORDER_COLUMNS}
        # The integer fields, packed chunk by chunk (numpy int64 when every value is one): a Python
        # int costs 28 to 32 bytes and a list slot 8 more, a packed one 8.
        self._packed: dict[str, list[Any]] = {name: [] for name in _INTEGER_FIELDS}
        self._known: dict[str, tuple[pd.Index, np.ndarray]] = {}
        # The documents added, by _id: ObjectIds by their hex (the key string the columns hold, no
        # ObjectId kept), any other _id apart (a string _id never equals an ObjectId).
        self.seen: set[Any] = set()
        self.seen_objectids: set[str] = set()
        # The fields read, in the order `_add` unpacks them (None: not configured).
        self._fields = (
            config.amount_field,
            config.status_field,
            config.currency_field,
            config.created_at_field,
            config.charge_id_field,
            config.email_field,
            config.payment_intent_id_field,
            config.checkout_session_id_field,
            config.refunded_amount_field,
            config.expected_end_field,
        )
        self._flat = all("." not in (name or "") for name in self._fields)
        self._currencies: dict[str, str | None] = {}  # raw value -> ISO code, None if not one (few distinct)
        # By order key, the charge id as stored where `stored_charge_id` holds it otherwise (blank or
        # padded text; few orders): a repair's compare-and-set compares what is stored (store/repair.py).
        self.charge_ids_as_stored: dict[str, str] = {}

    def _currency(self, raw: str) -> str | None:
        found = self._currencies.get(raw, "")
        if found == "":
            code = raw.strip().lower()
            found = share(code) if _CURRENCY.match(code) else None
            if len(self._currencies) < 10_000:
                self._currencies[raw] = found
        return found

    def share_strings(self, known: Mapping[str, Iterable[Any]]) -> None:
        """Strings the orders repeat that are held already: per column (order_key, stored_charge_id,
        email, ...), the pulled charges' values (their order references, ids, emails). An order's
        equal string is replaced by that object as its chunk is added, so a million orders hold no
        second copy of every id and email (~80 bytes each). Given nothing, it stops sharing."""
        self._known = {}
        for name, values in known.items():
            strings = pd.unique(np.asarray([v for v in values if v.__class__ is str], dtype=object))
            if len(strings):
                self._known[name] = (pd.Index(strings), np.asarray(strings, dtype=object))

    def add(self, cursor: Iterable[Document]) -> None:
        for name in _INTEGER_FIELDS:  # this chunk's integers, packed at the end
            self.columns[name] = []
        start = len(self.columns["order_key"])
        self._add(cursor)
        for name in _INTEGER_FIELDS:
            self._packed[name].append(_packed(self.columns[name]))
            self.columns[name] = []
        for name, (index, strings) in self._known.items():
            column = self.columns[name]
            mine = np.asarray(column[start:], dtype=object)
            found = index.get_indexer(pd.Index(mine))
            if (found >= 0).any():
                column[start:] = np.where(found >= 0, strings[found], mine).tolist()

    def take(self) -> Columns:
        """The columns (integer fields as numpy arrays where every value is an integer); the load is
        emptied, so the caller holds the only copy."""
        out, self.columns = self.columns, {name: [] for name in ORDER_COLUMNS}
        for name in _INTEGER_FIELDS:
            chunks, self._packed[name] = self._packed[name], []
            if all(chunk.dtype == np.int64 for chunk in chunks):
                out[name] = np.concatenate(chunks) if chunks else []
            else:
                out[name] = [value for chunk in chunks for value in chunk.tolist()]
        self.seen, self.seen_objectids = set(), set()
        self._known = {}
        return out

    @property
    def count(self) -> int:
        """Documents added so far."""
        return len(self.seen) + len(self.seen_objectids)

    def _add(self, cursor: Iterable[Document]) -> None:
        """Each document not added before, by the fast path when it is plain, else by `order_record`."""
        cols = [self.columns[name] for name in ORDER_COLUMNS]
        (
            ids,
            keys,
            statuses,
            amounts,
            currencies,
            created,
            charge_ids,
            emails,
            problems,
            intents,
            sessions,
            refunds,
            undone,
            expected_ends,
        ) = cols
        (amount_f, status_f, currency_f, created_f, charge_f, email_f, intent_f, session_f, refunded_f, end_f) = (
            self._fields
        )
        as_stored, flat = self.charge_ids_as_stored, self._flat
        # One loop, its steps inline: it runs once per order (a million, on a big shop).
        for doc, order_id, order_key in self._unseen(cursor):
            # The fast path: a plain document, same result as order_record, in a third of the time.
            amount, status, currency = doc.get(amount_f), doc.get(status_f), doc.get(currency_f)
            when: Any = doc.get(created_f)
            charge = doc.get(charge_f)
            refunded = doc.get(refunded_f) if refunded_f else None
            end: Any = doc.get(end_f) if end_f else None
            code = (
                self._currency(currency)
                if flat
                and amount.__class__ is int
                and 0 <= amount <= INT64_MAX
                and status.__class__ is str
                and currency.__class__ is str
                and when.__class__ is datetime
                and (charge is None or charge.__class__ is str)
                and (refunded is None or (refunded.__class__ is int and 0 <= refunded <= INT64_MAX))
                and (end is None or end.__class__ is datetime)
                else None
            )
            if code is None:  # a nested field configured, or anything unusual in the document
                self._add_checked(doc, order_id, order_key, cols)
                continue
            email = doc.get(email_f) if email_f else None
            ids.append(order_id)
            keys.append(order_key)
            statuses.append(share(status))
            amounts.append(amount)
            currencies.append(code)
            created.append(int((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()))
            stored = _stored_fast(charge)
            if charge is not None and stored != charge:  # blank or padded text
                as_stored[order_key] = charge
            charge_ids.append(stored)
            emails.append(email if isinstance(email, str) else None)
            problems.append(None)
            intents.append(_stored_fast(doc.get(intent_f)) if intent_f else None)
            sessions.append(_stored_fast(doc.get(session_f)) if session_f else None)
            refunds.append(refunded or 0)
            marker = doc.get(MARKER)
            undone.append(undone_text(marker) if marker is not None else None)
            expected_ends.append(None if end is None else int(as_utc(end).timestamp()))

    def _unseen(self, cursor: Iterable[Document]) -> Iterator[tuple[Document, Any, str]]:
        """The documents not added before, each with its `order_id` and `order_key`, marked as seen."""
        seen, seen_objectids = self.seen, self.seen_objectids
        for doc in cursor:
            doc_id = doc["_id"]
            if doc_id.__class__ is ObjectId:
                order_key = str(doc_id)
                if order_key not in seen_objectids:
                    seen_objectids.add(order_key)
                    yield doc, None, order_key  # None: the key rebuilds it (columns.order_ids)
                continue
            seen_key = doc_id if doc_id.__class__ in _PLAIN_IDS else (type(doc_id).__name__, str(doc_id))
            if seen_key not in seen:
                seen.add(seen_key)
                yield doc, doc_id, str(doc_id)

    def _add_checked(self, doc: Document, order_id: Any, order_key: str, cols: list[list[Any]]) -> None:
        """One document through `order_record`: a nested field configured, or anything unusual in it."""
        record = order_record(doc, self.config)
        record["order_id"], record["order_key"] = order_id, order_key
        charge = field_value(doc, self.config.charge_id_field)
        if isinstance(charge, str) and charge != record["stored_charge_id"]:
            self.charge_ids_as_stored[order_key] = charge
        for column, value in zip(cols, _in_column_order(record), strict=True):
            column.append(share(value))


def _in_column_order(record: OrderRecord) -> tuple[Any, ...]:
    """A record's values in the order of ORDER_COLUMNS."""
    return (
        record["order_id"],
        record["order_key"],
        record["status"],
        record["amount"],
        record["currency"],
        record["created"],
        record["stored_charge_id"],
        record["email"],
        record["problem"],
        record["stored_payment_intent_id"],
        record["stored_session_id"],
        record["refunded_amount"],
        record["undone"],
        record.get("expected_end"),
    )


class OrderLoad:
    """Orders for one window, loaded in two steps so the first can run while Stripe is pulled.

    `window()` needs nothing from Stripe (orders created in the window); `referenced()` then adds
    the orders Stripe names (by _id) or that name a Stripe object (by stored id), skipping those
    already loaded. `columns()` gives the fields of `order_record` as columns.
    """

    def __init__(
        self,
        orders: Collection,
        config: OrdersConfig,
        scans: Collection | None = None,
        scan_timeout: float | None = None,
    ) -> None:
        self.orders = orders
        self.config = config
        # The same collection through a handle with a long socket timeout (mongo.connect_for_scans),
        # for the window's two queries; scan_timeout (seconds) is that timeout, for the error message.
        self.scans = orders if scans is None else scans
        self.scan_timeout = scan_timeout
        self.charge_ids_as_stored: dict[str, str] = {}  # once `columns()` has handed the orders over
        self.fields = projection(config)
        self._out = OrderColumns(config)
        self.in_window = 0
        self.window_seconds = 0.0  # wall time of `window()` (it may run beside the pull)

    def window(self, since: datetime, until: datetime, stop: Callable[[], None] | None = None) -> OrderLoad:
        """Orders created in [since, until), Date-typed and ISO-string-typed alike.

        `stop` is called between batches of documents: raising there ends the load early (a failed
        pull beside it, or a stop request), leaving nothing half-done (a load only reads).
        """
        out, cfg = self._out, self.config
        began = time.monotonic()

        def take(cursor: Iterable[Document]) -> None:
            for chunk in _chunks(cursor, BATCH * 5):
                if stop is not None:
                    stop()
                out.add(chunk)

        if since < until:
            # Through the scan handle: a server may read much of the collection before its first answer
            # (nx-27017 builds the whole result first; any server scans for string-dated orders where
            # it cannot use the created_at index for them).
            with mongo_errors("loading orders"):
                try:
                    take(
                        self.scans.find(
                            {cfg.created_at_field: {"$gte": since, "$lt": until}}, self.fields, batch_size=BATCH * 5
                        )
                    )
                    take(_string_dated(self.scans, cfg, since, until, self.fields))
                except pymongo.errors.NetworkTimeout:
                    if self.scan_timeout is None:
                        raise
                    raise MongoUnavailable(
                        f"MongoDB unavailable while loading orders: no answer to the window's orders query "
                        f"within {self.scan_timeout:g}s (mongodb.scan_timeout)"
                    ) from None
        self.in_window = out.count
        self.window_seconds = round(time.monotonic() - began, 3)
        return self

    @property
    def count(self) -> int:
        """Orders loaded so far."""
        return self._out.count

    def referenced(
        self,
        order_refs: Iterable[str] = (),
        charge_ids: Iterable[str] = (),
        payment_intent_ids: Iterable[str] = (),
        session_ids: Iterable[str] = (),
    ) -> OrderLoad:
        """Add the orders named by Stripe (by _id) or naming a Stripe object (by stored id), in batches of `$in`.

        `charge_ids`, `payment_intent_ids` and `session_ids` are looked up in the order fields that
        store them (when configured).
        """
        out, cfg, fields = self._out, self.config, self.fields
        with mongo_errors("loading orders"):
            loaded_keys = set(out.columns["order_key"])
            refs = sorted({r for r in order_refs if r not in loaded_keys})
            del loaded_keys
            for batch in _batches([c for ref in refs for c in id_candidates(ref)]):
                out.add(self.orders.find({"_id": {"$in": batch}}, fields))
            for field, column, ids in (
                (cfg.charge_id_field, "stored_charge_id", charge_ids),
                (cfg.payment_intent_id_field, "stored_payment_intent_id", payment_intent_ids),
                (cfg.checkout_session_id_field, "stored_session_id", session_ids),
            ):
                if not field:
                    continue
                known = set(out.columns[column])
                wanted = sorted({i for i in ids if i and i not in known})
                del known
                for batch in _batches(wanted):
                    out.add(self.orders.find({field: {"$in": batch}}, fields))
        return self

    def share_strings(self, known: Mapping[str, Iterable[Any]]) -> OrderLoad:
        """See OrderColumns.share_strings: for the orders loaded from now on."""
        self._out.share_strings(known)
        return self

    def columns(self) -> Columns:
        """The orders loaded, as columns; the load hands them over (it is empty afterwards)."""
        out = self._out
        log.info("load.orders", extra={"in_window": self.in_window, "by_reference": out.count - self.in_window})
        taken = out.take()
        # Handed over beside the columns (see OrderColumns.charge_ids_as_stored).
        self.charge_ids_as_stored, out.charge_ids_as_stored = out.charge_ids_as_stored, {}
        _flag_shared_ids(taken)
        return taken


def _chunks(cursor: Iterable[Document], size: int) -> Iterator[list[Document]]:
    chunk: list[Document] = []
    for doc in cursor:
        chunk.append(doc)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def load_order_columns(
    orders: Collection,
    config: OrdersConfig,
    since: datetime,
    until: datetime,
    order_refs: Iterable[str] = (),
    charge_ids: Iterable[str] = (),
    payment_intent_ids: Iterable[str] = (),
    session_ids: Iterable[str] = (),
) -> Columns:
    """Orders created in the window, plus those named by Stripe (by _id) or naming a Stripe object
    (by stored id), as columns (the fields of `order_record`). Memory stays near the columns' own size."""
    load = OrderLoad(orders, config).window(since, until)
    return load.referenced(order_refs, charge_ids, payment_intent_ids, session_ids).columns()


def load_orders(
    orders: Collection,
    config: OrdersConfig,
    since: datetime,
    until: datetime,
    order_refs: Iterable[str] = (),
    charge_ids: Iterable[str] = (),
    payment_intent_ids: Iterable[str] = (),
    session_ids: Iterable[str] = (),
) -> list[OrderRecord]:
    """As load_order_columns, one record (dict) per order (its `order_id` the document's _id, an
    ObjectId too): for small loads and tests."""
    columns = load_order_columns(orders, config, since, until, order_refs, charge_ids, payment_intent_ids, session_ids)
    columns["order_id"] = order_ids(columns["order_id"], columns["order_key"])
    return cast("list[OrderRecord]", rows(columns))


def _string_dated(
    orders: Collection, config: OrdersConfig, since: datetime, until: datetime, fields: dict[str, int]
) -> Iterator[Document]:
    """Orders whose created_at is an ISO string: a date range never matches strings in MongoDB.

    The string range is a day wider on each side (offsets like +09:00); each date is then parsed
    and kept only inside the window (or when it cannot be parsed: that is a data problem to show).
    """
    low = (since - timedelta(days=1)).date().isoformat()
    high = (until + timedelta(days=2)).date().isoformat()
    start, end = to_unix(since), to_unix(until)
    for doc in orders.find({config.created_at_field: {"$type": "string", "$gte": low, "$lt": high}}, fields):
        created, _ = _parse_created(field_value(doc, config.created_at_field))
        if created is None or start <= created < end:
            yield doc


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


def orders_of_movements(
    orders: Collection, config: OrdersConfig, rows: Iterable[MovementRow], at: datetime
) -> list[OrderRecord]:
    """The orders refunds' and disputes' charges belong to (by metadata, else by stored charge id), of any age."""
    charges = [r["charge"] for r in rows if r["charge"]]
    refs = {c["order_ref"] for c in charges if c["order_ref"]}
    unreferenced = {c["charge_id"] for c in charges if not c["order_ref"]}
    if not refs and not unreferenced:
        return []
    # An empty window [at, at): only the orders named by reference are loaded.
    return load_orders(orders, config, at, at, refs, unreferenced)
