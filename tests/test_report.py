"""The report's rendering: escaping, spreadsheet safety, amounts per currency, private atomic files."""

from __future__ import annotations

import csv
import io
import random
import re
import stat
from datetime import UTC, datetime

import pandas as pd

from reconcile.decide import classify as c
from reconcile.report import queue as work_queue
from reconcile.report import render
from reconcile.report.render import ReportExtras, discrepancy_rows, neutralise, render_csv, write_report

SINCE = datetime(2026, 11, 20, tzinfo=UTC)
UNTIL = datetime(2026, 11, 21, tzinfo=UTC)


def outcome_frame(*more: dict, **overrides) -> pd.DataFrame:
    """One outcome row (the defaults: an orphan JPY charge) with `overrides`, then one per dict in `more`."""
    return pd.concat([_row(**overrides), *(_row(**m) for m in more)], ignore_index=True)


def _row(**overrides) -> pd.DataFrame:
    row = {col: None for col in c.RESULT_COLUMNS}
    row.update(
        {
            "outcome": c.ORPHAN_CHARGE,
            "charge_id": "ch_1",
            "charge_amount": 4980,
            "charge_currency": "jpy",
            "charge_created": 1_763_700_000,
            "livemode": False,
            "detail": "charge names no order",
        }
    )
    row.update(overrides)
    frame = pd.DataFrame([row], columns=c.RESULT_COLUMNS)
    for col in ("amount", "charge_amount", "charge_created", "order_created", "settlement_amount", "amount_refunded"):
        frame[col] = frame[col].astype("Int64")
    return frame


def test_hostile_text_is_escaped_in_html(tmp_path):
    frame = outcome_frame(
        outcome=c.DATA_PROBLEM,
        detail='<script>alert("x")</script>',
        order_key="<img src=x onerror=alert(1)>",
        order_status="accepted",
    )
    files = write_report(
        tmp_path,
        "run1",
        SINCE,
        UNTIL,
        {c.DATA_PROBLEM: 1},
        frame,
        {},
        False,
        "https://dashboard.stripe.com",
        UNTIL,
        order_url="https://admin.example/orders/{order_id}",
    )
    html = files.html.read_text()
    assert "<script>alert" not in html and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert "<img src=x" not in html and "order &lt;img src=x onerror=alert(1)&gt;" in html
    assert 'href="https://admin.example/orders/%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E"' in html
    assert "https://dashboard.stripe.com/test/payments/ch_1" in html
    assert "4,980" in html and ">JPY<" in html


def test_files_are_private(tmp_path):
    files = write_report(tmp_path, "run1", SINCE, UNTIL, {}, outcome_frame(), {}, False, "https://d", UNTIL)
    for path in (files.html, files.csv):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left


def test_csv_cells_that_look_like_formulas_are_neutralised():
    for cell in ('=HYPERLINK("x")', "+1", "-2+3", "@SUM(A1)"):
        assert neutralise(cell) == "'" + cell
    assert neutralise("plain") == "plain"
    rows = discrepancy_rows(outcome_frame(description="=cmd|' /C calc'!A0"), "https://d")
    parsed = list(csv.DictReader(io.StringIO(render_csv(rows))))
    assert parsed[0]["description"] == "'=cmd|' /C calc'!A0"
    assert parsed[0]["charge_amount"] == "4980"  # JPY: no decimals
    assert parsed[0]["charge_currency"] == "jpy"


def test_three_decimal_currency_in_csv():
    rows = discrepancy_rows(outcome_frame(charge_amount=12345, charge_currency="kwd"), "https://d")
    parsed = list(csv.DictReader(io.StringIO(render_csv(rows))))
    assert parsed[0]["charge_amount"] == "12.345"


# --------------------------------------------------------------------------- the work queue (issue 13)

DASH = "https://dashboard.stripe.com"


def queue_rows(html: str) -> list[str]:
    """The rows of the work queue table, in order (each an HTML fragment)."""
    table = html[html.index('id="queue"') : html.index("</table>", html.index('id="queue"'))]
    return re.split(r"<tr\b", table)[2:]  # [0] before the first row, [1] the header


def item(key: str, kind: str, amount: int | None, currency: str = "usd", age: int = 0, **more) -> dict:
    return {"_id": key, "kind": kind, "amount": amount, "currency": currency, "age_days": age, **more}


