"""`reconcile items` (the open items and what people decide about them) and `reconcile undo RUN_ID`.

Thin: options in, one call into store/ or run/, lines out; errors become one line and an exit code.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

import click

from reconcile.cli.common import fail, now_of, open_db, os_user, parse_option_duration
from reconcile.errors import ReconcileError
from reconcile.money import currency_code, exponent, format_amount, minor_units, to_decimal_text
from reconcile.timeutil import fmt, from_unix, parse_duration, to_unix

if TYPE_CHECKING:
    from pymongo.database import Database

    from reconcile.config import Config, Threshold
    from reconcile.decide.items import ItemDoc

STATE_CHOICES = ("open", "acknowledged", "accepted", "resolved", "all")
COLUMNS = (
    "key",
    "outcome",
    "order",
    "charge",
    "amount",
    "currency",
    "age",
    "severity",
    "state",
    "last_note",
    "expected_end",
)
BY_HELP = "Who decides (kept with the decision). Default: the OS user."

FC = TypeVar("FC", bound=Callable[..., Any])


class ItemRow(TypedDict):
    """One listed item: the COLUMNS of `reconcile items` (table, --json, --csv). Money is exact here, integer
    minor units with the currency code; only the table and `items show` make display strings of it."""

    key: str
    outcome: str | None
    order: str | None
    charge: str | None
    amount: int | None  # the money at stake, minor units of `currency` (None: no amount known)
    currency: str | None
    age: str
    severity: str
    state: str | None
    last_note: str
    expected_end: str | None  # ISO-8601 UTC: when the order's payment should have settled (None: not an order's)


def _row(doc: ItemDoc, at: int, severity: tuple[Threshold, ...]) -> ItemRow:
    from reconcile.decide import items as rules

    age = max(0, at - int(doc.get("first_seen") or at))
    amount = rules.stake(doc)  # money at stake: an amount mismatch's difference
    return {
        "key": doc["_id"],
        "outcome": doc.get("kind"),
        "order": doc.get("order_key"),
        "charge": doc.get("charge_id"),
        "amount": minor_units(amount),
        "currency": currency_code(doc.get("currency")),
        "age": f"{age // rules.DAY}d",
        "severity": rules.severity(amount, doc.get("currency"), age, severity)
        if doc.get("state") in rules.LIVE
        else "",
        "state": doc.get("state"),
        "last_note": (doc.get("flag") and f"[{doc['flag']}] " or "") + (doc.get("last_note") or ""),
        "expected_end": fmt(from_unix(end)) if isinstance(end := doc.get("expected_end"), int) else None,
    }


def _at_least(doc: ItemDoc, minimum: Decimal) -> bool:
    """Money at stake at least `minimum` major units of the item's currency, compared in minor units."""
    from reconcile.decide import items as rules

    amount = rules.stake(doc)
    if amount is None:
        return False
    return bool(abs(amount) >= minimum * (10 ** exponent(doc.get("currency") or "")))


def _parse_min_amount(value: str | None) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(value)
    except InvalidOperation:
        raise click.BadParameter(f"{value!r} is not a number", param_hint="--min-amount") from None


def _parse_older_than(value: str | None) -> int | None:
    """--older-than in seconds."""
    if value is None:
        return None
    try:
        return int(parse_duration(value).total_seconds())
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--older-than") from None


@click.group(name="items", invoke_without_command=True)
@click.option(
    "--state",
    type=click.Choice(STATE_CHOICES),
    default="open",
    show_default=True,
    help="Which items: open (the queue), acknowledged (being handled), accepted, resolved, or all.",
)
@click.option("--outcome", metavar="NAME", help="Only items of this outcome (e.g. duplicate_charge, probable_match).")
@click.option("--min-amount", metavar="N", help="Only items with at least N major units of their currency at stake.")
@click.option("--older-than", metavar="DURATION", help="Only items first seen longer ago than this (e.g. 3d).")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="JSON Lines instead of a table: one JSON object per item, one per line; `amount` in integer minor "
    "units of `currency` (lower-case ISO 4217 code), e.g. 18542 and jpy for 18,542 JPY.",
)
@click.option(
    "--csv",
    "as_csv",
    is_flag=True,
    help="CSV with a header row instead of a table; `amount` in major units without grouping (18542, 19.99).",
)
@click.pass_context
def items(
    ctx: click.Context,
    state: str,
    outcome: str | None,
    min_amount: str | None,
    older_than: str | None,
    as_json: bool,
    as_csv: bool,
) -> None:
    """List items with severity and state; act on them (show, note, ack, accept, resolve, confirm, dismiss, clear)."""
    if ctx.invoked_subcommand is not None:
        return
    minimum = _parse_min_amount(min_amount)
    age = _parse_older_than(older_than)
    if as_json and as_csv:
        raise click.UsageError("--json and --csv: pick one")
    at = to_unix(now_of(ctx))
    rows = _list_rows(ctx, state, at, lambda d: _wanted(d, outcome, minimum, age, at))
    if as_json:
        for r in rows:
            click.echo(json.dumps(r, sort_keys=True))
    elif as_csv:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(COLUMNS), lineterminator="\n")
        writer.writeheader()
        # The amount as a number a spreadsheet reads (as the report's CSV has it).
        writer.writerows({**r, "amount": to_decimal_text(r["amount"], r["currency"] or "")} for r in rows)
        click.echo(out.getvalue(), nl=False)
    else:
        _echo_table(rows, state)


