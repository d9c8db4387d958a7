"""The work queue: every item that needs a person, once, biggest money first, with its next step and links.

Built from the open item documents (store/items.py) after a run, or, for a run without the period
work (no items collection), from the window's own findings (decide/items.core_findings): both carry
the same fields. Pure: dicts in, a `Queue` out; render.py draws it and the email quotes its top.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from reconcile.decide import classify as c
from reconcile.decide import items as item_rules
from reconcile.money import exponent, format_amount
from reconcile.report import wording


@dataclass(frozen=True)
class Link:
    label: str  # the object's id, or "order ..." for the shop's admin
    url: str  # "" for an order when report.order_url is not set: its id is shown, not linked


@dataclass(frozen=True)
class Entry:
    key: str
    kind: str
    title: str  # what happened, in plain words
    detail: str
    amount: int | None  # money at stake, minor units
    currency: str
    amount_text: str
    age_days: int
    age_text: str
    deadline: int | None  # unix seconds: a dispute's respond-by, an authorization's expiry
    deadline_text: str
    next_step: str
    links: tuple[Link, ...]
    order_key: str | None
    is_new: bool
    severity: str = ""  # the item's severity (decide/items.py levels), "" when it has none
    charges: tuple[str, ...] = ()  # the charges whose money this item is about
    # The title of the item above whose money this is too (a dispute and its order's outcome row): its
    # amount is shown but not added to the money at stake. "" when this item's amount is counted.
    same_as: str = ""

    @property
    def counted(self) -> bool:
        return self.amount is not None and bool(self.currency) and not self.same_as


@dataclass(frozen=True)
class Queue:
    entries: tuple[Entry, ...]  # every item, biggest money first, then oldest

    @property
    def at_stake(self) -> dict[str, int]:
        """Money at stake per currency (minor units), biggest first: each sum of money once (an item
        about the same charge as a larger one above is not added again)."""
        sums: dict[str, int] = {}
        for e in self.entries:
            if e.counted and e.amount is not None:
                sums[e.currency] = sums.get(e.currency, 0) + e.amount
        return dict(sorted(sums.items(), key=lambda kv: (-major(kv[1], kv[0]), kv[0])))

    def at_stake_text(self) -> str:
        """'1,234.50 USD + 4,980 JPY', or '' when nothing has an amount."""
        return " + ".join(format_amount(v, cur) for cur, v in self.at_stake.items())

    @property
    def oldest_days(self) -> int:
        return max((e.age_days for e in self.entries), default=0)

    @property
    def nearest(self) -> Entry | None:
        """The item with the nearest deadline, if any has one."""
        dated = [e for e in self.entries if e.deadline is not None]
        return min(dated, key=lambda e: (e.deadline or 0, e.key)) if dated else None

    def headline(self) -> str:
        """One line: money at stake, how many items, the oldest, the nearest deadline."""
        n = len(self.entries)
        if not n:
            return "Nothing needs a person."
        stake = self.at_stake_text()
        parts = [f"{stake} at stake in {n} item{'s' if n != 1 else ''}" if stake else f"{n} items need a person"]
        parts.append(f"oldest {wording.age_text(self.oldest_days)}" if self.oldest_days else "all new today")
        near = self.nearest
        if near is not None:
            parts.append(f"nearest deadline {wording.day_text(near.deadline, with_time=True)} ({near.title.lower()})")
        return "; ".join(parts) + "."

    def text_lines(self, limit: int = 10) -> list[str]:
        """The top items for a text/plain email: amount, what happened, next step, and the first link."""
        lines = []
        for e in self.entries[:limit]:
            order = f" [order {e.order_key}]" if e.order_key and e.kind != c.ORPHAN_CHARGE else ""
            amount = e.amount_text or "(no amount)"
            if e.same_as:
                amount += f" (same money as {e.same_as.lower()} above)"
            lines.append(f"- {amount}: {e.title}. Next: {e.next_step}.{order}")
            if e.links:
                lines.append(f"  {e.links[0].url}")
        if len(self.entries) > limit:
            lines.append(f"... and {len(self.entries) - limit} more in the report and its CSV.")
        return lines


def major(minor: int, currency: str) -> Decimal:
    """Minor units as a Decimal of major units: sorts 10.00 USD with 1,000 JPY by size (no exchange rates)."""
    return Decimal(minor).scaleb(-exponent(currency))


def dashboard_url(base: str, livemode: Any, path: str) -> str:
    return f"{base.rstrip('/')}/{'' if livemode is True else 'test/'}{path}"


def order_link(order_url: str | None, order_key: Any) -> str | None:
    """The order in the shop's admin, from `report.order_url` (a template with `{order_id}`)."""
    if not order_url or not isinstance(order_key, str) or not order_key:
        return None
    return order_url.replace("{order_id}", quote(order_key, safe=""))