def queue_report(tmp_path, items: tuple[dict, ...], totals: dict | None = None, **options) -> render.ReportFiles:
    """A report of these queue items alone (no outcome of the window's own)."""
    return write_report(
        tmp_path,
        "run1",
        SINCE,
        UNTIL,
        {},
        outcome_frame().iloc[0:0],
        totals or {},
        False,
        DASH,
        UNTIL,
        extras=ReportExtras(queue_items=items),
        **options,
    )


def test_the_queue_comes_first_each_item_once_biggest_money_then_oldest(tmp_path):
    frame = outcome_frame(
        {"outcome": c.REPAIRED, "order_key": "o-rep", "order_status": "accepted", "amount": 3999, "currency": "usd"},
        outcome=c.PAID_WITHOUT_CHARGE,
        order_key="o-today",
        order_status="accepted",
        amount=1500,
        currency="usd",
        charge_id=None,
        detail="order is accepted but no succeeded charge was found",
    )
    items = (
        item("paid_without_charge:o-today:-", c.PAID_WITHOUT_CHARGE, 1500, order_key="o-today", last_run="run1"),
        item("amount_mismatch:o-old:ch_old", c.AMOUNT_MISMATCH, 1500, age=9, order_key="o-old", charge_id="ch_old"),
        item("orphan_charge:-:ch_big", c.ORPHAN_CHARGE, 250_000, "jpy", age=2, charge_id="ch_big"),
        item("orphan_charge:-:ch_small", c.ORPHAN_CHARGE, 90, age=30, charge_id="ch_small"),
    )
    counts = {c.PAID_WITHOUT_CHARGE: 1, c.REPAIRED: 1, c.OK: 0, c.ORPHAN_CHARGE: 0}
    files = write_report(
        tmp_path, "run1", SINCE, UNTIL, counts, frame, {}, False, DASH, UNTIL, extras=ReportExtras(queue_items=items)
    )
    html = files.html.read_text()
    assert html.index("<table") == html.index('<table id="queue"')  # the queue is the first table
    assert '250,000 JPY</span> + <span style="white-space:nowrap">30.90 USD</span> at stake' in html  # per currency
    assert "4 items need a person" in html and "oldest 30 days" in html
    rows = queue_rows(html)
    # 250,000 JPY (2,500 units) > 15.00 USD (the older first) > 0.90 USD
    assert ["ch_big" in rows[0], "o-old" in rows[1], "o-today" in rows[2], "ch_small" in rows[3]] == [True] * 4
    assert html.count("o-today") == 1  # once: no outcome table repeats it
    assert "Next: find the payment, or stop the order" in rows[2]
    # Counts: only those that occurred, in words; the code stays beside it for a search; no tag on a zero.
    assert "Orders marked paid with no succeeded charge" in html and "Stuck orders set to paid" in html
    assert "Matched, nothing to do" not in html and "Charges with no order</td>" not in html
    assert html.count("needs a person</span>") == 1
    # Older items are in the CSV too (the queue says the rest are there).
    parsed = list(csv.DictReader(io.StringIO(files.csv.read_text())))
    assert {r["order_id"] or r["charge_id"] for r in parsed} >= {"o-today", "o-old", "ch_big", "ch_small", "o-rep"}


def test_a_duplicate_links_both_charges_and_says_which_to_refund(tmp_path):
    items = (
        item(
            "duplicate_charge:o1:ch_first",
            c.DUPLICATE_CHARGE,
            1800,
            order_key="o1",
            charge_id="ch_first",
            charge_ids=["ch_first", "ch_second"],
            livemode=True,
        ),
    )
    files = queue_report(tmp_path, items, order_url="https://admin.example/orders/{order_id}")
    (row,) = queue_rows(files.html.read_text())
    assert 'href="https://dashboard.stripe.com/payments/ch_first"' in row
    assert 'href="https://dashboard.stripe.com/payments/ch_second"' in row
    assert 'href="https://admin.example/orders/o1"' in row
    assert "Next: refund the second charge ch_second" in row