def _wanted(doc: ItemDoc, outcome: str | None, minimum: Decimal | None, age: int | None, at: int) -> bool:
    """The item passes --outcome, --min-amount and --older-than."""
    if outcome and doc.get("kind") != outcome:
        return False
    if minimum is not None and not _at_least(doc, minimum):
        return False
    return age is None or at - int(doc.get("first_seen") or at) > age


def _list_rows(ctx: click.Context, state: str, at: int, wanted: Callable[[ItemDoc], bool]) -> list[ItemRow]:
    """The items in `state` that are wanted, as rows, the most severe first."""
    from reconcile.decide import items as rules
    from reconcile.store import items as store

    try:
        config, db = open_db(ctx)
        states = rules.STATES if state == "all" else (state,)
        docs = store.list_items(db[config.mongodb.items_collection], states)
    except ReconcileError as error:
        fail(error)
    rows = [_row(d, at, config.items.severity) for d in docs if wanted(d)]
    rows.sort(key=lambda r: (rules.severity_rank(r["severity"] or "none"), r["key"]))
    return rows


def _amount_text(row: ItemRow) -> str:
    """The money at stake for people (`18,542 JPY`): the table and `items show` only."""
    return format_amount(row["amount"], row["currency"] or "") if row["amount"] is not None else ""


def _echo_table(rows: list[ItemRow], state: str) -> None:
    if not rows:
        click.echo(f"no {'' if state == 'all' else state + ' '}items")
        return
    click.echo(f"{'severity':<9} {'state':<13} {'age':>4} {'amount':>14}  {'key':<50} last note")
    for r in rows:
        click.echo(
            f"{r['severity'] or '-':<9} {r['state']:<13} {r['age']:>4} {_amount_text(r):>14}  {r['key']:<50} {r['last_note']}"
        )
    click.echo(f"{len(rows)} item(s)")


def _when(value: Any) -> str:
    return fmt(from_unix(int(value))) if isinstance(value, int) else "-"


@items.command()
@click.argument("key")
@click.pass_context
def show(ctx: click.Context, key: str) -> None:
    """Everything known about one item (KEY or a unique prefix): runs, re-checks, notes and decisions."""
    from reconcile.store import items as store

    try:
        config, db = open_db(ctx)
        doc = store.find_item(db[config.mongodb.items_collection], key)
        decided = store.history(db[config.mongodb.decisions_collection], doc["_id"])
    except ReconcileError as error:
        fail(error)
    at = to_unix(now_of(ctx))
    row = _row(doc, at, config.items.severity)
    lines = [
        f"item        {doc['_id']}",
        f"outcome     {doc.get('kind')}    state {doc.get('state')}"
        + (f"    severity {row['severity']}" if row["severity"] else ""),
        f"order       {doc.get('order_key') or '-'}    charge {doc.get('charge_id') or '-'}",
        f"amount      {_amount_text(row) or '-'}",
        f"detail      {doc.get('detail') or '-'}",
        f"seen        first {_when(doc.get('first_seen'))} (run {doc.get('first_run')}), "
        f"last {_when(doc.get('last_seen'))} (run {doc.get('last_run')}), {doc.get('times_seen', 0)} time(s)"
        + (f", reopened {doc['reopened']} time(s)" if doc.get("reopened") else ""),
        f"checked     last {_when(doc.get('last_checked'))} (by its window or a re-check against Stripe)",
    ]
    seen_by = doc.get("runs") or []
    if seen_by:
        lines.append(f"seen by     {', '.join(seen_by)}" + (" (the latest)" if len(seen_by) >= 100 else ""))
    if doc.get("flag"):
        lines.append(f"flag        {doc['flag']}")
    if doc.get("resolution"):
        lines.append(
            f"resolution  {doc['resolution']} ({_when(doc.get('resolved_at'))}"
            + (f", run {doc['resolved_run']}" if doc.get("resolved_run") else "")
            + ")"
        )
    if doc.get("verified_at"):
        lines.append(f"verified    {_when(doc['verified_at'])} by run {doc.get('verified_run')}")
    lines.append("decisions" + ("" if decided else "   none"))
    for d in decided:
        extra = f" ({d['run_id']})" if d.get("run_id") else ""
        what = f" [{d['change_id']}]" if d.get("change_id") else ""
        lines.append(
            f"  {_when(d.get('at'))}  {d.get('action'):<9} by {d.get('by')}{extra}{what}: {d.get('reason') or ''}".rstrip()
        )
    for line in lines:
        click.echo(line)


