"""Each order's deadline: when the job stops waiting for its payment and asks why (pure).

An order's own expected end (`orders.expected_end_field`) comes first; else its payment method's
`orders.settle_within` from the order's creation (a SEPA debit may take weeks, a card minutes); else
`orders.grace_period`. The payment method type is the one of the order's charges (Stripe's
`payment_method_details.type`), else the one of a charge-less PaymentIntent or Checkout Session still
`processing` (its payment method's type, or the slowest of its `payment_method_types`). An unfinished
checkout's listed types are never used: a PaymentIntent offering SEPA beside cards says nothing
about a customer who never paid.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from reconcile.decide import match


def slowest(types: object, settle: Mapping[str, int]) -> tuple[str | None, int | None]:
    """The slowest method of a space-separated `types` text in the `settle` table, and its seconds;
    (None, None) when none is listed there."""
    if not isinstance(types, str):
        return None, None
    best: tuple[str | None, int | None] = (None, None)
    for method in types.split():
        seconds = settle.get(method)
        if seconds is not None and (best[1] is None or seconds > best[1]):
            best = (method, seconds)
    return best


@dataclass(frozen=True)
class Methods:
    """Per order row: its payment method type found in the settle table (None: none) and its seconds (-1: none)."""

    method: np.ndarray  # objects
    seconds: np.ndarray  # int64


def order_methods(
    orders: pd.DataFrame,
    charges: pd.DataFrame,
    intents: pd.DataFrame,
    sessions: pd.DataFrame,
    links: match.Links,
    settle: Mapping[str, int],
) -> Methods:
    """Each order's payment method type and how long it may take (`settle`: seconds by type).

    Vectorised on the orders: only charges of a listed type (bank debits, a handful) and charge-less
    attempts still processing are looked at one by one."""
    size = len(orders)
    method = np.full(size, None, dtype=object)
    seconds = np.full(size, -1, dtype=np.int64)
    if not settle:
        return Methods(method, seconds)
    by_key: dict[str, tuple[str, int]] = {}
    processing = [(key, what) for (key, state), what in links.attempt_objects.items() if state == match.PROCESSING]
    if processing:
        intent_types = _types(intents, "pi_id")
        session_types = _types(sessions, "session_id")
        session_intents = dict(zip(sessions["session_id"], sessions["payment_intent"], strict=True))
        for key, what in processing:
            if what.kind == match.ObjectKind.PAYMENT_INTENT:
                types = intent_types.get(what.id)
            else:  # a session's own list and its PaymentIntent's
                both = (session_types.get(what.id), intent_types.get(session_intents.get(what.id)))
                types = " ".join(t for t in both if isinstance(t, str)) or None
            found, took = slowest(types, settle)
            if found is not None and took is not None:
                by_key[key] = (found, took)
    if "payment_method_type" in charges.columns and len(charges):
        charge_types = charges["payment_method_type"]
        took_s = charge_types.map(settle)
        listed = took_s.notna().to_numpy() & (links.charge_codes >= 0)
        if listed.any():
            best = (
                pd.DataFrame(
                    {
                        "key": charges["order_key"].to_numpy()[listed],
                        "method": charge_types.to_numpy()[listed],
                        "seconds": took_s.to_numpy()[listed].astype(np.int64),
                    }
                )
                .sort_values(["seconds", "method"])
                .drop_duplicates("key", keep="last")
            )
            for key, found_method, took in zip(best["key"], best["method"], best["seconds"], strict=True):
                before = by_key.get(key)
                if before is None or int(took) > before[1]:
                    by_key[key] = (str(found_method), int(took))
    if by_key:
        keys = orders["order_key"]
        mapped = keys.map({k: m for k, (m, _) in by_key.items()})
        method = mapped.astype(object).where(mapped.notna(), None).to_numpy(dtype=object)
        seconds = np.asarray(keys.map({k: s for k, (_, s) in by_key.items()}).fillna(-1), dtype=np.int64)
    return Methods(method, seconds)


def _types(frame: pd.DataFrame, id_column: str) -> dict[object, object]:
    """Payment method types by object id (a frame without the column: none)."""
    if not len(frame) or "payment_method_type" not in frame.columns:
        return {}
    return {i: t for i, t in zip(frame[id_column], frame["payment_method_type"], strict=True) if isinstance(t, str)}


def deadlines(orders: pd.DataFrame, methods: Methods, grace_seconds: int) -> pd.Series:
    """Each order's deadline (unix seconds, Int64; NA when the order has no readable creation time):
    its own expected end, else its creation plus its method's settle time, else plus the grace period."""
    created = orders["created"].astype("Int64")
    span = np.where(methods.seconds >= 0, methods.seconds, grace_seconds)
    by_method = created + pd.Series(pd.array(span, dtype="Int64"), index=orders.index)
    own = orders["expected_end"].astype("Int64") if "expected_end" in orders.columns else None
    return by_method if own is None else own.where(own.notna(), by_method)


