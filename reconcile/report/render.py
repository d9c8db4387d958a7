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
from pathlib import Path
from typing import Any

import jinja2
import markupsafe
import pandas as pd

from reconcile.decide import classify as c
from reconcile.money import format_amount, to_decimal_text
from reconcile.timeutil import fmt, from_unix

# Report sections, in the order a person should read them.
TITLES = {
    c.PAID_WITHOUT_CHARGE: "Orders marked paid with no succeeded charge",
    c.AMOUNT_MISMATCH: "Charge amount or currency differs from the order",
    c.DUPLICATE_CHARGE: "Orders charged more than once (refund candidates)",
    c.LINK_CONFLICT: "Payments whose links name different orders (nothing repaired)",
    c.ORPHAN_CHARGE: "Succeeded charges with no order",
    c.PROBABLE_MATCH: "Probable matches to confirm: unreferenced charges paired with unpaid orders, best first",
    c.REFUNDED_OR_DISPUTED: "Refunded or disputed charges on live orders",
    c.FAILED_BUT_CHARGED: "Orders marked failed whose charge succeeded",
    c.UNCAPTURED: "Authorized but not captured",
    c.DATA_PROBLEM: "Order documents the job could not read",
    c.REPAIRED: "Repaired: stuck orders set to paid",
    c.MARKED_FAILED: "Marked failed: pending orders with only failed charges",
    c.STALE_PENDING: "Stale pending orders with no charge (abandoned checkouts)",
    c.IN_FLIGHT: "In flight: left alone for now",
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
]
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# A temporary file this old is debris from a killed run, not another run's write in progress.
STALE_TEMP_SECONDS = 3600.0


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    csv: Path


@dataclass(frozen=True)
class ReportExtras:
    """What the orchestration adds to a run's report: sections, CSV rows, summary keys, items needing a person."""

    html_top: str = ""  # escaped HTML shown under the banner
    html: str = ""  # escaped HTML shown after the outcome tables
    csv_rows: tuple[dict[str, Any], ...] = ()  # extra CSV rows, keyed by CSV_FIELDS
    summary: dict[str, Any] = field(default_factory=dict)
    needs_attention: int = 0


def template_env() -> jinja2.Environment:
    """The report templates (autoescaped; a missing variable is an error)."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("reconcile.report", "templates"),
        autoescape=True,  # descriptions and metadata come from customers
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def dashboard_link(charge_id: Any, livemode: Any, base: str) -> str | None:
    if not isinstance(charge_id, str):
        return None
    return f"{base.rstrip('/')}/{'' if livemode is True else 'test/'}payments/{charge_id}"


def _value(value: Any) -> Any:
    return None if value is None or (not isinstance(value, (list, dict)) and pd.isna(value)) else value


def discrepancy_rows(outcomes: pd.DataFrame, dashboard_url: str) -> list[dict[str, Any]]:
    """Every outcome other than ok, as plain dicts with display-ready fields."""
    rows = []
    for record in outcomes.loc[outcomes["outcome"] != c.OK].to_dict("records"):
        r = {str(k): _value(v) for k, v in record.items()}  # column names are strings
        r["order_amount_text"] = format_amount(r["amount"], r["currency"] or "") if r["amount"] is not None else ""
        r["charge_amount_text"] = (
            format_amount(r["charge_amount"], r["charge_currency"] or "") if r["charge_amount"] is not None else ""
        )
        settles_elsewhere = r["settlement_currency"] and r["settlement_currency"] != r["charge_currency"]
        r["settlement_text"] = (
            format_amount(r["settlement_amount"], r["settlement_currency"])
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


def render_csv(rows: list[dict[str, Any]], extra: tuple[dict[str, Any], ...] = ()) -> str:
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
            ]
        )
    for r in extra:
        writer.writerow([neutralise(r.get(name)) for name in CSV_FIELDS])
    return out.getvalue()


def render_html(context: dict[str, Any]) -> str:
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


def write_report(
    report_dir: Path,
    run_id: str,
    since: datetime,
    until: datetime,
    counts: dict[str, int],
    outcomes: pd.DataFrame,
    totals: dict[str, Any],
    dry_run: bool,
    dashboard_url: str,
    generated: datetime,
    extras: ReportExtras | None = None,
    counted_from: datetime | None = None,
) -> ReportFiles:
    rows = discrepancy_rows(outcomes, dashboard_url)
    sections = []
    for outcome, title in TITLES.items():
        items = [r for r in rows if r["outcome"] == outcome]
        if items:
            sections.append(
                {
                    "outcome": outcome,
                    "title": title,
                    "rows": items,
                    "needs_person": outcome in c.NEEDS_PERSON,
                }
            )
    totals_view = [
        {
            "currency": cur.upper(),
            **{k: format_amount(v, cur) for k, v in t.items() if k not in ("charge_count", "by_category")},
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
        for cur, t in totals.items()
    ]
    sweep_stale_temps(report_dir)
    stem = f"reconcile-{run_id}"
    files = ReportFiles(html=report_dir / f"{stem}.html", csv=report_dir / f"{stem}.csv")
    extras = extras or ReportExtras()
    needs = sum(counts.get(o, 0) for o in c.NEEDS_PERSON) + extras.needs_attention
    html = render_html(
        {
            "run_id": run_id,
            "since": fmt(since),
            "until": fmt(until),
            "generated": fmt(generated),
            "dry_run": dry_run,
            "counts": [(o, counts.get(o, 0)) for o in c.OUTCOMES],
            "needs_person": set(c.NEEDS_PERSON),
            "needs_count": needs,
            "sections": sections,
            "totals": totals_view,
            "csv_name": files.csv.name,
            "counted_from": fmt(counted_from) if counted_from else "",
            "extras_top": markupsafe.Markup(extras.html_top),
            "extras_bottom": markupsafe.Markup(extras.html),
        }
    )
    write_private(files.csv, render_csv(rows, extras.csv_rows))
    write_private(files.html, html)
    return files


def write_summary_json(path: Path, summary: dict[str, Any]) -> None:
    write_private(path, json.dumps(summary, indent=2, default=str) + "\n")


# --------------------------------------------------------------------------- changes on every way out

EARLIER_TITLE = "Changes made by earlier runs that no report listed (the run was stopped before its report)"


def earlier_changes_html(records: list[dict[str, Any]]) -> str:
    """An escaped HTML section listing earlier runs' unreported changes ('' when none)."""
    if not records:
        return ""
    esc = markupsafe.escape
    rows = "".join(
        f"<tr><td>{esc(r.get('run_id'))}</td><td>{esc(r.get('order_key'))}</td><td>{esc(r.get('action'))}</td>"
        f"<td>{esc(r.get('charge_id') or '')}</td></tr>"
        for r in records
    )
    return (
        f"<h2>{esc(EARLIER_TITLE)} ({len(records)})</h2>"
        "<table><tr><th>run</th><th>order</th><th>change</th><th>charge</th></tr>"
        f"{rows}</table>"
    )


def earlier_changes_csv(records: list[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
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
    earlier: list[dict[str, Any]],
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
