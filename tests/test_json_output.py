"""Exact numbers in machine output (issue 21, item 2): every JSON output carries money as integers in minor
units beside a lower-case ISO 4217 code, never a display string (`18,542 JPY`) or a float; every JSON list
is JSON Lines (one object per line) and its `--help` says so. Display strings stay in the human output.

Through the CLI against the stand-in over HTTP and nx-27017 (`reconcile items --json`, `--summary-json`,
`reconcile runs --json`), and `report.history.as_json` on a recorded run.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator

import click
import pytest

from reconcile import cli as reconcile_cli
from reconcile.decide import classify as c
from reconcile.demo.embedded_mongo import free_port
from reconcile.money import currency_code, minor_units
from reconcile.report import history

# A display string of money: `18,542 JPY`, `2,500.00 USD`, `9.00 USD`.
DISPLAY_MONEY = re.compile(r"\b\d{1,3}(?:,\d{3})*(?:\.\d+)? [A-Z]{3}\b")
CODE = re.compile(r"^[a-z]{3}$")
# Text made for people that may quote amounts (documented: never parsed).
PROSE_KEYS = {"detail", "subject"}
AMOUNT_KEYS = {"amount": "currency", "order_amount": "order_currency", "charge_amount": "charge_currency"}


def json_lines(output: str) -> list[dict]:
    """JSON Lines: every line one JSON object (an array or a pretty-printed object fails here)."""
    lines = output.splitlines()
    assert lines, "no output"
    parsed = [json.loads(line) for line in lines]
    assert all(isinstance(p, dict) for p in parsed), output
    return parsed


def strings(value: object, path: str = "") -> Iterator[tuple[str, str]]:
    """(path, text) of every string in a JSON value, but the prose keys."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k not in PROSE_KEYS:
                yield from strings(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from strings(v, f"{path}[{i}]")
    elif isinstance(value, str):
        yield path, value


def amounts(value: object) -> Iterator[tuple[object, object]]:
    """(amount, currency) of every amount key of a JSON value, at any depth; `totals` are keyed by currency
    (assert_integer_totals)."""
    if isinstance(value, dict):
        for amount_key, currency_key in AMOUNT_KEYS.items():
            if amount_key in value:
                yield value[amount_key], value.get(currency_key, "(no currency key)")
        for k, v in value.items():
            if k != "totals":
                yield from amounts(v)
    elif isinstance(value, list):
        for v in value:
            yield from amounts(v)


def assert_exact_money(document: object) -> None:
    """Amounts are integers (or null) beside a currency code, and no string but prose shows money."""
    shown = [(p, s) for p, s in strings(document) if DISPLAY_MONEY.search(s)]
    assert not shown, f"display strings of money in machine output: {shown}"
    for amount, currency in amounts(document):
        if amount is None:
            continue
        assert isinstance(amount, int) and not isinstance(amount, bool), (amount, currency)
        assert isinstance(currency, str) and CODE.match(currency), (amount, currency)


def assert_integer_totals(totals: dict) -> None:
    assert totals, "no totals"
    for code, t in totals.items():
        assert CODE.match(code), code
        for name, value in t.items():
            if name == "by_category":
                for category in value.values():
                    assert all(type(v) is int for v in category.values()), (code, category)
            else:
                assert type(value) is int, (code, name, value)


@pytest.fixture
def money_items(shop) -> dict[str, object]:
    """Items with money at stake in a zero-decimal and a two-decimal currency, and an amount mismatch."""
    yen = shop.order(c.PAID_WITHOUT_CHARGE, status="accepted", amount=18542, currency="JPY")
    dollars = shop.order(c.PAID_WITHOUT_CHARGE, status="accepted", amount=250_000)  # 2,500.00 USD
    differs = shop.order(c.AMOUNT_MISMATCH, status="accepted", amount=5000)
    shop.charge(differs, amount=4500)
    paid = shop.order(c.REPAIRED)  # a charge in the window: totals to add up
    shop.charge(paid, amount=1999)
    return {"yen": str(yen), "dollars": str(dollars), "differs": str(differs)}


def test_items_json_is_json_lines_with_integer_amounts_and_currency(cli, money_items):
    assert cli("--since", "24h").exit_code == 1
    listed = cli("items", "--json", "--state", "all")
    assert listed.exit_code == 0, listed.output
    rows = {r["order"]: r for r in json_lines(listed.output)}
    # 18,542 JPY is 18542 minor units (no decimals); 2,500.00 USD is 250000; a mismatch's stake its difference.
    assert (rows[money_items["yen"]]["amount"], rows[money_items["yen"]]["currency"]) == (18542, "jpy")
    assert (rows[money_items["dollars"]]["amount"], rows[money_items["dollars"]]["currency"]) == (250_000, "usd")
    assert (rows[money_items["differs"]]["amount"], rows[money_items["differs"]]["currency"]) == (500, "usd")
    for row in rows.values():
        assert_exact_money(row)


def test_items_csv_has_numbers_and_the_table_keeps_the_display_strings(cli, money_items):
    assert cli("--since", "24h").exit_code == 1
    table = cli("items", "--csv")
    assert table.exit_code == 0, table.output
    rows = {r["order"]: r for r in csv.DictReader(io.StringIO(table.output))}
    assert (rows[money_items["yen"]]["amount"], rows[money_items["yen"]]["currency"]) == ("18542", "jpy")
    assert (rows[money_items["dollars"]]["amount"], rows[money_items["dollars"]]["currency"]) == ("2500.00", "usd")
    human = cli("items")
    assert "18,542 JPY" in human.output and "2,500.00 USD" in human.output
    shown = cli("items", "show", f"{c.PAID_WITHOUT_CHARGE}:{money_items['yen']}")
    assert "amount      18,542 JPY" in shown.output, shown.output


def test_summary_json_amounts_are_integers_with_their_currency(cli, shop, money_items):
    broken = shop.order(c.DATA_PROBLEM, status="accepted", amount="a lot")  # no amount to carry
    result = cli()
    assert result.exit_code == 1, result.output
    summary = result.summary
    found = {d["order_id"]: d for d in summary["discrepancies"]}
    differs = found[money_items["differs"]]
    assert (differs["order_amount"], differs["order_currency"]) == (5000, "usd")
    assert (differs["charge_amount"], differs["charge_currency"]) == (4500, "usd")
    yen = found[money_items["yen"]]
    assert (yen["order_amount"], yen["order_currency"], yen["charge_amount"]) == (18542, "jpy", None)
    assert found[str(broken)]["order_amount"] is None
    assert_exact_money(summary)
    assert_integer_totals(summary["totals"])


def test_runs_json_is_json_lines_with_integer_totals_and_no_email_text(cli, money_items):
    """An unsent email keeps its text (to resend it) in the run's record; `runs --json` leaves it out."""
    cli.configure(
        email={
            "send": "always",
            "host": "127.0.0.1",
            "port": free_port(),  # nothing listens: the email fails and is kept to resend
            "security": "none",
            "from_addr": "reconcile@shop.example",
            "to": ["finance@shop.example"],
            "timeout": "5s",
        }
    )
    down = cli()
    assert down.exit_code == 5, down.output
    listed = cli("runs", "--json")
    assert listed.exit_code == 0, listed.output
    [run] = json_lines(listed.output)
    assert run["email"]["status"] == "failed" and "text" not in run["email"]
    assert_exact_money(run)
    assert_integer_totals(run["totals"])


def test_as_json_leaves_out_an_unsent_emails_text():
    recorded = {
        "_id": "20261118T090700Z-abcdef",
        "status": "completed",
        "started": 1_763_456_820,
        "totals": {"jpy": {"gross": 18542, "net": 18000, "by_category": {"charge": {"amount": 18542}}}},
        "email": {
            "status": "failed",
            "attempts": 1,
            "subject": "[reconcile] 18,542 JPY at stake",
            "text": "18,542 JPY at stake in 1 item; all new today.",
            "at": 1_763_456_830,
        },
    }
    out = history.as_json(recorded)  # type: ignore[arg-type]
    assert out["email"] == {
        "status": "failed",
        "attempts": 1,
        "subject": "[reconcile] 18,542 JPY at stake",
        "at": "2025-11-18T09:07:10Z",
    }
    assert_exact_money(json.loads(json.dumps(out)))


def _json_options() -> list[tuple[str, click.Option]]:
    found = []
    for name, command in reconcile_cli.main.commands.items():
        commands = {name: command}
        if isinstance(command, click.Group):
            commands |= {f"{name} {sub}": sub_command for sub, sub_command in command.commands.items()}
        for label, each in commands.items():
            found += [(label, p) for p in each.params if isinstance(p, click.Option) and "--json" in p.opts]
    return found


@pytest.mark.parametrize("name,option", _json_options(), ids=[n for n, _ in _json_options()])
def test_every_json_option_says_json_lines_and_integer_amounts(name, option):
    assert "JSON Lines" in (option.help or "") and "one per line" in (option.help or ""), (name, option.help)
    assert "integer minor units" in (option.help or ""), (name, option.help)


def test_json_options_are_the_listed_ones():
    assert sorted(n for n, _ in _json_options()) == ["items", "payouts", "runs"]


@pytest.mark.parametrize(
    "value,minor",
    [(18542, 18542), (-1, -1), (250000.0, 250000), (19.99, None), ("1999", None), (None, None), (True, None)],
)
def test_minor_units_only_carries_exact_integers(value, minor):
    assert minor_units(value) == minor


@pytest.mark.parametrize("value,code", [("JPY", "jpy"), (" usd ", "usd"), ("", None), (None, None)])
def test_currency_code_is_lower_case(value, code):
    assert currency_code(value) == code
