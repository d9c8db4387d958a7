"""Open items, the decisions: which outcomes become findings (with stable keys), which items a run
must re-check, how old each open item is, what a run does to each item (`plan_sync`) and what a
person's decision does to one (`plan_decision`). store/items.py reads and writes the documents.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict, cast

import pandas as pd

from reconcile.config import DEFAULT_SEVERITY, LEVELS, Threshold
from reconcile.decide import classify as c
from reconcile.decide.findings import Finding
from reconcile.money import exponent

DAY = 86400
BUCKETS = ("0-1 day", "2-7 days", "8-30 days", "over 30 days")
JOB = "reconcile"  # who the job is, in the decisions it records itself (reopenings, verifications)

# A fact an acceptance holds to: an amount, a status, a charge id or the sorted list of them.
FactValue = str | int | bool | list[str] | None
Facts = dict[str, FactValue]


class ItemDoc(TypedDict, total=False):
    """An item: one document of the items collection as the job reads and writes it (keys as stored),
    plus what a run adds for the report (`age_days`, `bucket`, `is_new`, `severity`: never stored)."""

    _id: str  # the finding's key
    state: str  # OPEN, ACKNOWLEDGED, ACCEPTED, RESOLVED
    # What the finding carries (CARRIED).
    kind: str
    source: str
    order_key: str | None
    charge_id: str | None
    charge_ids: list[str]
    object_id: str | None
    anchor: int | None
    amount: int | None
    at_stake: int | None
    currency: str | None
    detail: str | None
    deadline: int | None
    livemode: bool | None
    email: str | None
    order_status: str | None
    charge_amount: int | None
    amount_refunded: int | None
    disputed: bool | None
    object_status: str | None
    expected_end: int | None  # unix seconds: when the order's payment should have settled
    # The runs that saw it (unix seconds, run ids).
    first_seen: int
    first_run: str
    last_seen: int
    last_run: str
    last_checked: int
    times_seen: int
    reopened: int
    runs: list[str]
    resolved_at: int | None
    resolved_run: str | None
    resolution: str | None
    resolved_by: str | None
    verified_at: int | None
    verified_run: str
    # People's decisions on it.
    flag: str | None
    last_note: str | None
    last_note_by: str
    last_note_at: int
    decision: str
    decided_by: str
    decided_at: int
    reason: str | None
    accepted_facts: Facts
    # Added by a run for the report.
    age_days: int
    bucket: str
    is_new: bool
    severity: str


class DecisionRecord(TypedDict, total=False):
    """One document of the decisions collection: who decided what on an item, when, why, and its facts then."""

    item: str
    action: str  # note, ack, accept, resolve, confirm, dismiss, clear; the job's own: reopen, verified
    by: str
    at: int
    reason: str | None
    state_before: str | None
    facts: Facts
    run_id: str  # the run that recorded it (the job's own decisions)
    change_id: str  # the confirm's change (items confirm)
    order_key: str | None  # the probable match confirmed or dismissed
    charge_id: str | None


def bucket(age_days: int) -> str:
    """The aging bucket of an item `age_days` whole days old."""
    if age_days <= 1:
        return BUCKETS[0]
    if age_days <= 7:
        return BUCKETS[1]
    if age_days <= 30:
        return BUCKETS[2]
    return BUCKETS[3]


def age(open_docs: list[ItemDoc], at: int, run_id: str) -> dict[str, int]:
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
    order and the charge in one currency (the sum to settle with the customer); for a duplicate charge
    what the extra charges took (the sum to give back: the order was paid once); else the order's
    amount, or the charge's when there is no order."""
    order, charged = _int(r.get("amount")), _int(r.get("charge_amount"))
    if r.get("outcome") == c.AMOUNT_MISMATCH and order is not None and charged is not None:
        if str(r.get("currency") or "").lower() == str(r.get("charge_currency") or "").lower():
            return abs(order - charged)
    if r.get("outcome") == c.DUPLICATE_CHARGE:
        extra = _int(getattr(r.get("facts"), "extra_paid", None))
        if extra is not None:
            return extra
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
                # The paid charge is disputed: the next step waits for the dispute (report/wording.next_step).
                "disputed": bool(getattr(r.get("facts"), "disputed", False)),
                "expected_end": r.get("expected_end"),
            }
        )
    return findings


