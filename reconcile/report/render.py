"""Render the run's report: HTML for people, CSV of discrepancies, JSON summary for machines.

Files are written atomically (temp file + rename) and readable by the owner only: they hold
customer data.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol, TypedDict, cast

import jinja2
import markupsafe
import pandas as pd

from reconcile.decide import classify as c
from reconcile.decide import items as item_rules
from reconcile.decide.audit import AuditRecord
from reconcile.decide.items import ItemDoc
from reconcile.decide.totals import Totals
from reconcile.money import format_amount, to_decimal_text
from reconcile.report import queue as work_queue
from reconcile.report import wording
from reconcile.report.records import CsvRow, PeriodSummary, SummaryJson
from reconcile.timeutil import fmt, from_unix

# Outcome titles in plain words (report/wording.py); kept here under their old name for callers.
TITLES = wording.OUTCOME_TITLES
# The HTML stays under this many bytes whatever the window: Gmail clips a message body at about 102 KB. Every row of
# every list is shown while the page fits; past that the rows with the smallest money go first (Row, Cut).
HTML_BUDGET = 95_000
QUEUE_FLOOR = 10  # the work queue's largest items are never cut
MOST_ROWS = 600  # no page of this budget holds more rows (~150 bytes each at the least): the first try draws these
# Inline styles: mail clients strip <style> blocks, so each element carries its own. Rows repeat, so theirs are
# short (templates/_macros.html.j2): valign and cellpadding are attributes set once on each table, a cell's small
# text is one <small>, its ids one <code>, and colours are written short.
_FONT = "-apple-system,Segoe UI,Helvetica,Arial,sans-serif"
STYLE = {
    "body": f"margin:0;padding:0;background:#f6f8fa;color:#1a1f36;font-family:{_FONT};font-size:14px;line-height:1.45",
    "wrap": "max-width:980px;margin:0 auto;padding:8px;box-sizing:border-box",
    "card": "background:#fff;border:1px solid #e3e8ee;border-radius:8px;padding:12px;box-sizing:border-box",
    "h1": "font-size:20px;margin:0 0 4px",
    "h2": "font-size:16px;margin:24px 0 6px;padding-bottom:4px;border-bottom:1px solid #e3e8ee",
    "h3": "font-size:14px;margin:16px 0 4px",
    "meta": "color:#697386;font-size:12px",
    "banner": "padding:10px 12px;border-radius:6px;margin:12px 0",
    "box": "overflow-x:auto;max-width:100%",
    "table": "border-collapse:collapse;width:100%;font-size:13px",
    # A list of rows (work queue, automatic outcomes, refunds and disputes, resolved): a long id (a Checkout
    # Session's is 66 characters) breaks where it must, so on a phone the list fits its box and is read without
    # scrolling sideways (amounts are nowrap cells: never broken). word-break:break-word: WebKit mail clients.
    "list": "border-collapse:collapse;width:100%;overflow-wrap:anywhere;word-break:break-word",
    "th": "padding:6px 8px;background:#f6f8fa;font-size:12px;color:#425466",
    "row": "border-top:1px solid #eee",
    "rowc": "border-top:1px solid #eef0f3",  # a row of the totals (cellpadding on the table)
    "next": "color:#161",  # #0b5a2a, shorter
    "detail": "color:#456;font-size:12px",  # #425466, shorter
    "small": "color:#456",  # on a <small>: about 12px in the lists' 14px
    "due": "color:#b3261e",
    "tag": "padding:0 4px;font-size:11px;white-space:nowrap;background:#fff4e5;border:1px solid #f5a623",
    "nowrap": "white-space:nowrap",
    "code": "font:12px monospace;white-space:nowrap",
}
CSV_FIELDS = [
    "outcome",
    "order_id",
    "order_status",
    "order_amount",
    "order_currency",
    "charge_id",
    "charge_amount",
    "charge_currency",
    "settlement_amount",
    "settlement_currency",
    "charge_created",
    "customer_email",
    "description",
    "detail",
    "dashboard_url",
    "linked_by",
    "expected_end",
]
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# A temporary file this old is debris from a killed run, not another run's write in progress.
STALE_TEMP_SECONDS = 3600.0


class DiscrepancyRow(TypedDict, total=False):
    """An outcome other than ok: its outcome row's fields as plain values (decide/columns.py names them;
    the row keeps every column), and the texts the report shows."""

    outcome: str
    order_key: str | None
    order_status: str | None
    amount: int | None
    currency: str | None
    charge_id: str | None
    charge_amount: int | None
    charge_currency: str | None
    settlement_amount: int | None
    settlement_currency: str | None
    charge_created: int | None
    order_created: int | None
    livemode: bool | None
    email: str | None
    description: str | None
    detail: str | None
    link_kind: str | None
    order_amount_text: str
    charge_amount_text: str
    settlement_text: str
    charge_created_text: str
    order_created_text: str
    dashboard_url: str | None
    linked_by: str
    # Rows listed among the automatic outcomes (_listed_sections).
    amount_text: str
    links: tuple[work_queue.Link, ...]


class ListedSection(TypedDict):
    """The rows of one outcome handled automatically or only listed (repaired, marked failed, in flight...)."""

    outcome: str
    title: str
    rows: list[DiscrepancyRow]
    total: int


class CountLine(TypedDict):
    code: str
    title: str
    count: int
    needs_person: bool


class CategoryView(TypedDict):
    name: str
    count: int
    amount: str
    fee: str
    net: str


class TotalsView(TypedDict):
    """One currency's totals, formatted (the headline columns top to bottom, payouts beside)."""

    currency: str
    gross: str
    refunds: str
    disputes: str
    other: str
    fees: str
    net: str
    payouts: str
    charge_count: int
    by_category: list[CategoryView]


