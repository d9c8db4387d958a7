"""Run history for people: the `reconcile runs` table and the `reconcile show` page."""

from __future__ import annotations

from reconcile.decide.runs import RunDoc, RunPart, StartedBy
from reconcile.money import format_amount
from reconcile.timeutil import fmt, from_unix


def _t(unix: object, short: bool = False) -> str:
    if not isinstance(unix, int):
        return "-"
    text = fmt(from_unix(unix))
    return text[5:16].replace("T", " ") if short else text


def _who(doc: RunDoc) -> str:
    by: StartedBy = doc.get("started_by") or {}
    return f"{by.get('trigger', '?')} {by.get('user', '?')}@{by.get('host', '?')}"


def _window(doc: RunDoc, short: bool = True) -> str:
    w = doc.get("window") or {}
    if not w:
        return "-"
    part: RunPart = doc.get("part") or {}
    suffix = f" ({part.get('index')}/{part.get('of')})" if part.get("of", 1) > 1 else ""
    return f"{_t(w.get('since'), short)} to {_t(w.get('until'), short)}{suffix}"


def _status(doc: RunDoc) -> str:
    return ("dry-run " if doc.get("dry_run") else "") + str(doc.get("status"))


def table(docs: list[RunDoc]) -> list[str]:
    """Recent runs, newest first, one line each (a catch-up's windows as `INVOCATION-wN`)."""
    header = f"{'RUN ID':<26} {'STARTED (UTC)':<17} {'WINDOW (UTC)':<32} {'STATUS':<18} {'EXIT':>4} {'NEEDS':>5} {'OPEN':>5} {'REPAIRED':>8} {'EMAIL':<8} STARTED BY"
    lines = [header]
    for d in docs:
        email = (d.get("email") or {}).get("status", "-")
        lines.append(
            f"{d['_id']:<26} {_t(d.get('started'), True):<17} {_window(d):<32} {_status(d):<18} "
            f"{d.get('exit_code', '-')!s:>4} {d.get('needs_attention', '-')!s:>5} {d.get('open_items', '-')!s:>5} "
            f"{d.get('repaired', '-')!s:>8} {email:<8} {_who(d)}"
        )
    if not docs:
        lines.append("(no runs recorded yet)")
    return lines


def details(doc: RunDoc) -> list[str]:
    """One run, as a page of `label  value` lines."""
    by: StartedBy = doc.get("started_by") or {}
    lines = [
        f"run           {doc['_id']}  (invocation {doc.get('invocation')})",
        f"status        {_status(doc)}" + (f", exit {doc['exit_code']}" if "exit_code" in doc else ""),
        f"window        {_window(doc, short=False)}"
        + {
            "watermark": " (continues the watermark)",
            "lookback": " (window.lookback)",
            "options": " (--since/--until)",
        }.get(doc.get("source") or "", ""),
    ]
    if doc.get("counted_from"):
        lines.append(f"money from    {_t(doc['counted_from'])} (the overlap before it was counted by the previous run)")
    took = ""
    finished, started = doc.get("finished"), doc.get("started")
    if isinstance(finished, int) and isinstance(started, int):
        took = f" (took {finished - started}s)"
    lines += [
        f"started       {_t(doc.get('started'))} by {by.get('trigger')}: {by.get('user')}@{by.get('host')} pid {by.get('pid')}",
        f"command       {by.get('command', '-')}",
        f"finished      {_t(doc.get('finished'))}{took}",
    ]
    if doc.get("error"):
        lines.append(f"error         {doc['error']}")
    counts = doc.get("counts") or {}
    if counts:
        lines.append("counts        " + (", ".join(f"{k} {v}" for k, v in counts.items() if v) or "nothing in window"))
        lines.append(
            f"attention     {doc.get('needs_attention', 0)} need a person; open items {doc.get('open_items', 0)} "
            f"({doc.get('new_items', 0)} new, {doc.get('resolved_items', 0)} resolved); "
            f"repaired {doc.get('repaired', 0)}, marked failed {doc.get('marked_failed', 0)}; "
            f"refunds and disputes {doc.get('movements', 0)}"
        )
    for currency, t in (doc.get("totals") or {}).items():
        lines.append(
            f"totals {currency.upper():<6} {t.get('charge_count', 0)} charges, gross {format_amount(t.get('gross'), currency)}, "
            f"refunds {format_amount(t.get('refunds'), currency)}, disputes {format_amount(t.get('disputes'), currency)}, "
            f"other {format_amount(t.get('other', 0), currency)}, "
            f"fees {format_amount(t.get('fees'), currency)}, net {format_amount(t.get('net'), currency)}"
        )
    report = doc.get("report") or {}
    for kind in ("html", "csv"):
        if report.get(kind):
            from pathlib import Path

            exists = "" if Path(report[kind]).is_file() else "  (no longer on disk)"
            lines.append(f"report {kind:<6} {report[kind]}{exists}")
    email = doc.get("email") or {}
    if email:
        line = f"email         {email.get('status')}"
        if email.get("attempts"):
            line += f" after {email['attempts']} attempt(s)"
        if email.get("subject"):
            line += f": {email['subject']}"
        if email.get("status") == "failed" and email.get("error"):
            line += f"; last error: {email['error']} (the next run resends it)"
        lines.append(line)
    return lines


def as_json(doc: RunDoc) -> dict[str, object]:
    """One run for `reconcile runs --json`, in the summary's keys and time format: `run_id`, `window`
    and every time as ISO-8601 UTC text, `repaired` / `marked_failed` as order ids (None for runs
    recorded before the ids were kept; the counts are in `repaired_count` / `marked_failed_count`),
    `totals` in integer minor units by currency code. Machine output carries no text made for people
    but the email's subject: an unsent email's body (`email.text`, kept to resend it) is left out."""
    out = {"run_id": doc["_id"], **{k: v for k, v in doc.items() if k != "_id"}}
    for key in ("at", "started", "finished", "counted_from"):
        unix = out.get(key)
        if isinstance(unix, int):
            out[key] = fmt(from_unix(unix))
    window = out.get("window")
    if isinstance(window, dict):
        out["window"] = {k: fmt(from_unix(v)) if isinstance(v, int) else v for k, v in window.items()}
    email = out.get("email")
    if isinstance(email, dict):
        out["email"] = {
            k: fmt(from_unix(v)) if k in ("at", "sent_at") and isinstance(v, int) else v
            for k, v in email.items()
            if k != "text"
        }
    for key in ("repaired", "marked_failed"):
        if key in out or f"{key}_ids" in out:
            out[f"{key}_count"] = out.get(key)
            out[key] = out.pop(f"{key}_ids", None)
    return out
