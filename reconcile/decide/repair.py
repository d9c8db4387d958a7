"""Repairs, the decisions that are not the classification: what an order that lost its race becomes.

store/repair.py writes the repairs; report/repair_words.py says in words what a lost race's order is now.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from reconcile.decide.classify import IN_FLIGHT, MARKED_FAILED, REPAIRED


def mark_lost_races(outcomes: pd.DataFrame, lost: list[str], detail: Callable[[str], str]) -> pd.DataFrame:
    """An order changed by someone else between load and repair is left alone and listed as in flight;
    `detail(order_key)` says so in words (report/repair_words.lost_race)."""
    if not lost:
        return outcomes
    mask = outcomes["outcome"].isin([REPAIRED, MARKED_FAILED]) & outcomes["order_key"].isin(lost)
    outcomes = outcomes.copy()
    outcomes.loc[mask, "outcome"] = IN_FLIGHT
    outcomes.loc[mask, "detail"] = [detail(key) for key in outcomes.loc[mask, "order_key"].astype(str)]
    return outcomes