def _decide(ctx: click.Context, key: str, action: str, by: str, reason: str | None, **more: Any) -> None:
    from reconcile.store import items as store

    try:
        config, db = open_db(ctx)
        col = db[config.mongodb.items_collection]
        doc = store.find_item(col, key)
        after = store.decide(col, db[config.mongodb.decisions_collection], doc, action, by, reason, now_of(ctx), **more)
    except ReconcileError as error:
        fail(error)
    click.echo(f"{action}: {after['_id']} is now {after.get('state')} (by {by})")


def _by_option(f: FC) -> FC:
    return click.option("--by", default=os_user, show_default="the OS user", help=BY_HELP)(f)


@items.command()
@click.argument("key")
@click.argument("text")
@_by_option
@click.pass_context
def note(ctx: click.Context, key: str, text: str, by: str) -> None:
    """Add a note to an item (its state does not change)."""
    _decide(ctx, key, "note", by, text)


@items.command()
@click.argument("key")
@click.option("--note", "text", help="Why, or what is being done (kept as the item's last note).")
@_by_option
@click.pass_context
def ack(ctx: click.Context, key: str, text: str | None, by: str) -> None:
    """Someone is on it: the item stays open, out of the report's queue, under "being handled"."""
    _decide(ctx, key, "ack", by, text)


@items.command()
@click.argument("key")
@click.option("--reason", required=True, help="Why the difference is explained (e.g. the customer bought twice).")
@_by_option
@click.pass_context
def accept(ctx: click.Context, key: str, reason: str, by: str) -> None:
    """An explained difference: closed while its facts stay the same; reopened, saying what changed, if they change."""
    _decide(ctx, key, "accept", by, reason)


@items.command()
@click.argument("key")
@click.option("--reason", required=True, help="What was done to fix it (e.g. refunded by hand in the dashboard).")
@_by_option
@click.pass_context
def resolve(ctx: click.Context, key: str, reason: str, by: str) -> None:
    """A person fixed it: the next run covering it verifies, and reopens it flagged if it is still there."""
    _decide(ctx, key, "resolve", by, reason)


def _probable(ctx: click.Context, key: str) -> tuple[Config, Database, ItemDoc]:
    from reconcile.decide.classify import PROBABLE_MATCH
    from reconcile.store import items as store

    config, db = open_db(ctx)
    doc = store.find_item(db[config.mongodb.items_collection], key)
    if doc.get("kind") != PROBABLE_MATCH or not doc.get("order_key") or not doc.get("charge_id"):
        raise store.ItemError(
            f"item {doc['_id']} is {doc.get('kind')}: confirm and dismiss apply to probable_match items"
        )
    if doc.get("state") not in ("open", "acknowledged"):
        raise store.ItemError(f"item {doc['_id']} is {doc.get('state')}: confirm and dismiss apply to open items")
    return config, db, doc