def test_deadlines_dispute_respond_by_and_authorization_expiry(tmp_path):
    due = int(datetime(2026, 12, 3, 14, 0, tzinfo=UTC).timestamp())
    lapse = int(datetime(2026, 11, 27, 9, 30, tzinfo=UTC).timestamp())
    items = (
        item(
            "dispute:dp_1",
            "dispute_open",
            7400,
            source="dispute",
            object_id="dp_1",
            charge_id="ch_d",
            charge_ids=["ch_d"],
            order_key="o-d",
            deadline=due,
            severity="critical",
        ),
        item("uncaptured:o-u:ch_u", c.UNCAPTURED, 6100, order_key="o-u", charge_id="ch_u", deadline=lapse),
    )
    files = queue_report(tmp_path, items)
    html = files.html.read_text()
    dispute, uncaptured = queue_rows(html)
    assert "CRITICAL</span>" in dispute and "CRITICAL" not in uncaptured  # the item's severity, when high
    assert "by 3 Dec" in dispute and "Next: respond in Stripe by 3 Dec 14:00 UTC" in dispute
    assert 'href="https://dashboard.stripe.com/test/disputes/dp_1"' in dispute and "/test/payments/ch_d" in dispute
    assert "admin" not in dispute and "&nbsp;· order o-d</code>" in dispute  # no report.order_url: the id, no link
    assert "Next: capture or cancel before 27 Nov" in uncaptured
    assert "nearest deadline" in html and "27 Nov 09:30 UTC" in html


def test_uncaptured_carries_its_authorization_expiry_from_classify():
    from reconcile.decide import items as item_rules

    now = int(UNTIL.timestamp())
    order = {
        "order_key": "o1",
        "order_id": "o1",
        "status": "created",
        "amount": 6100,
        "currency": "usd",
        "created": now - 3600,
    }
    charge = {
        "charge_id": "ch_auth",
        "created": now - 3000,
        "status": "succeeded",
        "captured": False,
        "amount": 6100,
        "amount_captured": 0,
        "amount_refunded": 0,
        "refunded": False,
        "disputed": False,
        "currency": "usd",
        "order_ref": "o1",
        "capture_before": now + 86400,
    }
    rules = c.Rules("created", ("accepted",), "failed", 900, now)
    outcomes = c.classify(c.orders_frame([order]), c.charges_frame([charge]), rules)
    (finding,) = item_rules.core_findings(outcomes)
    assert finding["kind"] == c.UNCAPTURED and finding["deadline"] == now + 86400
    no_expiry = c.classify(c.orders_frame([order]), c.charges_frame([{**charge, "capture_before": None}]), rules)
    assert item_rules.core_findings(no_expiry)[0]["deadline"] == now - 3000 + c.AUTHORIZATION_SECONDS


def test_a_big_window_stays_under_the_budget_and_says_how_many_more_are_in_the_csv(tmp_path):
    n = 3000
    items = tuple(
        item(
            f"orphan_charge:-:ch_{i:05d}",
            c.ORPHAN_CHARGE,
            100 + i,
            charge_id=f"ch_{i:05d}",
            detail="charge names no order",
            last_run="earlier",
            first_seen=0,
        )
        for i in range(n)
    )
    files = queue_report(tmp_path, items)
    html = files.html.read_text()
    assert len(html.encode()) <= render.HTML_BUDGET < 100_000
    rows = queue_rows(html)
    assert len(rows) >= 10 and f"ch_{n - 1:05d}" in rows[0]  # the largest first
    assert f"These are the {len(rows)} largest items. {n - len(rows)} more are in the attached CSV" in html
    assert len(list(csv.DictReader(io.StringIO(files.csv.read_text())))) == n


def test_made_for_mail_clients_inline_styles_only(tmp_path):
    items = (item("orphan_charge:-:ch_1", c.ORPHAN_CHARGE, 4980, "jpy", charge_id="ch_1"),)
    totals = {
        "usd": {
            "gross": 10000,
            "refunds": -2000,
            "disputes": 0,
            "other": 0,
            "fees": 320,
            "net": 7680,
            "payouts": -5000,
            "charge_count": 4,
            "by_category": {"charge": {"count": 4, "amount": 10000, "fee": 320, "net": 9680}},
        }
    }
    files = queue_report(tmp_path, items, totals)
    html = files.html.read_text()
    assert "<style" not in html and "class=" not in html  # nothing a client that strips <style> would lose
    # The totals read top to bottom to net.
    order = [html.index(w) for w in ("Gross", "+ Refunds", "+ Disputes", "+ Other", "&minus; Fees", "= Net")]
    assert order == sorted(order) and "76.80 USD" in html


