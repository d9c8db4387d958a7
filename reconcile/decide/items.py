"""Open items, the decisions: which outcomes become findings (with stable keys), which items a run
must re-check, and how old each open item is. store/items.py records them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from reconcile.config import DEFAULT_SEVERITY, LEVELS, Threshold
from reconcile.decide import classify as c
from reconcile.decide.findings import Finding
from reconcile.money import exponent

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


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def at_stake(r: Mapping[Any, Any]) -> int | None:
    """Money at stake of an outcome row, minor units: for an amount mismatch the difference between the
    order and the charge in one currency (the sum to settle with the customer); else the order's amount,
    or the charge's when there is no order."""
    order, charged = _int(r.get("amount")), _int(r.get("charge_amount"))
    if r.get("outcome") == c.AMOUNT_MISMATCH and order is not None and charged is not None:
        if str(r.get("currency") or "").lower() == str(r.get("charge_currency") or "").lower():
            return abs(order - charged)
    return order if order is not None else charged


def stake(doc: Mapping[str, Any]) -> int | None:
    """An item's money at stake: its `at_stake` (findings since it was added), else its amount."""
    value = _int(doc.get("at_stake"))
    return value if value is not None else _int(doc.get("amount"))


def core_findings(outcomes: pd.DataFrame) -> list[Finding]:
    """The outcomes that need a person, as findings with stable keys."""
    findings: list[Finding] = []
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
                # Not one of the facts an acceptance holds to: how it is counted may change, the facts do not.
                "at_stake": at_stake(r),
                "currency": r["currency"] or r["charge_currency"],
                "detail": r["detail"],
                # The date a person must act by (an authorization to capture or cancel), unix seconds.
                "deadline": getattr(r.get("facts"), "capture_before", None),
                "livemode": r["livemode"],
                "email": r["email"],
                # Facts an acceptance holds to (decide.items.facts_of).
                "order_status": r["order_status"],
                "charge_amount": r["charge_amount"],
                "amount_refunded": r["amount_refunded"],
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


# --------------------------------------------------------------------------- what people decided

# An item's state: `open` (the queue), `acknowledged` (someone is on it: still open, out of the
# queue), `accepted` (an explained difference: closed while its facts stay the same), `resolved`
# (gone: proved by a run, or marked fixed by a person and verified by the next run covering it).
OPEN = "open"
ACKNOWLEDGED = "acknowledged"
ACCEPTED = "accepted"
RESOLVED = "resolved"
STATES = (OPEN, ACKNOWLEDGED, ACCEPTED, RESOLVED)
# States a run still judges (re-checks, resolves, carries): acknowledged items are being handled, not closed.
LIVE = (OPEN, ACKNOWLEDGED)

# What an item's facts are, for "unchanged since accepted": amounts, charges, statuses.
FACT_FIELDS = (
    "kind",
    "amount",
    "currency",
    "charge_id",
    "charge_ids",
    "charge_amount",
    "amount_refunded",
    "order_status",
    "object_status",
)


def facts_of(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The facts an acceptance holds to (missing fields are None; lists compared as sorted)."""
    out: dict[str, Any] = {}
    for name in FACT_FIELDS:
        value = plain_value(doc.get(name))
        out[name] = sorted(value) if isinstance(value, list) else value
    return out


def changed_facts(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """What differs between two fact records, one phrase per field ("amount 2500 -> 2600")."""
    said = []
    for name in FACT_FIELDS:
        was, is_now = before.get(name), now.get(name)
        if isinstance(was, list) or isinstance(is_now, list):
            was, is_now = sorted(was or []), sorted(is_now or [])
        if was != is_now:
            said.append(f"{name.replace('_', ' ')} {_shown(was)} -> {_shown(is_now)}")
    return said


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "none"
    return "none" if value is None else str(value)


@dataclass(frozen=True)
class Reopening:
    """What a run seeing an item again does to a person's decision on it."""

    state: str
    note: str | None = None  # why it reopened, recorded as a decision by the job
    flag: str | None = None  # shown beside the item until a person decides again


def seen_again(doc: dict[str, Any] | None, finding: Mapping[str, Any]) -> Reopening:
    """The reopen rules, for an item a run found (again): an acknowledged item stays acknowledged; an
    accepted one stays accepted while its facts are unchanged and reopens saying what changed; one a
    person marked resolved reopens flagged; anything else is open."""
    if doc is None:
        return Reopening(OPEN)
    state = doc.get("state")
    if state == ACKNOWLEDGED:
        return Reopening(ACKNOWLEDGED, flag=doc.get("flag"))
    if state == ACCEPTED:
        changes = changed_facts(doc.get("accepted_facts") or {}, facts_of(finding))
        if not changes:
            return Reopening(ACCEPTED)
        note = f"reopened: facts changed since accepted by {doc.get('decided_by')}: {'; '.join(changes)}"
        return Reopening(OPEN, note=note, flag=note)
    if state == RESOLVED and doc.get("resolved_by") and not doc.get("verified_at"):
        flag = f"still present after being marked resolved by {doc['resolved_by']}"
        return Reopening(OPEN, note=flag, flag=flag)
    return Reopening(OPEN)


# Fields a finding carries onto its item (display and re-check).
CARRIED = (
    "kind",
    "source",
    "order_key",
    "charge_id",
    "charge_ids",
    "object_id",
    "anchor",
    "amount",
    "at_stake",
    "currency",
    "detail",
    "deadline",
    "livemode",
    "email",
    "order_status",
    "charge_amount",
    "amount_refunded",
    "object_status",
)


@dataclass
class ItemsResult:
    open: list[dict[str, Any]] = field(default_factory=list)  # the queue after this run, oldest first
    resolved: list[dict[str, Any]] = field(default_factory=list)  # resolved by this run
    new: int = 0
    buckets: dict[str, int] = field(default_factory=dict)
    handled: list[dict[str, Any]] = field(default_factory=list)  # acknowledged: being handled, out of the queue
    closed: list[dict[str, Any]] = field(default_factory=list)  # accepted or resolved by a person this period


# --------------------------------------------------------------------------- severity


def severity(amount: Any, currency: Any, age_seconds: int, thresholds: tuple[Threshold, ...] = DEFAULT_SEVERITY) -> str:
    """The first level (most severe first) whose money or age the item reaches; `low` below them all.

    Money is compared exactly in minor units: `amount` major units are amount * 10**exponent.
    An item without an amount is judged by its age alone.
    """
    at_stake = abs(int(amount)) if isinstance(amount, int) and not isinstance(amount, bool) else None
    for t in thresholds:
        if at_stake is not None and at_stake >= t.amount * 10 ** exponent(str(currency or "")):
            return t.level
        if age_seconds >= t.age_seconds:
            return t.level
    return "low"


def severity_rank(level: str) -> int:
    return LEVELS.index(level) if level in LEVELS else len(LEVELS)