def within(anchor: int | None, since: int, until: int) -> bool:
    """Whether an item anchored at `anchor` (unix seconds) lies in the window [since, until)."""
    return anchor is not None and since <= anchor < until


def to_recheck(open_docs: list[ItemDoc], found: set[str], since: int, until: int, limit: int) -> list[ItemDoc]:
    """Open items this window cannot judge (their anchor lies outside it), least recently checked first."""
    outside = [d for d in open_docs if d["_id"] not in found and not within(d.get("anchor"), since, until)]
    outside.sort(key=lambda d: (d.get("last_checked") or 0, d["_id"]))
    return outside[:limit]


# --------------------------------------------------------------------------- words stored on items

# These sentences are data, not report prose: the rules below write them into MongoDB (an item's
# `resolution`, `flag` and `last_note`, a decision's `reason`), people read them back with `reconcile
# items`, and docs/items-and-undo.md quotes them. They are made here, in one place, because store/ and
# decide/ may not import report/ and the stored texts must stay as they are.
NOT_FOUND_AGAIN = "not found again when its window was reconciled"
_PERSON_DONE = {
    "resolve": "marked resolved",
    "confirm": "confirmed",
    "dismiss": "dismissed",
    "clear": "undo marker cleared",
}


def reopened_note(accepted_by: str | None, changes: list[str]) -> str:
    """Why an accepted item reopened (`changes`: changed_facts' phrases)."""
    return f"reopened: facts changed since accepted by {accepted_by}: {'; '.join(changes)}"


def still_present_note(resolved_by: str | None) -> str:
    """Why an item a person marked resolved reopened."""
    return f"still present after being marked resolved by {resolved_by}"


def rechecked_note(why: str) -> str:
    """The resolution of an open item a re-check found gone (`why`: what it found)."""
    return f"re-checked: {why}"


def rechecked_order_note(order_key: str | None, outcome: str | None) -> str:
    """An order's item found gone by a re-check: the order no longer exists (outcome None), or its outcome now."""
    return rechecked_note(f"order {order_key} no longer exists" if outcome is None else f"order is now {outcome}")


def rechecked_charge_note(outcome: str | None) -> str:
    """A charge's item found gone by a re-check: its outcome now, or None: it now belongs to an order."""
    return rechecked_note(f"charge is now {outcome}" if outcome else "charge now belongs to an order")


def verified_resolution(why: str) -> str:
    """The resolution of an item a person marked resolved and a run proved gone."""
    return f"verified: {why}"


def person_resolution(action: str, by: str, reason: str | None) -> str:
    """The resolution of an item a person's decision resolved (resolve, confirm, dismiss, clear)."""
    return f"{_PERSON_DONE.get(action)} by {by}" + (f": {reason}" if reason else "")


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


def facts_of(doc: ItemDoc | Finding) -> Facts:
    """The facts an acceptance holds to (missing fields are None; lists compared as sorted)."""
    out: Facts = {}
    for name in FACT_FIELDS:
        value = plain_value(doc.get(name))
        out[name] = sorted(value) if isinstance(value, list) else value
    return out


def changed_facts(before: Mapping[str, FactValue], now: Mapping[str, FactValue]) -> list[str]:
    """What differs between two fact records, one phrase per field ("amount 2500 -> 2600")."""
    said = []
    for name in FACT_FIELDS:
        was, is_now = before.get(name), now.get(name)
        if isinstance(was, list) or isinstance(is_now, list):
            was, is_now = sorted(cast(list[str], was or [])), sorted(cast(list[str], is_now or []))
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


def seen_again(doc: ItemDoc | None, finding: Finding) -> Reopening:
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
        note = reopened_note(doc.get("decided_by"), changes)
        return Reopening(OPEN, note=note, flag=note)
    if state == RESOLVED and doc.get("resolved_by") and not doc.get("verified_at"):
        flag = still_present_note(doc["resolved_by"])
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
    "disputed",
    "object_status",
    "expected_end",
)


@dataclass
class ItemsResult:
    open: list[ItemDoc] = field(default_factory=list)  # the queue after this run, oldest first
    resolved: list[ItemDoc] = field(default_factory=list)  # resolved by this run
    new: int = 0
    buckets: dict[str, int] = field(default_factory=dict)
    handled: list[ItemDoc] = field(default_factory=list)  # acknowledged: being handled, out of the queue
    closed: list[ItemDoc] = field(default_factory=list)  # accepted or resolved by a person this period


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