def test_every_outcome_has_plain_words_and_every_item_a_next_step():
    from reconcile.decide import movements
    from reconcile.report import wording

    assert set(wording.OUTCOME_TITLES) == set(c.OUTCOMES)
    special = {c.DUPLICATE_CHARGE, c.UNCAPTURED, movements.DISPUTE_OPEN}
    needing = {*c.NEEDS_PERSON, movements.REFUND_FAILED, movements.REFUNDED_ORDER_STILL_PAID, movements.DISPUTE_LOST}
    assert needing - special <= set(wording.NEXT_STEPS)


def test_money_at_stake_counts_each_charge_once(tmp_path):
    """A dispute and its order's "refunded or disputed" row are two claims on one charge's money: the headline,
    the severity section and the text email count it once, and the queue's amounts add up to the headline."""
    items = (
        item(
            "refunded_or_disputed:o1:ch_d",
            c.REFUNDED_OR_DISPUTED,
            7400,
            order_key="o1",
            charge_id="ch_d",
            charge_ids=["ch_d"],
        ),
        item(
            "dispute:dp_1",
            "dispute_open",
            7400,
            age=1,
            source="dispute",
            object_id="dp_1",
            order_key="o1",
            charge_id="ch_d",
            deadline=1_764_000_000,
        ),
        item("orphan_charge:-:ch_o", c.ORPHAN_CHARGE, 1200, charge_id="ch_o"),
        # Two orders named by one charge's links: one sum of money.
        item("link_conflict:o2:ch_l", c.LINK_CONFLICT, 2900, order_key="o2", charge_id="ch_l"),
        item("link_conflict:o3:ch_l", c.LINK_CONFLICT, 2900, order_key="o3", charge_id="ch_l"),
    )
    files = write_report(
        tmp_path,
        "run1",
        SINCE,
        UNTIL,
        {},
        outcome_frame(),
        {},
        False,
        DASH,
        UNTIL,
        extras=ReportExtras(queue_items=items),
    )
    html = files.html.read_text()
    assert "115.00 USD</span> at stake" in html.split('id="queue-title"')[0]  # 74 + 12 + 29, not 218
    assert "5 items need a person" in html
    rows = queue_rows(html)
    # The counted claim first, the one sharing its money right under it, with no amount of its own.
    assert "dp_1" in rows[0] and "o1" in rows[1] and "Same money as" in rows[1]
    assert "o2" in rows[2] and "o3" in rows[3] and "Same money as" in rows[3]
    shown = [float(a.replace(",", "")) for r in rows for a in re.findall(r"<b>([\d,.]+)</b> <small", r)]
    assert sum(shown) == 115.00
    q = work_queue.build(items, DASH)
    assert q.at_stake == {"usd": 11500}
    assert "74.00 USD (same money as dispute open: respond before the due date above)" in "\n".join(q.text_lines())


def test_decided_items_beyond_the_list_are_csv_rows_and_a_long_trend_is_compact():
    from reconcile.report import period
    from reconcile.store.items import ItemsResult

    handled = [
        item(
            f"orphan_charge:-:ch_{n}",
            c.ORPHAN_CHARGE,
            100 + n,
            charge_id=f"ch_{n}",
            state="acknowledged",
            decision="ack",
            decided_by="alice",
            decided_at=1_764_000_000,
            last_run="old",
        )
        for n in range(30)
    ]
    closed = [
        item(
            "amount_mismatch:o9:ch_9",
            c.AMOUNT_MISMATCH,
            500,
            order_key="o9",
            charge_id="ch_9",
            state="accepted",
            decision="accept",
            decided_by="bob",
            reason="coupon",
            last_run="run1",
        )
    ]
    found = {"amount_mismatch:o9:ch_9"}  # this window's own findings: rows of their own already
    rows = period.decision_csv_rows(ItemsResult(handled=handled, closed=closed), found, DASH)
    # Every item being handled is a row, saying so (re-checked ones too); the one this window found has its own.
    assert [r["charge_id"] for r in rows] == [f"ch_{n}" for n in range(30)]
    assert rows[0]["description"].startswith("being handled: acknowledged by alice on ")
    days = [{"day": f"2026-{1 + n // 28:02d}-{1 + n % 28:02d}", "charges": 1, "open": n} for n in range(336)]
    monthly, unit = period.compact_trend(days)
    assert unit == "month" and len(monthly) == 12 and monthly[0] == {"day": "2026-01", "charges": 28, "open": 27}
    weekly, unit = period.compact_trend(days[:60])
    assert unit == "week" and len(weekly) == 9 and weekly[1] == {"day": "2026-01-08", "charges": 7, "open": 13}
    assert period.compact_trend(days[:14]) == (days[:14], "day")