@items.command()
@click.argument("key")
@click.option("--reason", help="Why they are the same purchase (kept with the decision).")
@_by_option
@click.pass_context
def confirm(ctx: click.Context, key: str, reason: str | None, by: str) -> None:
    """A probable match is the same purchase: write the charge id onto the order (audited, undoable)."""
    from reconcile.run.settings import repair_store
    from reconcile.run.undo import new_undo_id
    from reconcile.store import items as store
    from reconcile.store import undo as writes

    now = now_of(ctx)
    try:
        config, db, doc = _probable(ctx, key)
        change_id = new_undo_id(now, "confirm")
        writes.confirm_charge(
            repair_store(db, config), str(doc["order_key"]), str(doc["charge_id"]), change_id, by, reason, now
        )
        store.decide(
            db[config.mongodb.items_collection],
            db[config.mongodb.decisions_collection],
            doc,
            "confirm",
            by,
            reason,
            now,
            change_id=change_id,
            order_key=doc["order_key"],
            charge_id=doc["charge_id"],
        )
    except ReconcileError as error:
        fail(error)
    click.echo(
        f"confirmed: charge {doc['charge_id']} written onto order {doc['order_key']} ({change_id}); "
        f"the next run links them. Undo with `reconcile undo {change_id}`"
    )


@items.command()
@click.argument("key")
@click.option("--reason", help="Why they are not the same purchase (kept with the decision).")
@_by_option
@click.pass_context
def dismiss(ctx: click.Context, key: str, reason: str | None, by: str) -> None:
    """A probable match is not the same purchase: the pair is remembered and never proposed again."""
    from reconcile.store import items as store

    try:
        config, db, doc = _probable(ctx, key)
        store.decide(
            db[config.mongodb.items_collection],
            db[config.mongodb.decisions_collection],
            doc,
            "dismiss",
            by,
            reason,
            now_of(ctx),
            order_key=doc["order_key"],
            charge_id=doc["charge_id"],
        )
    except ReconcileError as error:
        fail(error)
    click.echo(f"dismissed: order {doc['order_key']} and charge {doc['charge_id']} will not be proposed again")


@items.command()
@click.argument("key")
@click.option("--reason", required=True, help="Why the job may change this order again.")
@_by_option
@click.pass_context
def clear(ctx: click.Context, key: str, reason: str, by: str) -> None:
    """Clear the marker an undo left on a repair_undone item's order: the next run may repair it again."""
    from reconcile.decide.classify import REPAIR_UNDONE
    from reconcile.store import items as store
    from reconcile.store import undo as writes

    try:
        config, db = open_db(ctx)
        col = db[config.mongodb.items_collection]
        doc = store.find_item(col, key)
        if doc.get("kind") != REPAIR_UNDONE:
            raise store.ItemError(f"item {doc['_id']} is {doc.get('kind')}: clear applies to repair_undone items")
        held = writes.clear_hold(db[config.mongodb.orders_collection], str(doc.get("order_key")))
        store.decide(col, db[config.mongodb.decisions_collection], doc, "clear", by, reason, now_of(ctx))
    except ReconcileError as error:
        fail(error)
    click.echo(
        f"cleared: order {doc.get('order_key')} may be changed by the next run"
        + ("" if held else " (it carried no undo marker any more)")
    )


@click.command()
@click.argument("run_id")
@click.option("--order", "orders", multiple=True, metavar="ID", help="Only this order (repeatable).")
@click.option("--dry-run", is_flag=True, help="Print what would be put back; change nothing.")
@click.option("--by", default=os_user, show_default="the OS user", help="Who undoes (kept in the audit records).")
@click.option("--wait", metavar="DURATION", help="Wait this long for a running job's lease before exiting 4.")
@click.pass_context
def undo(ctx: click.Context, run_id: str, orders: tuple[str, ...], dry_run: bool, by: str, wait: str | None) -> None:
    """Put back every order a run changed (RUN_ID, an undo or confirm id, or a unique prefix of a run id).

    The run id a summary names (its `run_id`, the run's last console line) undoes every window of a
    catch-up, newest window first; a window's own id (`...-w2`) undoes that window only.
    Compare-and-set against the state the run left: an order changed since is left alone and listed
    with what it is now. Each undo is audited (and undoable in turn); an undone repair is held until a
    person clears it with `reconcile items clear`. Exit codes as a run: 0 done, 1 some orders left
    alone, 2 no such run, 3 MongoDB unavailable, 4 another run holds the lease.
    """
    from reconcile.run.settings import repair_store
    from reconcile.run.undo import undo_run

    wait_for = parse_option_duration(wait, "--wait")
    try:
        config, db = open_db(ctx)
        result = undo_run(
            repair_store(db, config),
            db[config.mongodb.runs_collection],
            db[config.mongodb.state_collection],
            config.lease,
            run_id,
            order_keys=orders,
            dry_run=dry_run,
            by=by,
            now=now_of(ctx),
            wait=wait_for,
        )
    except ReconcileError as error:
        fail(error)
    for line in result.lines:
        click.echo(line)
    sys.exit(int(result.exit_code))
