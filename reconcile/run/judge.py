"""The decide step of every scope a run judges (its window, the open items it re-checks): pure.

What a scope read (orders, the charges, PaymentIntents and sessions, the refunds and disputes with
their orders) goes through the same functions: classify, word (report/wording), findings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from reconcile.decide import classify as c
from reconcile.decide import items as item_rules
from reconcile.decide import movements
from reconcile.decide.findings import Finding
from reconcile.decide.inputs import MovementRow, OrderRecord
from reconcile.report import wording
from reconcile.stripe.payments import Payments


@dataclass(frozen=True)
class Judged:
    """One scope judged."""

    outcomes: pd.DataFrame  # classified and worded: no row for an ok order
    core: list[Finding]  # the outcomes that need a person (decide/items.core_findings)
    moved: list[Finding]  # every refund and dispute judged

    @property
    def findings(self) -> list[Finding]:
        """The findings for the items collection: core outcomes and refunds/disputes needing a person."""
        return self.core + [f for f in self.moved if f["needs_person"]]


def classify(orders: pd.DataFrame, payments: Payments, rules: c.Rules) -> pd.DataFrame:
    """The scope's orders and payments classified (no row for an ok order)."""
    charges, intents, sessions = payments.frames()
    return c.classify(orders, charges, rules, intents, sessions)


def judge(
    outcomes: pd.DataFrame,
    movement_rows: list[MovementRow],
    movement_orders: list[OrderRecord],
    rules: c.Rules,
    flagged: Sequence[str] | set[str] | None = None,
) -> Judged:
    """Classified `outcomes` worded, their findings, and the refunds and disputes judged. `flagged`: order
    keys already listed as refunded_or_disputed (a full refund on them is not counted twice); None: those
    of `outcomes` (a window; a re-check judges its refunds and disputes apart from its orders)."""
    outcomes = wording.worded(outcomes, rules)
    if flagged is None:
        refunded = outcomes["outcome"].eq(c.REFUNDED_OR_DISPUTED)
        flagged = set(outcomes.loc[refunded, "order_key"].dropna().astype(str))
    moved = wording.movement_findings(movements.evaluate(movement_rows, movement_orders, rules.paid_statuses, flagged))
    return Judged(outcomes, item_rules.core_findings(outcomes), moved)