# --------------------------------------------------------------------------- orders to judge again later

# An order whose deadline lies past the windows that will see it again (a SEPA debit takes weeks; an
# hourly run's window, an hour) is kept on a watch list, and each run (the re-check of its invocation's
# last window) reads the watched orders again by id, at most report.recheck_limit of them: those past
# their deadline first, then the longest unchecked. One whose payment has an answer (succeeded, failed,
# or the order no longer pending) or whose deadline has passed is judged in the run's own window's
# scope, however old it is: repaired when its debit succeeded, marked failed when it failed, an item when
# it is still processing past its deadline. One still processing before its deadline is left as it is
# (in flight, listed and counted by the run whose window held it) and stays watched. An order still
# `overdue_processing` stays on the list, due at once, so every run judges it again until its payment
# settles. The list holds only slow payments: cheaper than a look-back over the longest settle_within,
# which would pull weeks of Stripe objects on every run (docs/deadlines.md).


class Watch(NamedTuple):
    """An order to judge again once `deadline` (unix seconds) has passed, and the charges to retrieve for it."""

    order_key: str
    deadline: int
    charge_ids: tuple[str, ...]
    anchor: int | None  # the order's creation (unix seconds)
    checked: int | None = None  # when a run last looked at it (unix seconds; None: never)
    # Its charge-less attempts (a PaymentIntent or Checkout Session still processing, say), as (kind, id):
    # retrieved with it, as a window would pull them (a read by id cannot follow a session's link to it).
    attempts: tuple[tuple[str, str], ...] = ()


class WatchList(NamedTuple):
    """The watched orders a run looks at, and how many are watched in all (the rest wait for the next run)."""

    watches: tuple[Watch, ...]
    total: int

    def left(self) -> int:
        return self.total - len(self.watches)


@dataclass(frozen=True)
class WatchPlan:
    """What a run does to the watch list: forget the orders it judged again, then watch these."""

    judged: tuple[str, ...] = ()  # order keys judged again this run (their watches end)
    watch: tuple[Watch, ...] = ()


class Rechecked(NamedTuple):
    """The watched orders a run read again, sorted: those to judge in its window's scope, those still waiting."""

    outcomes: pd.DataFrame  # classify's rows of the orders judged now (no row: ok)
    judged: tuple[str, ...]  # their keys, and those of watched orders not found any more (forgotten)
    waiting: tuple[Watch, ...]  # still in flight: watched on, not judged, not counted
    found: int  # orders judged now (those found, less those still waiting)


# What a watched order read again before its deadline may come out as without an answer from its payment:
# still in flight, or no payment found (a read by id may miss what a window's pull links to it; its
# method then unknown, its deadline the grace period's). It waits for its deadline, as before the read.
# (Outcome names as text: classify imports this module.)
_NO_ANSWER = frozenset({"in_flight", "stale_pending", "paid_without_charge", "overdue_processing"})


