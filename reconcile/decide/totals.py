"""Totals per currency from the balance transactions: what actually moved in the balance.

The headline columns add up on their face, like Stripe's balance summary, per currency:

    gross + refunds + disputes + other - fees = net        (payouts beside, not inside)

- gross: payments (reporting categories `charge`, `partial_capture_reversal`, `charge_failure`);
- refunds: `refund`, `refund_failure`; disputes: `dispute`, `dispute_reversal`;
- fees: every fee the shop paid: the `fee` column of every non-payout transaction, plus the
  amount of the fee-type transactions themselves (`fee`: stripe_fee, tax_fee, ...; `network_cost`);
- other: every other non-payout transaction's amount (adjustments, transfers, top-ups, ...);
- net: the `net` of every non-payout transaction;
- payouts: the amount of `payout` and `payout_reversal` transactions, shown beside.

Every reporting category is kept in `by_category` (count, amount, fee, net), none dropped.
Categories: stripe-python 16's `reporting_category` values (2026-10-28.endive); one Stripe adds
later counts under `other`.
"""

from __future__ import annotations

from typing import TypedDict

import pandas as pd

from reconcile.decide.columns import Columns
from reconcile.decide.inputs import BalanceRow

# What the totals need of a balance transaction, nothing more: a million of them are held at once.
BALANCE_COLUMNS = ["txn_id", "created", "reporting_category", "currency", "amount", "fee", "net"]

GROSS_CATEGORIES = ("charge", "partial_capture_reversal", "charge_failure")
REFUND_CATEGORIES = ("refund", "refund_failure")
DISPUTE_CATEGORIES = ("dispute", "dispute_reversal")
FEE_CATEGORIES = ("fee", "network_cost")
PAYOUT_CATEGORIES = ("payout", "payout_reversal")
# The headline columns, top to bottom, as the report shows them.
HEADLINE = ("gross", "refunds", "disputes", "other", "fees", "net")


class CategoryTotals(TypedDict):
    """One reporting category's sums, minor units."""

    amount: int
    fee: int
    net: int
    count: int


class CurrencyTotals(TypedDict):
    """One currency's totals, minor units (the headline columns, payouts beside, every category)."""

    gross: int
    refunds: int
    disputes: int
    other: int
    fees: int
    net: int
    payouts: int
    charge_count: int
    by_category: dict[str, CategoryTotals]


Totals = dict[str, CurrencyTotals]  # by currency code


def balance_frame(rows: list[BalanceRow] | Columns) -> pd.DataFrame:
    """Rows (dicts) or columns (a dict of lists) of balance transactions."""
    if isinstance(rows, dict) and any(len(values) for values in rows.values()):
        frame = pd.DataFrame(rows, columns=BALANCE_COLUMNS)
    else:  # empty columns would come out as floats
        frame = pd.DataFrame.from_records([] if isinstance(rows, dict) else rows, columns=BALANCE_COLUMNS)
    frame = frame.astype({"amount": "int64", "fee": "int64", "net": "int64"})
    # A transaction listed twice (on two pages) counts once.
    return frame.drop_duplicates("txn_id", keep="first").reset_index(drop=True)


def summarize(balance: pd.DataFrame) -> Totals:
    """Per currency: the headline columns (see the module docstring), payouts, counts, by category (integers)."""
    totals: Totals = {}
    for currency, group in balance.groupby("currency", sort=True):
        category = group["reporting_category"]
        payouts = category.isin(PAYOUT_CATEGORIES)
        activity = group.loc[~payouts]
        kind = activity["reporting_category"]
        fee_type = kind.isin(FEE_CATEGORIES)
        named = kind.isin(GROSS_CATEGORIES + REFUND_CATEGORIES + DISPUTE_CATEGORIES + FEE_CATEGORIES)
        by_category = (
            group.groupby("reporting_category")[["amount", "fee", "net"]]
            .sum()
            .astype(int)
            .assign(count=group.groupby("reporting_category").size())
        )
        totals[str(currency)] = {
            "gross": int(activity.loc[kind.isin(GROSS_CATEGORIES), "amount"].sum()),
            "refunds": int(activity.loc[kind.isin(REFUND_CATEGORIES), "amount"].sum()),
            "disputes": int(activity.loc[kind.isin(DISPUTE_CATEGORIES), "amount"].sum()),
            "other": int(activity.loc[~named, "amount"].sum()),
            "fees": int(activity["fee"].sum() - activity.loc[fee_type, "amount"].sum()),
            "net": int(activity["net"].sum()),
            "payouts": int(group.loc[payouts, "amount"].sum()),
            "charge_count": int(category.eq("charge").sum()),
            "by_category": {
                str(name): {
                    "amount": int(values["amount"]),
                    "fee": int(values["fee"]),
                    "net": int(values["net"]),
                    "count": int(values["count"]),
                }
                for name, values in by_category.iterrows()
            },
        }
    return totals
