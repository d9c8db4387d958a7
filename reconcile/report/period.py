"""The report sections a finance team closes a period with: money that moved back, open items
with aging, items resolved since the last report, and a trend over recent runs.

The trend chart is an HTML table of bars (cell widths and `bgcolor`): it shows in every email
client. SVG is stripped by Gmail and most versions of Outlook, and `data:` image URIs are
blocked by Gmail and Outlook.com; neither needs JavaScript or an external fetch, but only a
table survives all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TypedDict, cast

from reconcile.config import LEVELS
from reconcile.decide import items as item_rules
from reconcile.decide.findings import Finding
from reconcile.decide.items import ItemDoc
from reconcile.decide.trend import TrendPoint
from reconcile.money import format_amount, to_decimal_text
from reconcile.report import queue, wording
from reconcile.report.records import ClosedJson, CsvRow, ItemsJson, MovementJson, PeriodSummary, ResolvedJson
from reconcile.report.render import Cut, Row, dashboard_link, item_csv_row, kept, row_size, rows_of, template_env
from reconcile.timeutil import fmt, from_unix, to_unix

BAR_COLOURS = {"charges": "#9aa5f5", "open": "#f5a623"}
# Every row of every list is drawn while the page fits its budget (render.HTML_BUDGET); past that the report cuts
# the rows with the smallest money across all its lists (render.Row), and each list says how many more there are:
# refunds, disputes and resolved items in the summary JSON, items being handled or closed in the attached CSV
# (decision_csv_rows), critical and high ones in the work queue too.
CUT_LISTS = ("movements", "resolved", "urgent", "handled", "closed")
# The trend drawn one row per day up to this many days; longer spans one row per week, then per month.
DAILY_TREND_DAYS = 31
WEEKLY_TREND_DAYS = 91


class TrendBar(TrendPoint):
    """A row of the trend chart: its bars' widths in percent."""

    charges_pct: int
    open_pct: int


def _pct(value: int | None, top: int) -> int:
    return max(1, round(100 * value / top)) if value else 0


def _bars(points: list[TrendPoint]) -> list[TrendBar]:
    """Bar widths in percent of the largest value of each series (at least 1% when not zero)."""
    top_charges = max([p["charges"] or 0 for p in points] + [1])
    top_open = max([p["open"] or 0 for p in points] + [1])
    return [
        {**p, "charges_pct": _pct(p["charges"], top_charges), "open_pct": _pct(p["open"], top_open)} for p in points
    ]


def compact_trend(points: list[TrendPoint]) -> tuple[list[TrendPoint], str]:
    """(rows, "day" | "week" | "month"): a long trend drawn per week or per month keeps the page small (a
    year of days is ~400 KB of bars). A row's charges are its days' sum; its open items the last day's that
    had a run (None: no run in it); its `day` the first day it covers."""
    if len(points) <= DAILY_TREND_DAYS:
        return points, "day"
    unit = "week" if len(points) <= WEEKLY_TREND_DAYS else "month"
    rows: list[TrendPoint] = []
    days: list[int] = []  # how many days each row covers
    for p in points:
        day = str(p["day"])
        label = day[:7] if unit == "month" else day
        if rows and (rows[-1]["day"][:7] == label[:7] if unit == "month" else days[-1] < 7):
            row = rows[-1]
            row["charges"] += int(p["charges"] or 0)
            row["open"] = p["open"] if p["open"] is not None else row["open"]
            days[-1] += 1
            continue
        rows.append({"day": label, "charges": int(p["charges"] or 0), "open": p["open"]})
        days.append(1)
    return rows, unit


class ItemView(ItemDoc, total=False):
    """An item as the decisions partial draws it: its fields (None where it has none yet) and their texts."""

    kind_title: str | None
    amount_text: str
    first_seen_text: str
    last_seen_text: str
    resolved_text: str
    charge_url: str | None
    colour: str
    decided_text: str
    decision_text: str | None


class ResolvedView(TypedDict):
    kind: str
    title: str
    amount: int | None
    currency: str | None
    amount_text: str
    age: str
    resolution: str
    links: tuple[queue.Link, ...]


class SeverityCount(TypedDict):
    level: str
    count: int
    colour: str