# --------------------------------------------------------------------------- what a run does to the items


def person_resolved(doc: ItemDoc) -> bool:
    """Marked resolved by a person and not yet verified by a run covering it."""
    return doc.get("state") == RESOLVED and bool(doc.get("resolved_by")) and not doc.get("verified_at")


def decision_record(
    key: str, action: str, by: str, reason: str | None, at: int, doc: ItemDoc, more: Mapping[str, str | None]
) -> DecisionRecord:
    """One decision record: who, when, why, and the item's facts at that moment (`more`: what else it names)."""
    record: DecisionRecord = {
        "item": key,
        "action": action,
        "by": by,
        "at": at,
        "reason": reason,
        "state_before": doc.get("state"),
        "facts": facts_of(doc),
    }
    return cast(DecisionRecord, {**record, **more})


@dataclass(frozen=True)
class SeenChange:
    """A finding found again (or for the first time): the item's fields to set, and what that means."""

    key: str
    fields: ItemDoc  # set on the item (upserted); the store also counts it seen and keeps the run
    fresh: bool  # new, or reopened after the job resolved it
    reopened: bool  # fresh, and an item by this key was there before (resolved)
    note: DecisionRecord | None  # the job's decision to record (a reopening)
    merged: ItemDoc  # the item as it stands after the update


@dataclass(frozen=True)
class Resolution:
    """An item this run proves gone: resolved by the job, or (`verify`) a person's resolution verified."""

    key: str
    verify: bool
    fields: ItemDoc  # set on the item, if it is still in the state it was read in
    note: DecisionRecord | None  # the job's decision to record (a verification)


@dataclass(frozen=True)
class SyncPlan:
    """What a run does to the items: in this order, the seen, the checked but undecided, the resolved."""

    seen: list[SeenChange]
    unsure: list[str]  # re-checked, could not tell: still open, `last_checked` set
    resolutions: list[Resolution]
    result: ItemsResult  # the open, handled and resolved items after it (`closed` is the store's to read)
    at: int

    @property
    def notes(self) -> list[DecisionRecord]:
        """The job's decisions to record, in the order they were made."""
        found = [s.note for s in self.seen] + [r.note for r in self.resolutions]
        return [n for n in found if n is not None]


def resolutions(
    existing: Mapping[str, ItemDoc], seen: Mapping[str, Finding], cleared: Mapping[str, str], lo: int, hi: int
) -> dict[str, str]:
    """Open items this run proves gone (key -> why): re-checked and cleared, or not found again in their window."""
    out: dict[str, str] = {}
    for key, doc in existing.items():
        if key in seen:
            continue
        if key in cleared:
            out[key] = cleared[key]
        elif within(doc.get("anchor"), lo, hi):
            out[key] = NOT_FOUND_AGAIN
    return out


def seen_change(key: str, f: Finding, before: ItemDoc | None, at: int, run_id: str) -> SeenChange:
    """What one finding found again (or for the first time) does to its item, honouring a person's decision."""
    fresh = before is None or (before.get("state") == RESOLVED and not person_resolved(before))
    again = seen_again(None if fresh else before, f)
    fields = cast(ItemDoc, {k: plain_value(f.get(k)) for k in CARRIED})
    fields.update({"state": again.state, "last_seen": at, "last_run": run_id, "last_checked": at})
    if again.state != ACCEPTED:
        fields.update(
            {"resolved_at": None, "resolved_run": None, "resolution": None, "resolved_by": None, "verified_at": None}
        )
    if again.flag is not None or fresh:
        fields["flag"] = again.flag
    if fresh:
        fields.update({"first_seen": at, "first_run": run_id})
    note = None
    if again.note is not None:
        fields.update({"last_note": again.note, "last_note_by": JOB, "last_note_at": at})
        note = decision_record(key, "reopen", JOB, again.note, at, {**(before or {}), **fields}, {"run_id": run_id})
    merged: ItemDoc = {**(before or {}), "_id": key, **fields}
    merged["times_seen"] = int((before or {}).get("times_seen") or 0) + 1
    return SeenChange(key, fields, fresh, fresh and before is not None, note, merged)


