"""The report's rendering: escaping, spreadsheet safety, amounts per currency, private atomic files."""

from __future__ import annotations

import csv
import io
import stat
from datetime import UTC, datetime

import pandas as pd

from reconcile.decide import classify as c
from reconcile.report.render import discrepancy_rows, neutralise, render_csv, write_report

SINCE = datetime(2026, 11, 20, tzinfo=UTC)
UNTIL = datetime(2026, 11, 21, tzinfo=UTC)


def outcome_frame(**overrides) -> pd.DataFrame:
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
    frame = outcome_frame(description='<script>alert("x")</script>', order_key="<img src=x onerror=alert(1)>")
    files = write_report(
        tmp_path, "run1", SINCE, UNTIL, {c.ORPHAN_CHARGE: 1}, frame, {}, False, "https://dashboard.stripe.com", UNTIL
    )
    html = files.html.read_text()
    assert "<script>alert" not in html and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert "<img src=x" not in html
    assert "https://dashboard.stripe.com/test/payments/ch_1" in html
    assert "4,980 JPY" in html


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