def links(item: Mapping[str, Any], base: str, order_url: str | None) -> tuple[Link, ...]:
    """Every Stripe object the item involves (each charge, the dispute), then the order."""
    out: list[Link] = []
    live = item.get("livemode")
    if item.get("source") == "dispute" and item.get("object_id"):
        out.append(Link(str(item["object_id"]), dashboard_url(base, live, f"disputes/{item['object_id']}")))
    # A payout's item, or the bank's about a payout (payout_not_in_bank names it in object_id).
    if item.get("source") in ("payout", "bank") and item.get("object_id"):
        out.append(Link(str(item["object_id"]), dashboard_url(base, live, f"payouts/{item['object_id']}")))
    if item.get("source") == "refund" and item.get("object_id"):
        out.append(Link(str(item["object_id"]), ""))  # shown on its charge's page (the next link)
    ids = [item.get("charge_id"), *(item.get("charge_ids") or [])]
    seen: set[str] = set()
    for cid in ids:
        if isinstance(cid, str) and cid and cid not in seen:
            seen.add(cid)
            # A refund shows on its charge's page: the charge link is the refund's too.
            out.append(Link(cid, dashboard_url(base, live, f"payments/{cid}")))
    # An orphan charge's order_key is only the name its metadata gives: no such order to open.
    key = item.get("order_key")
    if item.get("kind") != c.ORPHAN_CHARGE and isinstance(key, str) and key:
        out.append(Link(f"order {key}", order_link(order_url, key) or ""))
    return tuple(out)


def entry(item: Mapping[str, Any], base: str, order_url: str | None) -> Entry:
    amount = item_rules.stake(item)
    currency = str(item.get("currency") or "")
    deadline = item.get("deadline")
    deadline = int(deadline) if isinstance(deadline, int) and not isinstance(deadline, bool) else None
    age = int(item.get("age_days") or 0)
    kind = str(item.get("kind") or "")
    ids = [item.get("charge_id"), *(item.get("charge_ids") or [])]
    return Entry(
        key=str(item.get("_id") or item.get("key") or ""),
        kind=kind,
        title=wording.item_title(kind),
        detail=str(item.get("detail") or ""),
        amount=amount,
        currency=currency,
        amount_text=format_amount(amount, currency) if amount is not None else "",
        age_days=age,
        age_text=wording.age_text(age),
        deadline=deadline,
        deadline_text=wording.day_text(deadline) if deadline else "",  # the next step has the hour
        next_step=wording.next_step(item),
        links=links(item, base, order_url),
        order_key=str(item["order_key"]) if item.get("order_key") is not None else None,
        is_new=bool(item.get("is_new")),
        severity=str(item.get("severity") or ""),
        charges=tuple(dict.fromkeys(i for i in ids if isinstance(i, str) and i)),
    )


def build(items: Iterable[Mapping[str, Any]], base: str, order_url: str | None = None) -> Queue:
    """Every item needing a person, ordered by money at stake (largest first), then age (oldest first)."""
    entries = [entry(i, base, order_url) for i in items if i.get("needs_person", True)]
    entries.sort(key=_order)
    return Queue(tuple(_once_per_charge(entries)))


def _order(e: Entry) -> tuple[Decimal, int, int, str]:
    return (
        -(major(e.amount, e.currency) if e.amount is not None else Decimal(-1)),
        -e.age_days,
        e.deadline if e.deadline is not None else 2**62,
        e.key,
    )


def _once_per_charge(entries: list[Entry]) -> list[Entry]:
    """Items about the same charge (a dispute and its order's "refunded or disputed" row, two orders a
    charge's links name) are claims on one sum of money: the largest is counted, the others follow it
    marked "same money as ... above" and are not added to the money at stake. `entries` is sorted."""
    head: dict[tuple[str, str], Entry] = {}  # (currency, charge) -> the counted item claiming that money
    followers: dict[str, list[Entry]] = {}  # counted item's key -> the items sharing its money
    firsts: list[Entry] = []
    for e in entries:
        lead = next((head[(e.currency, ch)] for ch in e.charges if (e.currency, ch) in head), None)
        if lead is None or e.amount is None:
            firsts.append(e)
            if e.amount is not None:
                for ch in e.charges:
                    head.setdefault((e.currency, ch), e)
            continue
        followers.setdefault(lead.key, []).append(replace(e, same_as=lead.title))
    return [x for e in firsts for x in (e, *followers.get(e.key, ()))]
