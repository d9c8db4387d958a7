"""Open items, the decisions: which outcomes become findings (with stable keys), which items a run
must re-check, and how old each open item is. store/items.py records them.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from reconcile.decide import classify as c

DAY = 86400
BUCKETS = ("0-1 day", "2-7 days", "8-30 days", "over 30 days")


def bucket(age_days: int) -> str:
    """The aging bucket of an item `age_days` whole days old."""
    if age_days <= 1:
        return BUCKETS[0]
    if age_days <= 7:
        return BUCKETS[1]
    if age_days <= 30:
        return BUCKETS[2]
    return BUCKETS[3]


def age(open_docs: list[dict[str, Any]], at: int, run_id: str) -> dict[str, int]:
    """Set each open item's `age_days`, `bucket` and `is_new` (first seen by `run_id`); the count per bucket."""
    buckets = {b: 0 for b in BUCKETS}
    for doc in open_docs:
        doc["age_days"] = max(0, (at - int(doc.get("first_seen") or at)) // DAY)
        doc["bucket"] = bucket(doc["age_days"])
        doc["is_new"] = doc.get("first_run") == run_id
        buckets[doc["bucket"]] += 1
    return buckets


def plain_value(value: Any) -> Any:
    """A frame cell as a plain Python value (None for missing), as BSON and JSON take it."""
    if value is None or (not isinstance(value, (list, dict, str)) and pd.isna(value)):
        return None
    if hasattr(value, "item"):  # numpy scalars -> Python, so BSON can store them
        return value.item()
    return value


def core_findings(outcomes: pd.DataFrame) -> list[dict[str, Any]]:
    """The outcomes that need a person, as findings with stable keys."""
    findings = []
    for r in outcomes.loc[outcomes["outcome"].isin(c.NEEDS_PERSON)].to_dict("records"):
        r = {k: plain_value(v) for k, v in r.items()}
        order_key, charge_id = r["order_key"], r["charge_id"]
        ids = [charge_id, r["stored_charge_id"], *(r.get("charge_ids") or [])]
        findings.append(
            {
                "key": f"{r['outcome']}:{order_key or '-'}:{charge_id or '-'}",
                "kind": r["outcome"],
                "needs_person": True,
                # An orphan charge is about the charge (its order_key is only what its metadata names).
                "source": "charge" if r["outcome"] == c.ORPHAN_CHARGE else "order",
                "order_key": order_key,
                "charge_id": charge_id,
                "charge_ids": sorted({i for i in ids if isinstance(i, str) and i}),
                "object_id": None,
                "anchor": r["charge_created"] if r["outcome"] == c.ORPHAN_CHARGE else r["order_created"],
                "amount": r["amount"] if r["amount"] is not None else r["charge_amount"],
                "currency": r["currency"] or r["charge_currency"],
                "detail": r["detail"],
                # The date a person must act by (an authorization to capture or cancel), unix seconds.
                "deadline": getattr(r.get("facts"), "capture_before", None),
                "livemode": r["livemode"],
                "email": r["email"],
            }
        )
    return findings


def to_recheck(
    open_docs: list[dict[str, Any]], found: set[str], since: int, until: int, limit: int
) -> list[dict[str, Any]]:
    """Open items this window cannot judge (their anchor lies outside it), least recently checked first."""
    outside = [
        d
        for d in open_docs
        if d["_id"] not in found and not (d.get("anchor") is not None and since <= d["anchor"] < until)
    ]
    outside.sort(key=lambda d: (d.get("last_checked") or 0, d["_id"]))
    return outside[:limit]
