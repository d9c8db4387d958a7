"""Totals per currency from the balance transactions: what actually moved in the balance."""

from __future__ import annotations

from typing import Any

import pandas as pd

BALANCE_COLUMNS = ["txn_id", "created", "type", "reporting_category", "currency", "amount", "fee", "net", "source"]


def balance_frame(rows: list[dict[str, Any]] | dict[str, list[Any]]) -> pd.DataFrame:
    """Rows (dicts) or columns (a dict of lists) of balance transactions."""
    if isinstance(rows, dict) and any(len(values) for values in rows.values()):
        frame = pd.DataFrame(rows, columns=BALANCE_COLUMNS)
    else:  # empty columns would come out as floats
        frame = pd.DataFrame.from_records([] if isinstance(rows, dict) else rows, columns=BALANCE_COLUMNS)
    frame = frame.astype({"amount": "int64", "fee": "int64", "net": "int64"})
    # A transaction listed twice (on two pages) counts once.
    return frame.drop_duplicates("txn_id", keep="first").reset_index(drop=True)


def summarize(balance: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Per currency: gross charges, refunds, disputes, fees, net activity, payouts and counts (integers)."""
    totals: dict[str, dict[str, Any]] = {}
    for currency, group in balance.groupby("currency", sort=True):
        category = group["reporting_category"]
        payouts = category.isin(["payout", "payout_reversal"])
        by_category = (
            group.groupby("reporting_category")[["amount", "fee", "net"]]
            .sum()
            .astype(int)
            .assign(count=group.groupby("reporting_category").size())
        )
        totals[str(currency)] = {
            "gross": int(group.loc[category.eq("charge"), "amount"].sum()),
            "refunds": int(group.loc[category.isin(["refund", "refund_failure"]), "amount"].sum()),
            "disputes": int(group.loc[category.isin(["dispute", "dispute_reversal"]), "amount"].sum()),
            "fees": int(group["fee"].sum()),
            "net": int(group.loc[~payouts, "net"].sum()),
            "payouts": int(group.loc[payouts, "amount"].sum()),
            "charge_count": int(category.eq("charge").sum()),
            "by_category": {
                str(name): {k: int(v) for k, v in values.items()} for name, values in by_category.iterrows()
            },
        }
    return totals