class ReportPage(TypedDict):
    """What templates/report.html.j2 draws."""

    run_id: str
    since: str
    until: str
    generated: str
    dry_run: bool
    counts: list[CountLine]
    queue: work_queue.Queue
    settled: dict[str, str]
    described: dict[str, str]
    mark_new: bool
    at_stake: list[tuple[str, str]]
    oldest: str
    nearest: work_queue.Entry | None
    nearest_text: str
    totals: list[TotalsView]
    csv_name: str
    counted_from: str
    extras_top: markupsafe.Markup
    extras_bottom: markupsafe.Markup


class ShownPage(ReportPage):
    """The page with the rows that fit (HTML_BUDGET)."""

    shown_queue: tuple[work_queue.Entry, ...]
    listed: list[ListedSection]


@dataclass(frozen=True, order=True)
class Row:
    """A row of one of the report's lists as the budget sees it: its money (major units, compared across
    currencies without exchange rates, -1 without an amount), then its place: the smallest money is cut first,
    and of equal money a list's later rows."""

    size: Decimal
    place: int  # minus the row's index in its list
    list: str  # which list: "queue", "listed:<outcome>", "movements", "resolved", "urgent", "handled", "closed"

    @property
    def key(self) -> tuple[str, int]:
        return (self.list, -self.place)


Cut = frozenset[tuple[str, int]]  # (list, index) of the rows left out of the page


def row_size(amount: Any, currency: Any) -> Decimal:
    """A row's money for the budget (Row.size), however signed: -1 without an amount."""
    if not isinstance(amount, int) or isinstance(amount, bool):
        return Decimal(-1)
    return work_queue.major(abs(amount), str(currency or ""))


def rows_of(name: str, sizes: list[Decimal]) -> list[Row]:
    return [Row(size, -index, name) for index, size in enumerate(sizes)]


def kept(name: str, values: list[Any], cut: Cut) -> list[Any]:
    """The rows of list `name` left on the page, in their order."""
    return [v for index, v in enumerate(values) if (name, index) not in cut]


class Sections(Protocol):
    """Sections drawn with the page (report/period.py): their rows, and their HTML without the rows cut."""

    def rows(self) -> list[Row]: ...

    def html(self, cut: Cut) -> tuple[str, str]:
        """(HTML right after the work queue, HTML at the end)."""
        ...


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    csv: Path


@dataclass(frozen=True)
class ReportExtras:
    """What the window run adds to its report: sections, CSV rows, summary keys, the work queue."""

    html_top: str = ""  # escaped HTML shown right after the work queue (after the sections' own)
    html: str = ""  # escaped HTML shown after the totals and the automatic outcomes (after the sections' own)
    sections: Sections | None = None  # lists the budget cuts with the page's own (report/period.py)
    csv_rows: tuple[CsvRow, ...] = ()  # extra CSV rows
    summary: PeriodSummary = field(default_factory=lambda: PeriodSummary(movements=[], items=None))
    # Every open item after the run (store/items.py documents): the work queue. None: the queue is this
    # window's own findings.
    queue_items: tuple[ItemDoc, ...] | None = None