def sort_rechecked(watches: list[Watch], found: list[str], outcomes: pd.DataFrame, now: int) -> Rechecked:
    """The `watches` whose orders were read again (`found`: the keys of those that exist), with classify's
    `outcomes` of them, sorted. Before its deadline (the watch's, or a later one classify gives it now), an
    order whose payment has no answer yet waits: watched on, with the charges and attempts classify names
    now. Every other one is judged now: its payment has an answer (succeeded, failed, or the order is no
    longer pending: no row), or its deadline has passed (overdue_processing, stale_pending, ...)."""
    keys = [w.order_key for w in watches]
    rows = outcomes.loc[outcomes["order_key"].isin(keys)]
    by_key = {w.order_key: w for w in watches}
    watched_until = rows["order_key"].map({k: w.deadline for k, w in by_key.items()}).astype("Int64")
    now_until = rows["expected_end"].astype("Int64")
    deadline = now_until.where(now_until.gt(watched_until).fillna(False).astype(bool), watched_until)
    still = (rows["outcome"].isin(list(_NO_ANSWER)) & deadline.gt(now)).fillna(False).to_numpy(dtype=bool)
    waiting = []
    for key, end, ids, facts in zip(
        rows.loc[still, "order_key"],
        deadline[still],
        rows.loc[still, "charge_ids"],
        rows.loc[still, "facts"],
        strict=True,
    ):
        old = by_key[str(key)]
        waiting.append(
            Watch(
                old.order_key,
                int(end),
                _charge_ids(ids) or old.charge_ids,
                old.anchor,
                now,
                _attempts(facts) or old.attempts,
            )
        )
    waiting_keys = {w.order_key for w in waiting}
    judged = tuple(sorted(k for k in keys if k not in waiting_keys))
    found_now = len({k for k in found if k in by_key} - waiting_keys)
    return Rechecked(rows.loc[~still], judged, tuple(waiting), found_now)


def to_watch(outcomes: pd.DataFrame, grace_seconds: int, now: int) -> list[Watch]:
    """The orders of classify's rows to judge again later: in flight with a deadline past the grace
    period's reach (a later window, starting at most window.overlap >= grace_period earlier, sees the
    others again), and those overdue while their payment still processes (judged again on every run)."""
    if not len(outcomes):
        return []
    end = outcomes["expected_end"].astype("Int64")
    created = outcomes["order_created"].astype("Int64")
    slow = (end - created).gt(grace_seconds).fillna(False).astype(bool) & end.gt(now).fillna(False).astype(bool)
    wanted = (outcomes["outcome"].eq("in_flight") & slow) | outcomes["outcome"].eq("overdue_processing")
    rows = outcomes.loc[wanted.to_numpy() & outcomes["order_key"].notna().to_numpy()]
    return [
        Watch(
            str(key),
            int(deadline) if pd.notna(deadline) else now,
            _charge_ids(ids),
            int(anchor) if pd.notna(anchor) else None,
            now,
            _attempts(facts),
        )
        for key, deadline, ids, anchor, facts in zip(
            rows["order_key"],
            rows["expected_end"],
            rows["charge_ids"],
            rows["order_created"],
            rows["facts"],
            strict=True,
        )
    ]


def _charge_ids(ids: object) -> tuple[str, ...]:
    return tuple(sorted(i for i in (ids if isinstance(ids, list | tuple) else ()) if isinstance(i, str)))


def _attempts(facts: object) -> tuple[tuple[str, str], ...]:
    """An outcome's charge-less attempts (its classify.Facts' `attempts`; None: none), as (kind, id)."""
    attempts: tuple[tuple[str, match.PaymentObject | None], ...] = getattr(facts, "attempts", ())
    return tuple(sorted({(str(o.kind), o.id) for _, o in attempts if o is not None}))


def watch_plan(
    outcomes: pd.DataFrame, judged: tuple[str, ...], grace_seconds: int, now: int, waiting: tuple[Watch, ...] = ()
) -> WatchPlan:
    """The watch list after a run that judged `outcomes` (its window and the watched orders it judged again)
    and found the `waiting` watched orders still in flight."""
    return WatchPlan(judged, tuple(to_watch(outcomes, grace_seconds, now)) + waiting)
