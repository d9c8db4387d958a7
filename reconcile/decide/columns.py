"""Compact column storage for big pulls and loads: a dict of lists, one list per field.

A row dict costs ~1 KB in CPython whatever it holds; a million of them is a gigabyte before any
work is done. Rows are packed into columns page by page instead, and short repeated strings
(statuses, currencies, types) are shared rather than stored once per object.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

Columns = dict[str, list[Any]]

# An order as the decision reads it (store/orders.py builds these from documents).
ORDER_COLUMNS = (
    "order_id",
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


def pack(rows: Iterable[Mapping[str, Any]], names: Iterable[str] | None = None) -> Columns:
    """Rows (dicts) -> columns; ``names`` default to the first row's keys."""
    rows = list(rows)
    if names is None:
        names = list(rows[0]) if rows else []
    return {name: [share(row.get(name)) for row in rows] for name in names}


def concat(parts: Iterable[Columns]) -> Columns:
    """Columns of several pages, one after the other (a field missing from a part is None there)."""
    parts = [p for p in parts if p]
    names: dict[str, None] = {}
    for part in parts:
        names.update(dict.fromkeys(part))
    out: Columns = {}
    for name in names:
        out[name] = list(
            itertools.chain.from_iterable(part[name] if name in part else [None] * length(part) for part in parts)
        )
    return out


def length(columns: Columns) -> int:
    return len(next(iter(columns.values()), []))


def rows(columns: Columns) -> list[dict[str, Any]]:
    """Columns back to row dicts (small sets only: tests, edge looks)."""
    names = list(columns)
    return [dict(zip(names, values, strict=False)) for values in zip(*(columns[n] for n in names), strict=False)]


def frame(data: list[dict[str, Any]] | Columns, names: Sequence[str]) -> pd.DataFrame:
    """Rows (dicts) or columns -> a frame of ``names`` (a name the data lacks is a column of missing values)."""
    if isinstance(data, dict) and any(len(values) for values in data.values()):
        return pd.DataFrame(data, columns=list(names))
    return pd.DataFrame.from_records(
        [] if isinstance(data, dict) else data, columns=list(names)
    )  # empty: object columns