def template_env() -> jinja2.Environment:
    """The report templates (autoescaped; a missing variable is an error), with the inline styles as `s`."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("reconcile.report", "templates"),
        autoescape=True,  # descriptions and metadata come from customers
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["s"] = {k: markupsafe.Markup(v) for k, v in STYLE.items()}  # constants, no quotes in them
    return env


def dashboard_link(charge_id: Any, livemode: Any, base: str) -> str | None:
    if not isinstance(charge_id, str):
        return None
    return f"{base.rstrip('/')}/{'' if livemode is True else 'test/'}payments/{charge_id}"


def _value(value: Any) -> Any:
    return None if value is None or (not isinstance(value, (list, dict)) and pd.isna(value)) else value


def discrepancy_rows(outcomes: pd.DataFrame, dashboard_url: str) -> list[DiscrepancyRow]:
    """Every outcome other than ok, as plain dicts with display-ready fields."""
    rows = []
    for record in outcomes.loc[outcomes["outcome"] != c.OK].to_dict("records"):
        r = cast(DiscrepancyRow, {str(k): _value(v) for k, v in record.items()})  # column names are strings
        r["order_amount_text"] = format_amount(r["amount"], r["currency"] or "") if r["amount"] is not None else ""
        r["charge_amount_text"] = (
            format_amount(r["charge_amount"], r["charge_currency"] or "") if r["charge_amount"] is not None else ""
        )
        settles_elsewhere = r["settlement_currency"] and r["settlement_currency"] != r["charge_currency"]
        r["settlement_text"] = (
            format_amount(r["settlement_amount"], r["settlement_currency"] or "")
            if settles_elsewhere and r["settlement_amount"] is not None
            else ""
        )
        r["charge_created_text"] = fmt(from_unix(r["charge_created"])) if r["charge_created"] is not None else ""
        r["order_created_text"] = fmt(from_unix(r["order_created"])) if r["order_created"] is not None else ""
        r["dashboard_url"] = dashboard_link(r["charge_id"], r["livemode"], dashboard_url)
        r["linked_by"] = (r.get("link_kind") or "").replace("_", " ")
        rows.append(r)
    return rows


def neutralise(cell: Any) -> str:
    """Keep a spreadsheet from running a cell as a formula."""
    text = "" if cell is None else str(cell)
    return "'" + text if text.startswith(_FORMULA_START) else text


def render_csv(rows: list[DiscrepancyRow], extra: tuple[CsvRow, ...] = ()) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_FIELDS)
    for r in rows:
        writer.writerow(
            [
                neutralise(r["outcome"]),
                neutralise(r["order_key"]),
                neutralise(r["order_status"]),
                to_decimal_text(r["amount"], r["currency"] or ""),
                neutralise(r["currency"]),
                neutralise(r["charge_id"]),
                to_decimal_text(r["charge_amount"], r["charge_currency"] or ""),
                neutralise(r["charge_currency"]),
                to_decimal_text(r["settlement_amount"], r["settlement_currency"] or ""),
                neutralise(r["settlement_currency"]),
                r["charge_created_text"],
                neutralise(r["email"]),
                neutralise(r["description"]),
                neutralise(r["detail"]),
                neutralise(r["dashboard_url"]),
                neutralise(r["linked_by"]),
                iso_time(r.get("expected_end")) or "",  # the order's deadline; empty for a charge's row
            ]
        )
    for row in extra:
        writer.writerow([neutralise(row.get(name)) for name in CSV_FIELDS])
    return out.getvalue()


def iso_time(unix: object) -> str | None:
    """Unix seconds (a cell: None or NA when missing) as ISO-8601 UTC; None when missing."""
    value = item_rules.plain_value(unix)
    return fmt(from_unix(int(value))) if isinstance(value, int) else None


def render_html(context: ShownPage) -> str:
    return template_env().get_template("report.html.j2").render(**context)


def write_private(path: Path, text: str) -> None:
    """Atomic write, mode 0600: a crash leaves the old file or the new one, never half of one.

    A directory created here is 0700 (owner only): file names carry run ids, contents customer data.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def sweep_stale_temps(report_dir: Path, older_than: float = STALE_TEMP_SECONDS) -> list[Path]:
    """Remove temporary files a killed run left behind (never a finished report; never a fresh temp file)."""
    removed: list[Path] = []
    if not report_dir.is_dir():
        return removed
    cutoff = time.time() - older_than
    for path in report_dir.glob(".reconcile-*.tmp"):
        with contextlib.suppress(OSError):
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed.append(path)
    return removed


