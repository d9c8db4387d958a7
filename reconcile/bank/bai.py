"""BAI2 cash management files, read with bai2. One Statement per account (03 record) per group (02 record):
the group's as-of date is every line's booking date, amounts are minor units already (implied decimals)."""

from __future__ import annotations

import re
from typing import Any

from bai2.constants import TypeCode, TypeCodeLevel, TypeCodes, TypeCodeTransaction
from bai2.exceptions import IntegrityException, NotSupportedYetException, ParsingException
from bai2.helpers import IteratorHelper
from bai2.parsers import Bai2FileParser

from reconcile.bank.common import currency_of, detail, problem
from reconcile.decide.bank import Statement, StatementLine, last4, mask_accounts

_RECORD = re.compile(r"(01|02|03|16|49|88|98|99),")
# As-of-date modifiers of interim data (1: previous day, 3: same day): the day is not complete.
_INTERIM = {"1", "3"}


# What a type code is follows from its range (BAI's Cash Management Balance Reporting Specifications,
# version 2, "type codes"): 001-099 account status, 100-399 credits, 400-699 debits, 700-899 not used;
# a bank's own codes, 900-919 status, 920-959 credits, 960-999 debits. The library knows the published
# codes only, so a bank's own code (or a newer published one) is admitted by its range; 700-899 is refused.
_RANGES = (
    (1, 99, None),
    (100, 399, TypeCodeTransaction.credit),
    (400, 699, TypeCodeTransaction.debit),
    (900, 919, None),
    (920, 959, TypeCodeTransaction.credit),
    (960, 999, TypeCodeTransaction.debit),
)
_UNKNOWN_CODE = re.compile(r"Type code '(\d{3})' is not supported")


def _admit(code: str) -> bool:
    """Teach the library a type code it does not know, by BAI2's ranges; False: no range has it."""
    number = int(code)
    for low, high, transaction in _RANGES:
        if low <= number <= high:
            level = TypeCodeLevel.status if transaction is None else TypeCodeLevel.detail
            TypeCodes.setdefault(code, TypeCode(code, transaction, level, "bank-specific or newer code"))
            return True
    return False


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

    def at(index: int) -> int | None:
        return record_lines[index] if 0 <= index < len(record_lines) else None

    while True:  # once more for each type code the library learns by its range (at most 999)
        helper = _CountingHelper(line for _, line in numbered)
        try:
            parsed = Bai2FileParser(helper, check_integrity=True).parse()
            break
        except IntegrityException as exc:  # a trailer's count or control total: the trailer just read
            raise problem(file, at(helper.index - 1), f"BAI2 totals do not add up ({detail(exc)})") from None
        except NotSupportedYetException as exc:
            unknown = _UNKNOWN_CODE.search(str(exc))
            if unknown is not None and unknown.group(1) not in TypeCodes and _admit(unknown.group(1)):
                continue
            raise problem(
                file, at(helper.index), f"BAI2 record not readable ({detail(exc) or type(exc).__name__})"
            ) from None
        except (ParsingException, ValueError, IndexError, KeyError, StopIteration) as exc:
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