class DecisionsView(TypedDict):
    """What templates/decisions.html.j2 draws."""

    queue_count: int
    severity: list[SeverityCount]
    at_stake: list[str]
    urgent: list[ItemView]
    urgent_total: int
    handled: list[ItemView]
    handled_total: int
    closed: list[ItemView]
    closed_total: int


class MovementView(Finding):
    """A refund or dispute as the period sections draw it."""

    title: str
    amount_text: str
    created_text: str
    created_short: str
    url: str | None
    links: tuple[queue.Link, ...]


class PeriodPage(TypedDict):
    """What templates/period_top.html.j2 and period.html.j2 draw."""

    run_id: str
    now: str
    dry_run: bool
    part: tuple[int, int]
    movements: list[MovementView]
    movements_total: int
    movements_record: int
    movements_needing: int
    open_count: int
    resolved: list[ResolvedView]
    resolved_total: int
    resolved_count: int
    new: int
    buckets: list[tuple[str, int]]
    trend: list[TrendBar]
    trend_days: int
    trend_unit: str
    colours: dict[str, str]
    decisions: DecisionsView


def _item_view(doc: ItemDoc, dashboard_url: str) -> ItemView:
    amount, resolved_at = doc.get("amount"), doc.get("resolved_at")
    view = {
        **{k: None for k in item_rules.CARRIED},
        # Decision fields an item has only once a person gave them (an ack without a note has no last_note).
        **{k: None for k in ("last_note", "last_note_by", "flag", "decided_by", "reason", "verified_at")},
        "is_new": False,
        "age_days": 0,  # tolerate sparse documents
        **doc,
        "kind_title": wording.MOVEMENT_TITLES.get(doc.get("kind") or "", doc.get("kind")),
        "amount_text": format_amount(amount, doc.get("currency") or "") if isinstance(amount, int) else "",
        "first_seen_text": fmt(from_unix(doc["first_seen"])) if doc.get("first_seen") else "",
        "last_seen_text": fmt(from_unix(doc["last_seen"])) if doc.get("last_seen") else "",
        "resolved_text": fmt(from_unix(resolved_at)) if resolved_at else "",
        "charge_url": dashboard_link(doc.get("charge_id"), doc.get("livemode"), dashboard_url),
    }
    return cast(ItemView, view)  # every CARRIED field is there (None when the item has none)


def _resolved_view(doc: ItemDoc, dashboard_url: str, order_url: str | None) -> ResolvedView:
    amount = doc.get("amount")
    kind = doc.get("kind") or ""
    return {
        "kind": kind,
        "title": wording.item_title(kind),
        "amount": amount if isinstance(amount, int) else None,
        "currency": doc.get("currency"),
        "amount_text": format_amount(amount, doc.get("currency") or "") if isinstance(amount, int) else "",
        "age": f"open {wording.age_text(doc.get('age_days'))}" if doc.get("age_days") else "",
        "resolution": doc.get("resolution") or "",
        "links": queue.links(doc, dashboard_url, order_url),
    }


SEVERITY_COLOURS = {"critical": "#b3261e", "high": "#e8710a", "medium": "#f5a623", "low": "#697386"}
DECIDED = {
    "ack": "acknowledged",
    "accept": "accepted",
    "resolve": "marked resolved",
    "confirm": "confirmed as the same purchase",
    "dismiss": "dismissed",
    "clear": "undo marker cleared",
}