def _listed_sections(rows: list[DiscrepancyRow], dashboard_url: str, order_url: str | None) -> list[ListedSection]:
    """The outcomes handled automatically or only listed (repaired, marked failed, in flight, stale pending...)."""
    sections: list[ListedSection] = []
    for outcome in c.OUTCOMES:
        if outcome == c.OK or outcome in c.NEEDS_PERSON:
            continue
        items = [r for r in rows if r["outcome"] == outcome]
        if not items:
            continue
        for r in items:
            amount, currency = _listed_money(r)
            r["amount_text"] = format_amount(amount, currency or "") if amount is not None else ""
            r["links"] = work_queue.links(
                {"kind": outcome, "charge_id": r["charge_id"], "livemode": r["livemode"], "order_key": r["order_key"]},
                dashboard_url,
                order_url,
            )
        sections.append({"outcome": outcome, "title": wording.item_title(outcome), "rows": items, "total": len(items)})
    return sections


def _listed_money(r: DiscrepancyRow) -> tuple[int | None, str | None]:
    """The money of an automatic outcome's row: the order's amount, else the charge's."""
    return (r["amount"], r["currency"]) if r["amount"] is not None else (r["charge_amount"], r["charge_currency"])


def _older_item_rows(items: tuple[ItemDoc, ...], run_id: str, dashboard_url: str) -> list[CsvRow]:
    """Open items from earlier windows, as CSV rows: the queue says the ones it leaves out are in the CSV."""
    rows = []
    for d in items:
        if d.get("last_run") == run_id:
            continue  # found by this window: already a row of its own
        since = f" since {fmt(from_unix(d['first_seen']))}" if d.get("first_seen") else ""
        rows.append(item_csv_row(d, f"open item{since}", dashboard_url))
    return rows


def item_csv_row(d: ItemDoc, description: str, dashboard_url: str) -> CsvRow:
    """An item (a document of the items collection) as a row of the report's CSV."""
    amount, currency = d.get("amount"), d.get("currency") or ""
    return {
        "outcome": d.get("kind"),
        "order_id": d.get("order_key"),
        "order_amount": to_decimal_text(amount, currency) if isinstance(amount, int) else "",
        "order_currency": currency,
        "charge_id": d.get("charge_id"),
        "description": description,
        "detail": d.get("detail"),
        "dashboard_url": dashboard_link(d.get("charge_id"), d.get("livemode"), dashboard_url),
    }


def write_report(
    report_dir: Path,
    run_id: str,
    since: datetime,
    until: datetime,
    counts: dict[str, int],
    outcomes: pd.DataFrame,
    totals: Totals,
    dry_run: bool,
    dashboard_url: str,
    generated: datetime,
    extras: ReportExtras | None = None,
    counted_from: datetime | None = None,
    order_url: str | None = None,
) -> ReportFiles:
    rows = discrepancy_rows(outcomes, dashboard_url)
    extras = extras or ReportExtras()
    items = extras.queue_items if extras.queue_items is not None else tuple(item_rules.core_findings(outcomes))
    queue = work_queue.build(items, dashboard_url, order_url)
    listed = _listed_sections(rows, dashboard_url, order_url)
    sweep_stale_temps(report_dir)
    stem = f"reconcile-{run_id}"
    files = ReportFiles(html=report_dir / f"{stem}.html", csv=report_dir / f"{stem}.csv")
    nearest = queue.nearest
    context: ReportPage = {
        "run_id": run_id,
        "since": fmt(since),
        "until": fmt(until),
        "generated": fmt(generated),
        "dry_run": dry_run,
        # Only the outcomes that occurred, in plain words; the code beside each is the CSV's `outcome`.
        "counts": [
            {"code": o, "title": wording.item_title(o), "count": counts[o], "needs_person": o in c.NEEDS_PERSON}
            for o in c.OUTCOMES
            if counts.get(o)
        ],
        "queue": queue,
        # Where the window's own row says more than the item: the settlement of a charge in another currency,
        # and the charge's description (what was bought: how a person finds an orphan charge's order).
        "settled": {_row_key(r): r["settlement_text"] for r in rows if r["settlement_text"]},
        "described": {_row_key(r): str(r["description"])[:200] for r in rows if r["description"]},
        # "new" marks an item first seen by this run, worth saying only when some are older.
        "mark_new": any(not e.is_new for e in queue.entries),
        "at_stake": [(cur, format_amount(v, cur)) for cur, v in queue.at_stake.items()],
        "oldest": wording.age_text(queue.oldest_days) if queue.oldest_days else "today",
        "nearest": nearest,
        "nearest_text": wording.day_text(nearest.deadline, with_time=True) if nearest else "",
        "totals": _totals_view(totals),
        "csv_name": files.csv.name,
        "counted_from": fmt(counted_from) if counted_from else "",
        "extras_top": markupsafe.Markup(extras.html_top),
        "extras_bottom": markupsafe.Markup(extras.html),
    }
    html = _render_within_budget(context, queue, listed, extras.sections)
    extra_rows = (*extras.csv_rows, *_older_item_rows(extras.queue_items or (), run_id, dashboard_url))
    write_private(files.csv, render_csv(rows, extra_rows))
    write_private(files.html, html)
    return files