def resolution(key: str, doc: ItemDoc, why: str, at: int, run_id: str) -> Resolution:
    """An open item proved gone; one a person marked resolved is verified instead."""
    if person_resolved(doc):  # a person said it was fixed; this run proves it
        verified: ItemDoc = {"verified_at": at, "verified_run": run_id, "resolution": verified_resolution(why)}
        note = decision_record(key, "verified", JOB, why, at, doc, {"run_id": run_id})
        return Resolution(key, True, verified, note)
    fields: ItemDoc = {"state": RESOLVED, "resolved_at": at, "resolved_run": run_id, "resolution": why}
    return Resolution(key, False, fields, None)


def plan_sync(
    existing: Mapping[str, ItemDoc],
    seen: Mapping[str, Finding],
    known: Mapping[str, ItemDoc],
    *,
    cleared: Mapping[str, str],
    checked: Iterable[str],
    span: tuple[int, int],
    at: int,
    run_id: str,
    thresholds: tuple[Threshold, ...] = DEFAULT_SEVERITY,
) -> SyncPlan:
    """What a run does to the items: `existing` the live ones, `seen` this run's findings by key, `known`
    their items (any state), `cleared` re-checked items now gone (key -> why), `checked` keys re-checked,
    `span` the window (unix seconds, since and until)."""
    gone = resolutions(existing, seen, cleared, *span)
    result = ItemsResult()
    after = {k: d for k, d in existing.items() if k not in gone}
    changes = []
    for key, f in seen.items():
        change = seen_change(key, f, known.get(key), at, run_id)
        changes.append(change)
        after[key] = change.merged
        result.new += change.fresh
    unsure = list(set(checked) - set(seen) - set(gone))  # looked at, could not tell: still open
    resolved = [resolution(key, existing[key], why, at, run_id) for key, why in gone.items()]
    result.resolved = [{**existing[r.key], **r.fields} for r in resolved if not r.verify]
    sort_live(result, after, at, run_id, thresholds)
    return SyncPlan(changes, unsure, resolved, result, at)


def sort_live(
    result: ItemsResult, after: Mapping[str, ItemDoc], at: int, run_id: str, thresholds: tuple[Threshold, ...]
) -> None:
    """Open and handled items, oldest first, aged and given their severity."""
    live = sorted(
        (d for d in after.values() if not person_resolved(d)),
        key=lambda d: (d.get("first_seen") or at, d["_id"]),
    )
    result.open = [d for d in live if d.get("state") == OPEN]
    result.handled = [d for d in live if d.get("state") == ACKNOWLEDGED]
    result.buckets = age(result.open, at, run_id)
    age(result.handled, at, run_id)
    for doc in [*result.open, *result.handled]:
        doc["severity"] = severity(stake(doc), doc.get("currency"), at - int(doc.get("first_seen") or at), thresholds)


# --------------------------------------------------------------------------- what a person's decision does

# What each decision does to the item's state, and from which states it may be taken.
TRANSITIONS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "note": (STATES, None),
    "ack": (LIVE, ACKNOWLEDGED),
    "accept": (LIVE, ACCEPTED),
    "resolve": (LIVE, RESOLVED),
    "confirm": (LIVE, RESOLVED),
    "dismiss": (LIVE, RESOLVED),
    "clear": (LIVE, RESOLVED),
}


def may_take(doc: ItemDoc, action: str) -> bool:
    """Whether `action` applies to the item in its current state."""
    return doc.get("state") in TRANSITIONS[action][0]


def decision_fields(doc: ItemDoc, action: str, by: str, reason: str | None, at: int) -> ItemDoc:
    """The item's fields a person's decision sets."""
    to_state = TRANSITIONS[action][1]
    fields: ItemDoc = {"flag": None} if action != "note" else {}
    if reason:
        fields.update({"last_note": reason, "last_note_by": by, "last_note_at": at})
    if to_state is not None:
        fields.update({"state": to_state, "decision": action, "decided_by": by, "decided_at": at, "reason": reason})
    if to_state == ACCEPTED:
        fields["accepted_facts"] = facts_of(doc)
    if to_state == RESOLVED:
        fields.update(
            {
                "resolved_by": by,
                "resolved_at": at,
                "resolved_run": None,
                "verified_at": None,
                "resolution": person_resolution(action, by, reason),
            }
        )
    return fields