def test_an_amount_mismatch_puts_the_difference_at_stake():
    from reconcile.decide import items as item_rules

    mismatch = {
        "outcome": c.AMOUNT_MISMATCH,
        "amount": 5000,
        "currency": "usd",
        "charge_amount": 4500,
        "charge_currency": "usd",
    }
    assert item_rules.at_stake(mismatch) == 500  # the sum to settle with the customer
    assert item_rules.at_stake({**mismatch, "charge_currency": "eur"}) == 5000  # no difference across currencies
    assert item_rules.at_stake({**mismatch, "outcome": c.PAID_WITHOUT_CHARGE}) == 5000
    # An item recorded before `at_stake` existed counts its amount; the queue counts the difference.
    assert item_rules.stake({"amount": 5000}) == 5000
    q = work_queue.build([item("amount_mismatch:o1:ch_1", c.AMOUNT_MISMATCH, 5000, at_stake=500)], DASH)
    assert q.at_stake == {"usd": 500} and q.entries[0].amount_text == "5.00 USD"


# --------------------------------------------------------------------------- the page's budget (issue 21)


def _sid(prefix: str, n: int) -> str:
    """A Stripe-like id of Stripe's length (ch_ + 24)."""
    return f"{prefix}_3Q{n:06d}Kx7hPz2LmW9aRtYb"


