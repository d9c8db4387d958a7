"""OFX statements (1.x SGML and 2.x XML), read with ofxtools: its regex reader expands no entity and fetches
nothing. One Statement per bank statement (<STMTRS>) in the file."""

from __future__ import annotations

import io
import logging
import re
import warnings
import xml.etree.ElementTree as ET
from datetime import date
from typing import Any

from ofxtools.header import OFXHeaderError
from ofxtools.models.base import Aggregate, UnknownTagWarning
from ofxtools.Parser import OFXTree
from ofxtools.Parser import ParseError as OFXParseError

from reconcile.bank.common import covered, currency_of, detail, end_day, line_at, minor_units, problem
from reconcile.decide.bank import Statement, StatementLine, last4, mask_accounts

# ofxtools logs the statement's text at debug level: account numbers must not reach the job's log.
logging.getLogger("ofxtools").setLevel(logging.WARNING)
_AMOUNT = re.compile(r"[+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)")
_DAY = re.compile(r"(\d{4})(\d{2})(\d{2})(\d*)")


def _day(text: str | None) -> tuple[date, str]:
    """An OFX date-time's own calendar day (as the bank wrote it, before any time zone) and its time digits."""
    match = _DAY.match((text or "").strip())
    if not match:
        raise ValueError(f"{text!r} is not an OFX date")
    return date(int(match[1]), int(match[2]), int(match[3])), match[4]


def _text(element: ET.Element, path: str) -> str | None:
    found = element.find(path)
    return found.text.strip() if found is not None and found.text else None


def read_ofx(file: str, data: bytes, text: str) -> list[Statement]:
    tree = OFXTree()
    try:
        tree.parse(io.BytesIO(data))
    except OFXHeaderError:
        raise problem(file, 1, "not a valid OFX header") from None
    except OFXParseError as exc:
        at = re.search(r"position=\[(\d+):", str(exc))
        body = text.find("<OFX>")
        line = line_at(text, body + int(at[1])) if at and body >= 0 else None
        raise problem(file, line, "not well-formed OFX (a stray, unclosed or mismatched tag)") from None
    except (ValueError, KeyError, IndexError) as exc:
        raise problem(file, None, f"not readable as OFX ({detail(exc)})") from None
    root = tree.getroot()
    assert root is not None  # parse() set it
    banks = list(root.iter("STMTRS"))
    if not banks:
        raise problem(file, None, "OFX without a bank statement (<STMTRS>)")
    # ElementTree keeps no line numbers: the n-th element of a tag is the n-th such tag in the text.
    lines_of: dict[int, int] = {}
    for tag in ("STMTRS", "STMTTRN"):
        starts = [line_at(text, m.start()) for m in re.finditer(rf"<{tag}>", text, re.IGNORECASE)]
        lines_of.update({id(e): n for e, n in zip(root.iter(tag), starts, strict=False)})
    return [_statement(file, rs, lines_of) for rs in banks]


def _statement(file: str, rs: ET.Element, lines_of: dict[int, int]) -> Statement:
    line = lines_of.get(id(rs))
    try:
        currency = currency_of(_text(rs, "CURDEF"))
    except ValueError as exc:
        raise problem(file, line, f"<CURDEF>: {exc}") from None
    account = last4(_text(rs, "BANKACCTFROM/ACCTID"))
    start: date | None = None
    end: date | None = None
    tranlist = rs.find("BANKTRANLIST")
    lines: list[StatementLine] = []
    if tranlist is not None:
        try:
            start, start_time = _day(_text(tranlist, "DTSTART"))
            if start_time.strip("0"):
                start = date.fromordinal(start.toordinal() + 1)  # a start after midnight leaves that day partial
            last, last_time = _day(_text(tranlist, "DTEND"))
            end = end_day(last, last_time)
        except ValueError as exc:
            raise problem(file, line, f"<BANKTRANLIST>: {exc}") from None
        for element in tranlist.iter("STMTTRN"):
            number = lines_of.get(id(element))
            try:
                lines.append(_line(element, currency, number or 0))
            except ValueError as exc:
                raise problem(file, number, str(exc)) from None
            except Exception as exc:  # ofxtools raises TypeError, KeyError... for a bad element
                raise problem(file, number, f"a transaction OFX cannot read ({detail(exc)})") from None
    start, end = covered(start, end, [x.booked for x in lines])
    return Statement(file, "ofx", account, start, end, currency, tuple(lines))


def _line(element: ET.Element, currency: str, number: int) -> StatementLine:
    amount = _text(element, "TRNAMT") or ""
    if not _AMOUNT.fullmatch(amount):
        raise ValueError(f"<TRNAMT> {amount!r} is not an amount")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UnknownTagWarning)
        trn: Any = Aggregate.from_etree(element)
    for warning in caught:
        tag = re.search(r"unknown tag (\S+?);", str(warning.message))
        if tag and "." not in tag[1]:  # a tag with a dot is a bank's own extension (OFX 2.2 1.4.2): skipped
            raise ValueError(f"<{tag[1]}> inside <STMTTRN> (an unclosed tag?)")
    booked, _ = _day(_text(element, "DTPOSTED"))
    if trn.currency is not None:  # <CURRENCY>: the amounts are in that currency, not CURDEF (OFX 2.2 5.2)
        currency = currency_of(trn.currency.cursym)
    name = trn.payee.name if trn.payee is not None else trn.name
    description = " ".join(part for part in (name, trn.extdname, trn.memo) if part)
    return StatementLine(
        booked,
        minor_units(trn.trnamt, currency),
        currency,
        mask_accounts(description),
        mask_accounts(trn.refnum or trn.checknum or trn.fitid or ""),
        number,
    )