def decisions(items: item_rules.ItemsResult, dashboard_url: str) -> DecisionsView:
    """The data of the decisions partial (templates/decisions.html.j2): the queue by severity and its
    money at stake per currency (open items only), items being handled, items closed by a person."""
    open_docs = items.open
    counts = {level: 0 for level in LEVELS}
    for doc in open_docs:
        counts[doc.get("severity") or "low"] = counts.get(doc.get("severity") or "low", 0) + 1
    # The same sums as the headline's: each sum of money once (queue.py, one claim per charge).
    stake = queue.build(open_docs, dashboard_url).at_stake

    def view(doc: ItemDoc) -> ItemView:
        v = _item_view(doc, dashboard_url)
        v["colour"] = SEVERITY_COLOURS.get(doc.get("severity") or "low", "#697386")
        v["decided_text"] = fmt(from_unix(doc["decided_at"])) if doc.get("decided_at") else ""
        v["decision_text"] = DECIDED.get(doc.get("decision") or "", doc.get("decision") or doc.get("state"))
        return v

    urgent = sorted(
        (d for d in open_docs if d.get("severity") in ("critical", "high")),
        key=lambda d: (item_rules.severity_rank(d.get("severity") or "low"), d.get("first_seen") or 0, d["_id"]),
    )
    return {
        "queue_count": len(open_docs),
        "severity": [{"level": lv, "count": counts[lv], "colour": SEVERITY_COLOURS[lv]} for lv in LEVELS],
        "at_stake": [format_amount(v, c) for c, v in stake.items()],
        "urgent": [view(d) for d in urgent],
        "urgent_total": len(urgent),
        "handled": [view(d) for d in items.handled],
        "handled_total": len(items.handled),
        "closed": [view(d) for d in items.closed],
        "closed_total": len(items.closed),
    }


def _movement_view(f: Finding, dashboard_url: str, order_url: str | None = None) -> MovementView:
    url = dashboard_link(f["charge_id"], f["livemode"], dashboard_url)
    if f["source"] == "dispute":
        url = f"{dashboard_url.rstrip('/')}/{'' if f['livemode'] is True else 'test/'}disputes/{f['object_id']}"
    return {
        **f,
        "title": wording.MOVEMENT_TITLES[f["kind"]],
        "amount_text": format_amount(f["amount"], f["currency"] or ""),
        "created_text": fmt(from_unix(f["created"])),
        "created_short": wording.day_text(f["created"], with_time=True).removesuffix(" UTC"),
        "url": url,
        "links": queue.links(f, dashboard_url, order_url),
    }


@dataclass(frozen=True)
class PeriodSections:
    """The period sections with every row of their lists (render.Sections): the report draws them without the
    rows its budget cuts."""

    page: PeriodPage

    def rows(self) -> list[Row]:
        d = self.page["decisions"]
        lists: dict[str, list[MovementView] | list[ResolvedView] | list[ItemView]] = {
            "movements": self.page["movements"],
            "resolved": self.page["resolved"],
            "urgent": d["urgent"],
            "handled": d["handled"],
            "closed": d["closed"],
        }
        return [r for name in CUT_LISTS for r in rows_of(name, [row_size(*_money(v)) for v in lists[name]])]

    def html(self, cut: Cut = frozenset()) -> tuple[str, str]:
        d = self.page["decisions"]
        decided: DecisionsView = {
            **d,
            "urgent": kept("urgent", d["urgent"], cut),
            "handled": kept("handled", d["handled"], cut),
            "closed": kept("closed", d["closed"], cut),
        }
        context: PeriodPage = {
            **self.page,
            "movements": kept("movements", self.page["movements"], cut),
            "resolved": kept("resolved", self.page["resolved"], cut),
            "decisions": decided,
        }
        env = template_env()
        top = env.get_template("period_top.html.j2").render(**context)
        return top, env.get_template("period.html.j2").render(**context)


def _money(view: MovementView | ResolvedView | ItemView) -> tuple[object, object]:
    return view.get("amount"), view.get("currency")


def sections(
    *,
    run_id: str,
    now: datetime,
    findings: list[Finding],
    items: item_rules.ItemsResult,
    trend: list[TrendPoint],
    dashboard_url: str,
    dry_run: bool,
    part: tuple[int, int] = (1, 1),
    order_url: str | None = None,
) -> PeriodSections:
    """The sections right after the work queue and at the end of the report, every row of their lists.

    The open items themselves are the work queue (render.py draws it from ReportExtras.queue_items).
    """
    # Those needing a person are items of the work queue (each item once); the rest are listed for the record.
    for_record = [f for f in findings if not f["needs_person"]]
    trend_rows, unit = compact_trend(trend)
    return PeriodSections(
        {
            "run_id": run_id,
            "now": fmt(now),
            "dry_run": dry_run,
            "part": part,
            "movements": [_movement_view(f, dashboard_url, order_url) for f in for_record],
            "movements_total": len(findings),
            "movements_record": len(for_record),
            "movements_needing": len(findings) - len(for_record),
            "open_count": len(items.open),
            "resolved": [_resolved_view(d, dashboard_url, order_url) for d in items.resolved],
            "resolved_total": len(items.resolved),
            "resolved_count": len(items.resolved),
            "new": items.new,
            "buckets": list(items.buckets.items()),
            "trend": _bars(trend_rows),
            "trend_days": len(trend),
            "trend_unit": unit,
            "colours": BAR_COLOURS,
            "decisions": decisions(items, dashboard_url),
        }
    )


