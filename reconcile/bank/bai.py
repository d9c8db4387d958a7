"""BAI2 cash management files, read with bai2. One Statement per account (03 record) per group (02 record):
the group's as-of date is every line's booking date, amounts are minor units already (implied decimals)."""

from __future__ import annotations

import re
from typing import Any

from bai2.constants import TypeCodeTransaction
from bai2.exceptions import IntegrityException, NotSupportedYetException, ParsingException
from bai2.helpers import IteratorHelper
from bai2.parsers import Bai2FileParser

from reconcile.bank.common import currency_of, detail, problem
from reconcile.decide.bank import Statement, StatementLine, last4, mask_accounts

_RECORD = re.compile(r"(01|02|03|16|49|88|98|99),")
# As-of-date modifiers of interim data (1: previous day, 3: same day): the day is not complete.
_INTERIM = {"1", "3"}


def looks_like_bai2(text: str) -> bool:
    first = next((line for line in text.splitlines() if line.strip()), "")
    return first.lstrip().startswith("01,")


class _CountingHelper(IteratorHelper):  # type: ignore[misc]
    """The library's record iterator, counting records so an error can name its line."""

    def __init__(self, lines: Any) -> None:
        self.index = -1
        super().__init__(lines)

    def advance(self) -> None:
        self.index += 1
        super().advance()


def read_bai2(file: str, text: str) -> list[Statement]:
    numbered = [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    record_lines: list[int] = []  # the line each record (with its 88 continuations) starts on
    for n, line in numbered:
        if not _RECORD.match(line):
            raise problem(file, n, f"not a BAI2 record (a record starts with its code, e.g. 16,): {line[:2]!r}")
        if not line.startswith("88,"):
            record_lines.append(n)
    detail_lines = [n for n, line in numbered if line.startswith("16,")]
    helper = _CountingHelper(line for _, line in numbered)

    def at(index: int) -> int | None:
        return record_lines[index] if 0 <= index < len(record_lines) else None

    try:
        parsed = Bai2FileParser(helper, check_integrity=True).parse()
    except IntegrityException as exc:  # a trailer's count or control total: the trailer just read
        raise problem(file, at(helper.index - 1), f"BAI2 totals do not add up ({detail(exc)})") from None
    except (ParsingException, NotSupportedYetException, ValueError, IndexError, KeyError, StopIteration) as exc:
        raise problem(
            file, at(helper.index), f"BAI2 record not readable ({detail(exc) or type(exc).__name__})"
        ) from None
    statements: list[Statement] = []
    details = iter(detail_lines)
    for group in parsed.children:
        as_of = group.header.as_of_date
        modifier = getattr(group.header.as_of_date_modifier, "value", None)
        for account in group.children:
            identifier = account.header
            try:
                currency = currency_of(identifier.currency or group.header.currency or "USD")
            except ValueError as exc:
                raise problem(file, None, f"03 record: {exc}") from None
            lines: list[StatementLine] = []
            for transaction in account.children:
                number = next(details, 0)
                kind = transaction.type_code.transaction
                if kind not in (TypeCodeTransaction.credit, TypeCodeTransaction.debit):
                    continue  # not money in or out (an information record)
                if transaction.amount is None or transaction.amount < 0:
                    raise problem(file, number, "16 record without an unsigned amount")
                sign = 1 if kind is TypeCodeTransaction.credit else -1
                lines.append(
                    StatementLine(
                        as_of,
                        sign * transaction.amount,
                        currency,
                        mask_accounts(" ".join(str(transaction.text or "").split())),
                        mask_accounts(transaction.bank_reference or transaction.customer_reference or ""),
                        number,
                    )
                )
            # A final report covers its as-of date; an interim one proves nothing about the rest of that day.
            start, end = (None, None) if modifier in _INTERIM else (as_of, as_of)
            statements.append(
                Statement(
                    file,
                    "bai2",
                    last4(identifier.customer_account_number),
                    start,
                    end,
                    currency,
                    tuple(lines),
                )
            )
    return statements