def busy_day(tmp_path, rows: int) -> tuple[str, dict[str, list[tuple[int, str]]]]:
    """A report of a busy day with `rows` rows across its lists (2/5 in the work queue, 3/10 handled automatically,
    1/10 refunds, 1/20 resolved, 1/20 being handled, the rest closed by a person), every amount different.
    (the HTML, {list: [(amount, id shown in its row)]})."""
    from reconcile.decide.items import ItemsResult
    from reconcile.report import period

    n = {"queue": rows * 2 // 5, "listed": rows * 3 // 10, "movements": rows // 10, "resolved": rows // 20}
    n["handled"] = rows // 20
    n["closed"] = rows - sum(n.values())
    names = [name for name, count in n.items() for _ in range(count)]
    random.Random(21).shuffle(names)  # the lists interleave: amount order is not list order
    money: dict[str, list[int]] = {name: [] for name in n}
    for k, name in enumerate(names):
        money[name].append(1000 + 37 * k)
    kinds = [c.ORPHAN_CHARGE, c.AMOUNT_MISMATCH, c.PAID_WITHOUT_CHARGE, c.FAILED_BUT_CHARGED]
    queue = tuple(
        item(
            f"{kinds[i % 4]}:o-{i:05d}:{_sid('ch', i)}",
            kinds[i % 4],
            a,
            age=i % 9,
            order_key=None if kinds[i % 4] == c.ORPHAN_CHARGE else f"o-{i:05d}",
            charge_id=_sid("ch", i),
            detail="order is accepted but the charge failed",
        )
        for i, a in enumerate(money["queue"])
    )
    frame = outcome_frame(
        *[
            {
                "outcome": (c.REPAIRED, c.MARKED_FAILED)[i % 2],
                "order_key": f"l-{i:05d}",
                "order_status": "accepted",
                "amount": a,
                "currency": "usd",
                "charge_id": _sid("ch", 50_000 + i),
                "detail": "order was pending, its charge succeeded: set to paid",
            }
            for i, a in enumerate(money["listed"])
        ]
    ).iloc[1:]
    refunds = [
        {
            "kind": "partial_refund",
            "needs_person": False,
            "source": "refund",
            "object_id": _sid("re", i),
            "object_status": "succeeded",
            "created": int(UNTIL.timestamp()) - 600,
            "amount": a,
            "currency": "usd",
            "charge_id": _sid("ch", 60_000 + i),
            "charge_ids": [_sid("ch", 60_000 + i)],
            "livemode": False,
            "order_key": f"r-{i:05d}",
            "detail": "part of the charge was refunded; the order stays paid",
        }
        for i, a in enumerate(money["movements"])
    ]

    def decided(name: str, i: int, a: int, **more) -> dict:
        key = f"orphan_charge:-:{_sid('ch', 70_000 + 1000 * len(name) + i)}"
        return item(key, c.ORPHAN_CHARGE, a, charge_id=key.rsplit(":", 1)[1], decided_at=1_764_000_000, **more)

    result = ItemsResult(
        open=list(queue),
        resolved=[
            decided("resolved", i, a, resolution="re-checked: the charge has its order")
            for i, a in enumerate(money["resolved"])
        ],
        handled=[
            decided(
                "handled",
                i,
                a,
                state="acknowledged",
                decision="ack",
                decided_by="alice",
                last_note="on it",
                last_note_by="alice",
            )
            for i, a in enumerate(money["handled"])
        ],
        closed=[
            decided("closed", i, a, state="accepted", decision="accept", decided_by="bob", reason="test order")
            for i, a in enumerate(money["closed"])
        ],
        buckets={"0-1 day": len(queue)},
    )
    sections = period.sections(
        run_id="run1",
        now=UNTIL,
        findings=refunds,
        items=result,
        trend=[],
        dashboard_url=DASH,
        dry_run=False,
        order_url="https://admin.shop.example/orders/{order_id}",
    )
    counts = {c.REPAIRED: len(money["listed"])}
    files = write_report(
        tmp_path,
        "run1",
        SINCE,
        UNTIL,
        counts,
        frame,
        {},
        False,
        DASH,
        UNTIL,
        extras=ReportExtras(sections=sections, queue_items=queue),
        order_url="https://admin.shop.example/orders/{order_id}",
    )
    shown_ids = {
        "queue": [q["charge_id"] for q in queue],
        "listed": list(frame["charge_id"]),
        "movements": [r["object_id"] for r in refunds],
        "resolved": [d["charge_id"] for d in result.resolved],
        "handled": [d["_id"] for d in result.handled],
        "closed": [d["_id"] for d in result.closed],
    }
    return files.html.read_text(), {name: list(zip(money[name], shown_ids[name], strict=True)) for name in n}


def test_a_report_of_200_rows_shows_every_one_under_100_kb(tmp_path):
    html, lists = busy_day(tmp_path, 200)
    assert sum(len(rows) for rows in lists.values()) == 200
    assert len(html.encode()) < 100_000
    for name, rows in lists.items():
        for _, shown in rows:
            assert shown in html, (name, shown)
    assert "more in the attached CSV" not in html and "more (the summary JSON" not in html
    assert "These are the" not in html


def test_beyond_the_budget_the_smallest_money_is_cut_and_each_list_counts_the_rest(tmp_path):
    html, lists = busy_day(tmp_path, 400)
    assert len(html.encode()) <= render.HTML_BUDGET
    rows = [(amount, name, shown, shown in html) for name, rows in lists.items() for amount, shown in rows]
    cut = [r for r in rows if not r[3]]
    assert cut, "nothing was cut: the test needs a bigger day"
    # Every row cut holds less money than every row shown, whatever its list.
    assert max(r[0] for r in cut) < min(r[0] for r in rows if r[3])
    left = {name: sum(1 for r in cut if r[1] == name) for name in lists}
    assert f"{len(lists['queue']) - left['queue']} largest items. {left['queue']} more are in the attached CSV" in html
    notes = {
        "movements": "more (the summary JSON lists every one)",
        "resolved": "more (the summary JSON lists every one)",
        "handled": "more in the attached CSV (reconcile items --state acknowledged",
        "closed": "more in the attached CSV.",
    }
    for name, words in notes.items():
        if left[name]:
            assert f"and {left[name]} {words}" in html, name
    listed = sum(int(n) for n in re.findall(r"and (\d+) more in the attached CSV\.</p>", html))
    assert listed == left["listed"] + left["closed"]