def _totals_view(totals: Totals) -> list[TotalsView]:
    """The money totals per currency, formatted, the currency with the most charges first."""
    return [
        {
            "currency": cur.upper(),
            "gross": format_amount(t["gross"], cur),
            "refunds": format_amount(t["refunds"], cur),
            "disputes": format_amount(t["disputes"], cur),
            "other": format_amount(t["other"], cur),
            "fees": format_amount(t["fees"], cur),
            "net": format_amount(t["net"], cur),
            "payouts": format_amount(t["payouts"], cur),
            "charge_count": t["charge_count"],
            "by_category": [
                {
                    "name": name,
                    "count": v["count"],
                    "amount": format_amount(v["amount"], cur),
                    "fee": format_amount(v["fee"], cur),
                    "net": format_amount(v["net"], cur),
                }
                for name, v in t["by_category"].items()
            ],
        }
        # The currency with the most charges first.
        for cur, t in sorted(totals.items(), key=lambda kv: (-int(kv[1]["charge_count"]), kv[0]))
    ]


def _row_key(r: DiscrepancyRow) -> str:
    """The item key of a window's row (decide/items.core_findings)."""
    return f"{r['outcome']}:{r['order_key'] or '-'}:{r['charge_id'] or '-'}"


def _render_within_budget(
    context: ReportPage, queue: work_queue.Queue, listed: list[ListedSection], sections: Sections | None
) -> str:
    """The HTML with every row of every list while it fits in HTML_BUDGET bytes; past that, the fewest rows cut,
    smallest money first (Row), each list saying how many more are in the CSV (or the summary JSON)."""
    order = sorted(_budget_rows(queue, listed, sections))

    def page(n: int) -> str:
        return _render_cut(context, queue, listed, sections, frozenset(r.key for r in order[:n]))

    low = max(0, len(order) - MOST_ROWS)
    html = page(low)
    if len(html.encode("utf-8")) <= HTML_BUDGET or low == len(order):
        return html
    high = len(order)  # the fewest rows cut that fits lies in (low, high]
    best = ""
    while high - low > 1:
        mid = (low + high) // 2
        text = page(mid)
        if len(text.encode("utf-8")) <= HTML_BUDGET:
            high, best = mid, text
        else:
            low = mid
    return best or page(high)


def _budget_rows(queue: work_queue.Queue, listed: list[ListedSection], sections: Sections | None) -> list[Row]:
    """Every row the budget may cut: the queue's but its QUEUE_FLOOR largest, the automatic outcomes', the sections'."""
    found = [
        r for r in rows_of("queue", [row_size(e.amount, e.currency) for e in queue.entries]) if -r.place >= QUEUE_FLOOR
    ]
    for sec in listed:
        found += rows_of(f"listed:{sec['outcome']}", [row_size(*_listed_money(r)) for r in sec["rows"]])
    return found + (sections.rows() if sections is not None else [])


