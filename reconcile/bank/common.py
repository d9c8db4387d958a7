"""What the statement readers share: the error naming file and line, text, amounts and dates."""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation

from ofxtools.models.i18n import CURRENCY_CODES

from reconcile.decide.bank import mask_accounts
from reconcile.errors import StatementError
from reconcile.money import decimal_to_minor

# Library messages can quote the file's text: at most this much of one reaches a message, masked.
_DETAIL_CHARS = 80


def problem(file: str, line: int | None, what: str) -> StatementError:
    """The one line a user reads: the file, the line when there is one, what is wrong (never an account)."""
    where = f"bank statement {file}" + (f", line {line}" if line else "")
    return StatementError(f"{where}: {mask_accounts(what)}")


def detail(exc: BaseException) -> str:
    """A library's exception, cut short and masked, for the end of a message."""
    text = " ".join(str(exc).split())
    return mask_accounts(text[:_DETAIL_CHARS] + ("..." if len(text) > _DETAIL_CHARS else ""))


def decode(data: bytes) -> str:
    """Statement bytes as text: UTF-8 (with or without a byte-order mark), else Windows-1252, else Latin-1."""
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def line_at(text: str, offset: int) -> int:
    """The line (from 1) of a character offset."""
    return text.count("\n", 0, max(offset, 0)) + 1


def minor_units(value: Decimal, currency: str) -> int:
    """A Decimal in minor units of the currency; ValueError naming the problem (more decimals than it has)."""
    return decimal_to_minor(value, currency)


def _grouped(separator: str) -> str:
    group = "[ '\u00a0\u202f" + ("," if separator == "." else ".") + "]"
    return rf"\d{{1,3}}(?:{group}\d{{3}})+|\d+"


_AMOUNTS = {
    sep: re.compile(rf"(?P<sign>[+-])?(?P<whole>{_grouped(sep)})(?:{re.escape(sep)}(?P<frac>\d*))?(?P<trail>-)?")
    for sep in (".", ",")
}


def parse_amount(text: str, currency: str, decimal_separator: str) -> int:
    """'1.234,56' (separator ',') -> 123456 for EUR. Exact: Decimal, never a float; groups of three only;
    a sign in front or a minus behind, or parentheses for money out. ValueError for anything else."""
    raw = text.strip()
    negative = raw.startswith("(") and raw.endswith(")")
    if negative:
        raw = raw[1:-1].strip()
    match = _AMOUNTS[decimal_separator].fullmatch(raw)
    if not match or (match.group("sign") and match.group("trail")):
        raise ValueError(f"{text.strip()!r} is not an amount with {decimal_separator!r} as the decimal separator")
    whole = re.sub(r"\D", "", match.group("whole"))
    try:
        value = Decimal(f"{whole}.{match.group('frac') or '0'}")
    except InvalidOperation:
        raise ValueError(f"{text.strip()!r} is not an amount") from None
    if negative or match.group("sign") == "-" or match.group("trail"):
        value = -value
    return minor_units(value, currency)


def currency_of(text: str | None) -> str:
    """An ISO 4217 code in lower case; ValueError when the text is not one (ofxtools keeps the ISO list)."""
    code = (text or "").strip()
    if code.upper() not in _ISO4217:
        raise ValueError(f"{code!r} is not an ISO 4217 currency code")
    return code.lower()


_ISO4217 = frozenset(CURRENCY_CODES)


def end_day(day: date, time_text: str) -> date:
    """The last whole day a statement that ends at `day` + `time_text` covers: the day itself only when the
    statement runs to its end (23:59 or later); otherwise the day before (an end at midnight, as OFX's DTEND,
    is the next statement's start)."""
    digits = re.sub(r"\D", "", time_text)[:4]
    return day if digits >= "2359" else day - timedelta(days=1)


def covered(start: date | None, end: date | None, booked: list[date]) -> tuple[date | None, date | None]:
    """The dates a statement covers: its stated start and end, widened to its own lines; (None, None) when
    it states nothing and has no line (or its end falls before its start: a partial day)."""
    if booked:
        start = min([*booked, *([start] if start else [])])
        end = max([*booked, *([end] if end else [])])
    if start is None or end is None or end < start:
        return None, None
    return start, end
