"""Compact column storage for big pulls and loads: a dict of lists, one list per field.

A row dict costs ~1 KB in CPython whatever it holds; a million of them is a gigabyte before any
work is done. Rows are packed into columns page by page instead, and short repeated strings
(statuses, currencies, types) are shared rather than stored once per object. A page's integer and
boolean fields become numpy arrays (`compact`): 8 bytes and 1 byte a value, where a Python int
costs 28 to 32 bytes and a list slot 8 more.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from bson import ObjectId

# One list per field; a field `compact` packed is a numpy array instead (both have len, indexing
# and iteration; `rows` and `concat` give Python values back).
Columns = dict[str, Any]
# One object's fields by name: any of the rows of reconcile/decide/inputs.py (ChargeRow, ...).
Row = Mapping[str, Any]

# An order as the decision reads it (store/orders.py builds these from documents).
ORDER_COLUMNS = (
    "order_id",  # the document's _id; an ObjectId is held as None (`order_ids` rebuilds it from the key)
    "order_key",
    "status",
    "amount",
    "currency",
    "created",
    "stored_charge_id",
    "email",
    "problem",
    "stored_payment_intent_id",
    "stored_session_id",
    "refunded_amount",
    "undone",  # a person undid the job's change to this order: "by NAME on DATE" (store/orders.py)
    "expected_end",  # unix seconds the shop expects the payment settled by (orders.expected_end_field)
)

_SHORT = 20  # ids are longer; statuses, currencies and types are shorter
_MAX_SHARED = 20_000  # bound the table if a short field turns out to be unique per row
_shared: dict[str, str] = {}


def share(value: Any) -> Any:
    """One string object for each short repeated value; anything else unchanged."""
    if value.__class__ is str and len(value) <= _SHORT:
        found = _shared.get(value)
        if found is not None:
            return found
        if len(_shared) < _MAX_SHARED:
            return _shared.setdefault(value, value)
    return value


def order_ids(ids: Iterable[Any], keys: Iterable[Any]) -> list[Any]:
    """The orders' _id values from their `order_id` and `order_key` columns. An ObjectId _id is held
    as None, its key being its hex (an ObjectId costs ~100 bytes: 100 MB at a million orders, and
    only the few orders a run writes need theirs); any other _id is held as it is. A frame may show
    the None as NaN (pandas types a column of strings and None as text)."""
    return [
        ObjectId(key)
        if _held_as_none(order_id) and key.__class__ is str and len(key) == 24 and ObjectId.is_valid(key)
        else order_id
        for order_id, key in zip(ids, keys, strict=True)
    ]


def _held_as_none(value: Any) -> bool:
    return value is None or value is pd.NA or (value.__class__ is float and value != value)


def pack(rows: Iterable[Row], names: Iterable[str] | None = None) -> Columns:
    """Rows (dicts) -> columns; ``names`` default to the first row's keys."""
    rows = list(rows)
    if names is None:
        names = list(rows[0]) if rows else []
    return {name: [share(row.get(name)) for row in rows] for name in names}


def compact(columns: Columns) -> Columns:
    """A page's fields that hold only integers (within int64) or only booleans, as numpy arrays; the
    others stay lists. Exact: an integer past int64, a None or a float keeps its field a list."""
    for name, values in columns.items():
        if not values or values.__class__ is not list:
            continue
        kind = values[0].__class__
        if kind is bool and all(v.__class__ is bool for v in values):
            columns[name] = np.array(values, dtype=bool)
        elif kind is int and all(v.__class__ is int for v in values):
            try:
                columns[name] = np.array(values, dtype=np.int64)
            except OverflowError:
                pass
    return columns


def _values(part: Columns, name: str) -> Any:
    return part[name] if name in part else [None] * length(part)


def concat(parts: Iterable[Columns]) -> Columns:
    """Columns of several pages, one after the other (a field missing from a part is None there).
    A field that is an array of one type in every part stays one; otherwise it is a list."""
    parts = [p for p in parts if p]
    names: dict[str, None] = {}
    for part in parts:
        names.update(dict.fromkeys(part))
    out: Columns = {}
    for name in names:
        chunks = [_values(part, name) for part in parts]
        if all(isinstance(chunk, np.ndarray) for chunk in chunks) and len({chunk.dtype for chunk in chunks}) == 1:
            out[name] = np.concatenate(chunks)
        else:
            out[name] = list(
                itertools.chain.from_iterable(
                    chunk.tolist() if isinstance(chunk, np.ndarray) else chunk for chunk in chunks
                )
            )
    return out


def length(columns: Columns) -> int:
    return len(next(iter(columns.values()), []))


def rows(columns: Columns) -> list[Row]:
    """Columns back to row dicts (small sets only: tests, edge looks)."""
    names = list(columns)
    lists = [columns[n].tolist() if isinstance(columns[n], np.ndarray) else columns[n] for n in names]
    return [dict(zip(names, values, strict=False)) for values in zip(*lists, strict=False)]


def frame(data: Sequence[Row] | Columns, names: Sequence[str]) -> pd.DataFrame:
    """Rows (dicts) or columns -> a frame of ``names`` (a name the data lacks is a column of missing values).

    Columns (a dict) are handed over: each is taken out of the dict as it is framed, so no column of
    a million values is held twice (as a list and as the frame's array) longer than itself.
    """
    if isinstance(data, dict) and any(len(values) for values in data.values()):
        size = length(data)
        framed: dict[str, pd.Series] = {}
        for name in names:
            values = data.pop(name, None)
            framed[name] = pd.Series(np.full(size, np.nan, dtype=object) if values is None else values, copy=False)
            del values
        data.clear()
        return pd.DataFrame(framed, copy=False)
    return pd.DataFrame.from_records(
        [] if isinstance(data, dict) else data, columns=list(names)
    )  # empty: object columns
