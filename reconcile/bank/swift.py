"""SWIFT MT940 statements, read with mt-940. One Statement per statement block (each starts with :20:)."""

from __future__ import annotations

import logging
import re
from datetime import date, timedelta
from decimal import InvalidOperation
from typing import Any

from mt940.models import Transactions
from mt940.options import Options

from reconcile.bank.common import covered, currency_of, detail, line_at, minor_units, problem
from reconcile.decide.bank import Statement, StatementLine, last4, mask_accounts

# mt-940's fixes that a statement needs read right: a reversal of a credit (RC) is money out, a lower-case
# mark counts, the :61: reference survives a structured :86:, details are not cut, the ?31 IBAN is its own field.
OPTIONS = Options(
    reversal_sign=True,
    case_insensitive_marks=True,
    merge_keeps_values=True,
    unbounded_details=True,
    applicant_iban=True,
    strip_bom=True,
)
# mt-940 logs a field it cannot match with the field's text: account numbers must not reach the job's log.
logging.getLogger("mt940").setLevel(logging.CRITICAL)
_BLOCK = re.compile(r"(?m)^(?=:20:)")
_TAG = re.compile(r"(?m)^:(\d{2}[A-Z]?|NS):")


def looks_like_mt940(text: str) -> bool:
    return bool(re.search(r"(?m)^:20:", text) and re.search(r"(?m)^:(25|28C?|60[FM]|61):", text))


def read_mt940(file: str, text: str) -> list[Statement]:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    statements = []
    offset = 0
    for block in _BLOCK.split(text):
        first_line = line_at(text, offset)
        offset += len(block)
        if block.lstrip().startswith(":20:"):
            statements.append(_statement(file, block, first_line))
    if not statements:
        raise problem(file, None, "MT940 without a statement (no :20: tag)")
    return statements


def _statement(file: str, block: str, first_line: int) -> Statement:
    def line_of(needle: str) -> int:
        at = block.find(needle)
        return first_line + (block.count("\n", 0, at) if at >= 0 else 0)

    parsed = Transactions(options=OPTIONS)
    try:
        parsed.parse(block)
    except RuntimeError as exc:  # a tag that does not fit its pattern: (message, tag, value)
        value = exc.args[2] if len(exc.args) > 2 else ""
        tag = getattr(exc.args[1], "id", "?") if len(exc.args) > 1 else "?"
        first = str(value).split("\n")[0]
        raise problem(
            file, line_of(f":{tag}") if not first else line_of(first), f":{tag}: field not as MT940 writes it"
        ) from None
    except (ValueError, InvalidOperation, KeyError, TypeError) as exc:
        raise problem(file, first_line, f"MT940 statement not readable ({detail(exc)})") from None
    data: dict[str, Any] = parsed.data
    opening = data.get("final_opening_balance") or data.get("intermediate_opening_balance")
    closing = data.get("final_closing_balance") or data.get("intermediate_closing_balance")
    if opening is None:
        raise problem(file, first_line, "statement without an opening balance (:60F: or :60M:), so without a currency")
    try:
        currency = currency_of(opening.amount.currency)
    except ValueError as exc:
        raise problem(file, line_of(":60"), f":60F: {exc}") from None
    # The opening balance is dated at the end of the day before the statement's first day (when it differs
    # from the closing date); the closing balance, at the end of its last.
    start: date = opening.date
    end: date | None = closing.date if closing is not None else None
    if end is not None and start < end:
        start += timedelta(days=1)
    entry_lines = [first_line + block.count("\n", 0, m.start()) for m in _TAG.finditer(block) if m[1] == "61"]
    lines: list[StatementLine] = []
    for i, transaction in enumerate(parsed.transactions):
        number = entry_lines[i] if i < len(entry_lines) else first_line
        t = transaction.data
        try:
            amount = t["amount"]
            if currency_of(amount.currency) != currency:
                raise ValueError(f"currency {amount.currency} is not the statement's {currency.upper()}")
            booked = t.get("entry_date") or t["date"]
            reference = t.get("customer_reference") or ""
            if reference.upper() == "NONREF":
                reference = ""
            lines.append(
                StatementLine(
                    date(booked.year, booked.month, booked.day),
                    minor_units(amount.amount, currency),
                    currency,
                    mask_accounts(" ".join(str(t.get("transaction_details") or "").split())),
                    mask_accounts(reference or t.get("bank_reference") or ""),
                    number,
                )
            )
        except (KeyError, ValueError, InvalidOperation) as exc:
            raise problem(file, number, f":61: {detail(exc)}") from None
    start_day, end_day = covered(start, end, [x.booked for x in lines])
    account_id = str(data.get("account_identification") or "").split("/")[-1].strip()
    if len(account_id) > 3 and account_id.upper().endswith(currency.upper()) and account_id[-4].isdigit():
        account_id = account_id[:-3]  # some banks write the currency after the account: NL91ABNA0417164300EUR
    account = last4(account_id)
    return Statement(file, "mt940", account, start_day, end_day, currency, tuple(lines))