def _render_cut(
    context: ReportPage, queue: work_queue.Queue, listed: list[ListedSection], sections: Sections | None, cut: Cut
) -> str:
    top, bottom = sections.html(cut) if sections is not None else ("", "")
    return render_html(
        {
            **context,
            "shown_queue": tuple(kept("queue", list(queue.entries), cut)),
            "listed": [{**sec, "rows": kept(f"listed:{sec['outcome']}", sec["rows"], cut)} for sec in listed],
            "extras_top": markupsafe.Markup(top) + context["extras_top"],
            "extras_bottom": markupsafe.Markup(bottom) + context["extras_bottom"],
        }
    )


def write_summary_json(path: Path, summary: SummaryJson) -> None:
    write_private(path, json.dumps(summary, indent=2, default=str) + "\n")


# --------------------------------------------------------------------------- changes on every way out

EARLIER_TITLE = "Changes made by earlier runs that no report listed (the run was stopped before its report)"


def earlier_changes_html(records: list[AuditRecord]) -> str:
    """An escaped HTML section listing earlier runs' unreported changes ('' when none)."""
    if not records:
        return ""
    esc = markupsafe.escape
    rows = "".join(
        f"<tr><td>{esc(r.get('run_id'))}</td><td>{esc(r.get('order_key'))}</td><td>{esc(r.get('action'))}</td>"
        f"<td>{esc(r.get('charge_id') or '')}</td></tr>"
        for r in records
    )
    # Inline styles (mail clients strip <style>); the table scrolls inside its own box on a narrow screen.
    return (
        f'<h2 style="{STYLE["h2"]}">{esc(EARLIER_TITLE)} ({len(records)})</h2>'
        f'<div style="{STYLE["box"]}"><table style="{STYLE["table"]}">'
        '<tr><th align="left">run</th><th align="left">order</th><th align="left">change</th>'
        f'<th align="left">charge</th></tr>{rows}</table></div>'
    )


def earlier_changes_csv(records: list[AuditRecord]) -> tuple[CsvRow, ...]:
    """Earlier runs' unreported changes as CSV rows (outcome `<action>_by_earlier_run`)."""
    return tuple(
        {
            "outcome": f"{r.get('action')}_by_earlier_run",
            "order_id": r.get("order_key"),
            "charge_id": r.get("charge_id"),
            "order_amount": to_decimal_text(r.get("amount"), r.get("currency") or "")
            if isinstance(r.get("amount"), int)
            else "",
            "order_currency": r.get("currency"),
            "detail": f"changed by run {r.get('run_id')}, which stopped before its report",
        }
        for r in records
    )


def write_plain_report(
    report_dir: Path,
    run_id: str,
    since: datetime,
    until: datetime,
    repaired: list[str],
    marked_failed: list[str],
    earlier: list[AuditRecord],
    error: str,
    generated: datetime,
) -> ReportFiles:
    """The report of a run that changed orders and then failed: what it changed, in plain HTML (no
    template, so a broken render cannot stop it) and CSV, under the run's usual file names."""
    esc = markupsafe.escape
    stem = f"reconcile-{run_id}"
    files = ReportFiles(html=report_dir / f"{stem}.html", csv=report_dir / f"{stem}.csv")
    changed = [(c.REPAIRED, k) for k in repaired] + [(c.MARKED_FAILED, k) for k in marked_failed]
    items = "".join(f"<tr><td>{esc(action)}</td><td>{esc(key)}</td></tr>" for action, key in changed)
    html = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>reconcile: run stopped</title></head><body>"
        f"<h1>Run {esc(run_id)} stopped after changing {len(changed)} order(s)</h1>"
        f"<p>Window {esc(fmt(since))} to {esc(fmt(until))}; generated {esc(fmt(generated))}.</p>"
        f"<p>It stopped with: {esc(error)}. The orders below were changed (each with its audit record); "
        "the next run reconciles the window again and reports the rest.</p>"
        f"<table><tr><th>change</th><th>order</th></tr>{items}</table>"
        f"{earlier_changes_html(earlier)}</body></html>\n"
    )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_FIELDS)
    for action, key in changed:
        writer.writerow([neutralise(v) for v in (action, key)] + [""] * (len(CSV_FIELDS) - 2))
    for row in earlier_changes_csv(earlier):
        writer.writerow([neutralise(row.get(name)) for name in CSV_FIELDS])
    write_private(files.csv, out.getvalue())
    write_private(files.html, html)
    return files
