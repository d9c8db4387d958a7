"""Long windows in pieces: memory grows with the largest piece, not with the whole window.

A backfill of a week at a million charges a day does not fit in memory at once, so the window is
cut into consecutive pieces (``window.sub_window``), each reconciled like a run of its own
(pull, load, classify, edge look, repair), oldest first. `Merge` then makes one run's result of
them, with every order counted once:

- an order belongs to the first piece that reports it (normally the piece it was created in;
  an order outside the window, or one whose charge came before it, to the first piece whose
  charges name it);
- a later piece that reports it again is ignored, and does not repair it, unless the owner found
  no charge for it (stale pending, paid without charge) and the later piece did: then the later
  piece's finding replaces the owner's, as a single run over the whole window would have found.

Known limit, as with consecutive cron runs: two charges of one order that fall in different
pieces are not seen together, so a duplicate charge spread over two pieces is not reported.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from reconcile import classify as c
from reconcile.timeutil import to_unix


def pieces(since: datetime, until: datetime, size: timedelta) -> list[tuple[datetime, datetime]]:
    """[since, until) cut into consecutive pieces of at most ``size``, oldest first."""
    out = []
    start = since
    while start < until:
        end = min(until, start + size)
        out.append((start, end))
        start = end
    return out


class Merge:
    """The outcomes of consecutive pieces, as one run's (see the module docstring)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._kept: list[pd.DataFrame] = []  # non-ok rows; ok rows are only counted
        self._owner_outcome: dict[str, str] = {}  # order key -> its owner's non-ok outcome
        self._replaced: set[str] = set()  # order keys whose kept row a later piece replaced
        self._foreign: set[str] = set()  # orders reported by a piece other than their creation's
        self._done_until: int | None = None  # end of the pieces merged so far
        self._window_since: int | None = None

    def admit(self, outcomes: pd.DataFrame, since: datetime, until: datetime) -> pd.DataFrame:
        """The rows of this piece's outcomes that count (and may be acted on)."""
        lo, hi = to_unix(since), to_unix(until)
        if self._window_since is None:
            self._window_since = lo
        is_order = outcomes["order_id"].notna()
        created = outcomes["order_created"]
        earlier_piece = (created >= self._window_since) & (created < lo)
        own = (created >= lo) & (created < hi)
        keys = outcomes["order_key"].astype(object)
        seen = keys.isin(self._foreign) | keys.isin(list(self._owner_outcome))
        first_report = is_order & ~earlier_piece.fillna(False).astype(bool) & ~seen
        replaces = is_order & ~first_report & self._replaces(outcomes)
        admitted = ~is_order | first_report | replaces
        self._foreign.update(keys[first_report & ~own.fillna(True).astype(bool)])
        for key in keys[replaces]:
            self.counts[self._owner_outcome[key]] -= 1
            self._replaced.add(key)
        return outcomes.loc[admitted]

    def _replaces(self, outcomes: pd.DataFrame) -> pd.Series:
        prior = outcomes["order_key"].astype(object).map(self._owner_outcome)
        return prior.isin(c.NEEDS_EDGE_LOOK) & ~outcomes["outcome"].isin(c.NEEDS_EDGE_LOOK)

    def keep(self, outcomes: pd.DataFrame) -> None:
        """Count the admitted (and acted-on) rows of a piece; keep the rows a report lists."""
        self.counts.update({k: int(v) for k, v in outcomes["outcome"].value_counts().items()})
        orders = outcomes.loc[outcomes["order_id"].notna()]
        if self._replaced:
            self._kept = [k.loc[~(k["order_key"].isin(self._replaced) & k["order_id"].notna())] for k in self._kept]
            again = orders.loc[orders["order_key"].isin(self._replaced)]
            self._owner_outcome.update(zip(again["order_key"], again["outcome"]))  # ok too: it now owns the order
            self._replaced.clear()
        listed = orders.loc[orders["outcome"] != c.OK]
        self._owner_outcome.update(zip(listed["order_key"], listed["outcome"]))
        self._kept.append(outcomes.loc[outcomes["outcome"] != c.OK])

    def outcomes(self) -> pd.DataFrame:
        """Every row a report lists (outcomes other than ok), oldest piece first."""
        kept = [k for k in self._kept if len(k)]
        if not kept:
            return self._kept[0].iloc[0:0] if self._kept else pd.DataFrame(columns=c.RESULT_COLUMNS)
        return pd.concat(kept, ignore_index=True)

    def outcome_counts(self) -> dict[str, int]:
        return {o: int(self.counts.get(o, 0)) for o in c.OUTCOMES}


def add_totals(total: dict[str, dict[str, Any]], more: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per-currency money totals of two pieces, added (integers and nested integer dicts)."""
    out = {cur: _add(total.get(cur, {}), more.get(cur, {})) for cur in sorted(set(total) | set(more))}
    return out


def _add(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in list(a) + [k for k in b if k not in a]:
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) or isinstance(y, dict):
            out[key] = _add(x or {}, y or {})
        else:
            out[key] = (x or 0) + (y or 0)
    return out