def decision_csv_rows(items: item_rules.ItemsResult, found: set[str], dashboard_url: str) -> tuple[CsvRow, ...]:
    """Items being handled and closed by a person, as CSV rows: the report lists the first DECISION_ROWS and
    says the rest are in the CSV. An item this window found (`found`: its keys) already has its own row."""
    rows = []
    for d in [*items.handled, *items.closed]:
        if d["_id"] in found:
            continue
        decided = DECIDED.get(d.get("decision") or "", d.get("decision") or d.get("state") or "")
        when = f" on {fmt(from_unix(d['decided_at']))}" if d.get("decided_at") else ""
        why = d.get("reason") or d.get("last_note")
        state = "being handled" if d.get("state") == item_rules.ACKNOWLEDGED else "closed"
        description = f"{state}: {decided} by {d.get('decided_by')}{when}" + (f": {why}" if why else "")
        rows.append(item_csv_row(d, description, dashboard_url))
    return tuple(rows)


def csv_rows(findings: list[Finding], dashboard_url: str) -> tuple[CsvRow, ...]:
    """Refunds and disputes that need a person, as rows of the report's CSV (same columns)."""
    rows: list[CsvRow] = []
    for f in findings:
        if not f["needs_person"]:
            continue
        rows.append(
            {
                "outcome": f["kind"],
                "order_id": f["order_key"],
                "order_status": f["order_status"],
                "order_amount": to_decimal_text(f["order_amount"], f["order_currency"] or ""),
                "order_currency": f["order_currency"],
                "charge_id": f["charge_id"],
                "charge_amount": to_decimal_text(f["charge_amount"], f["charge_currency"] or ""),
                "charge_currency": f["charge_currency"],
                "charge_created": fmt(from_unix(f["charge_created"])) if f["charge_created"] else "",
                "customer_email": f["email"],
                "description": f"{f['source']} {f['object_id']} ({f['object_status']})",
                "detail": f["detail"],
                "dashboard_url": _movement_view(f, dashboard_url)["url"],
            }
        )
    return tuple(rows)


def summary(findings: list[Finding], items: item_rules.ItemsResult, now: datetime) -> PeriodSummary:
    """Keys added to the run's JSON summary."""
    return {"movements": [_movement_json(f) for f in findings], "items": _items_json(items, now)}


def _movement_json(f: Finding) -> MovementJson:
    return {
        "kind": f["kind"],
        "needs_person": f["needs_person"],
        "source": f["source"],
        "object_id": f["object_id"],
        "object_status": f["object_status"],
        "charge_id": f["charge_id"],
        "order_key": f["order_key"],
        "amount": f["amount"],
        "currency": f["currency"],
        "detail": f["detail"],
    }


def _items_json(items: item_rules.ItemsResult, now: datetime) -> ItemsJson:
    resolved: list[ResolvedJson] = [
        {"key": d["_id"], "kind": d.get("kind"), "resolution": d.get("resolution")} for d in items.resolved
    ]
    closed: list[ClosedJson] = [
        {
            "key": d["_id"],
            "kind": d.get("kind"),
            "decision": d.get("decision"),
            "by": d.get("decided_by"),
            "reason": d.get("reason"),
        }
        for d in items.closed
    ]
    return {
        "open": len(items.open),
        "new": items.new,
        "resolved": resolved,
        "buckets": items.buckets,
        "severity": {level: sum(1 for d in items.open if d.get("severity") == level) for level in LEVELS},
        "being_handled": len(items.handled),
        "closed_by_people": closed,
        "oldest_first_seen": fmt(from_unix(items.open[0]["first_seen"]))
        if items.open and items.open[0].get("first_seen")
        else None,
        "at": to_unix(now),
    }
