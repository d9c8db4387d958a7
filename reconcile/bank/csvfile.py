"""CSV statements, read with the columns [bank] names (a bank's own export: no standard fixes them)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import date, datetime

from reconcile.bank.common import covered, currency_of, parse_amount, problem
from reconcile.config import BankConfig
from reconcile.decide.bank import Statement, StatementLine, mask_accounts

# The header is the first row naming the configured date and amount columns; rows before it (an account's
# name and number, the period, a bank's title) are skipped unread. Looked for within this many rows.
HEADER_WITHIN = 30


def _amount_columns(bank: BankConfig) -> list[str]:
    return [bank.credit_column, bank.debit_column] if bank.credit_column and bank.debit_column else [bank.amount_column]


def _key(name: str) -> str:
    return name.strip().casefold()


def _rows(text: str, delimiter: str) -> list[tuple[int, list[str]]]:
    """Rows with the line each starts on (a quoted cell may hold a line break)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if delimiter == "tab" else delimiter, strict=True)
    rows: list[tuple[int, list[str]]] = []
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return rows
        except csv.Error as exc:
            raise ValueError(f"line {reader.line_num}: {exc}") from None
        rows.append((start, row))
        start = reader.line_num + 1


def find_header(text: str, bank: BankConfig) -> bool:
    """Whether the text reads as a CSV statement with the configured columns (format detection)."""
    try:
        rows = _rows(text, bank.delimiter)[:HEADER_WITHIN]
    except ValueError:
        return False
    wanted = {_key(c) for c in [bank.date_column, *_amount_columns(bank)]}
    return any(wanted <= {_key(cell) for cell in row} for _, row in rows)


def read_csv(file: str, text: str, bank: BankConfig) -> Statement:
    try:
        rows = _rows(text, bank.delimiter)
    except ValueError as exc:
        raise problem(file, None, f"not a readable CSV file ({exc})") from None
    wanted = [bank.date_column, *_amount_columns(bank)]
    header_at = next(
        (i for i, (_, row) in enumerate(rows[:HEADER_WITHIN]) if {_key(c) for c in wanted} <= {_key(c) for c in row}),
        None,
    )
    if header_at is None:
        raise problem(
            file, None, f"no header row with the columns {', '.join(map(repr, wanted))} ([bank] in the config)"
        )
    header_line, header = rows[header_at]
    index = {_key(name): i for i, name in reversed(list(enumerate(header)))}
    optional = [bank.currency_column, bank.reference_column]
    needed = [*wanted, bank.description_column, *(c for c in optional if c)]
    missing = [c for c in needed if _key(c) not in index]
    if missing:
        raise problem(file, header_line, f"the header has no column {', '.join(map(repr, missing))}")
    if not bank.currency_column and not bank.currency:
        raise problem(file, None, "set bank.currency (or bank.currency_column) to read a CSV statement's amounts")

    def cell(row: list[str], column: str | None) -> str:
        if column is None:
            return ""
        at = index[_key(column)]
        return row[at].strip() if at < len(row) else ""

    lines: list[StatementLine] = []
    for number, row in rows[header_at + 1 :]:
        if not any(c.strip() for c in row):
            continue
        try:
            lines.append(_line(number, row, bank, cell))
        except ValueError as exc:
            raise problem(file, number, str(exc)) from None
    start, end = covered(None, None, [line.booked for line in lines])
    currencies = {line.currency for line in lines}
    only = next(iter(currencies)) if len(currencies) == 1 else None
    return Statement(file, "csv", None, start, end, only, tuple(lines))


def _line(number: int, row: list[str], bank: BankConfig, get: Callable[[list[str], str | None], str]) -> StatementLine:
    currency = currency_of(get(row, bank.currency_column) or bank.currency)
    day = get(row, bank.date_column)
    try:
        booked: date = datetime.strptime(day, bank.date_format).date()
    except ValueError:
        raise ValueError(f"{day!r} is not a date in bank.date_format {bank.date_format!r}") from None
    if bank.credit_column and bank.debit_column:
        credit, debit = get(row, bank.credit_column), get(row, bank.debit_column)
        money_in = abs(parse_amount(credit, currency, bank.decimal_separator)) if credit else 0
        money_out = abs(parse_amount(debit, currency, bank.decimal_separator)) if debit else 0
        if not credit and not debit:
            raise ValueError(f"no amount in {bank.credit_column!r} or {bank.debit_column!r}")
        if money_in and money_out:
            raise ValueError(f"an amount in both {bank.credit_column!r} and {bank.debit_column!r}")
        amount = money_in - money_out
    else:
        text = get(row, bank.amount_column)
        if not text:
            raise ValueError(f"no amount in {bank.amount_column!r}")
        amount = parse_amount(text, currency, bank.decimal_separator)
    return StatementLine(
        booked,
        amount,
        currency,
        mask_accounts(get(row, bank.description_column)),
        mask_accounts(get(row, bank.reference_column)),
        number,
    )
