"""ISO 20022 camt.053 (bank-to-customer statement) XML, read with the standard library's parser behind
defusedxml: no DTD, no entity expansion, no network. One Statement per <Stmt>; booked entries only."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from reconcile.bank.common import covered, currency_of, end_day, minor_units, problem
from reconcile.decide.bank import Statement, StatementLine, last4, mask_accounts

# ActiveOrHistoricCurrencyAndAmount: non-negative, up to 18 digits of which up to 5 after the point.
_AMOUNT = re.compile(r"\d{1,18}(?:\.\d{1,5})?")
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:T([\d:]+))?")


class _LineTreeBuilder(ET.TreeBuilder):
    """A tree builder that notes each element's line (ElementTree keeps none)."""

    def __init__(self) -> None:
        super().__init__()
        self.parser: Any = None
        self.lines: dict[int, int] = {}

    def start(self, tag: Any, attrs: Any) -> ET.Element:
        element = super().start(tag, attrs)
        self.lines[id(element)] = self.parser.parser.CurrentLineNumber
        return element


def looks_like_camt053(text: str) -> bool:
    return text.lstrip().startswith("<") and "camt.053" in text[:4000]


def read_camt053(file: str, data: bytes) -> list[Statement]:
    builder = _LineTreeBuilder()
    parser = DefusedXMLParser(target=builder, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    builder.parser = parser
    try:
        parser.feed(data)
        root = parser.close()
    except ET.ParseError as exc:
        raise problem(file, exc.position[0], "not well-formed XML") from None
    except DefusedXmlException:
        line = parser.parser.CurrentLineNumber
        raise problem(file, line, "XML with a DTD or entities is refused (a statement needs neither)") from None
    lines = builder.lines
    namespace = root.tag[1:].split("}")[0] if root.tag.startswith("{") else ""
    if "camt.053" not in namespace or not root.tag.endswith("}Document"):
        raise problem(file, lines.get(id(root)), "XML that is not a camt.053 statement (a <Document> of camt.053)")
    ns = {"c": namespace}
    found = root.findall("c:BkToCstmrStmt/c:Stmt", ns)
    if not found:
        raise problem(file, lines.get(id(root)), "camt.053 without a statement (<Stmt>)")
    return [_statement(file, stmt, ns, lines) for stmt in found]


def _text(element: ET.Element, path: str, ns: dict[str, str]) -> str | None:
    found = element.find(path, ns)
    return found.text.strip() if found is not None and found.text and found.text.strip() else None


def _day(text: str | None) -> tuple[date, str]:
    match = _DATE.fullmatch((text or "").strip()[:19]) or _DATE.match((text or "").strip())
    if not match:
        raise ValueError(f"{text!r} is not an ISO date")
    return date(int(match[1]), int(match[2]), int(match[3])), match[4] or ""


def _date_of(element: ET.Element | None, ns: dict[str, str]) -> tuple[date, str] | None:
    """A DateAndDateTimeChoice (<Dt> or <DtTm>)."""
    if element is None:
        return None
    text = _text(element, "c:Dt", ns) or _text(element, "c:DtTm", ns)
    return _day(text) if text else None


def _statement(file: str, stmt: ET.Element, ns: dict[str, str], lines_of: dict[int, int]) -> Statement:
    where = lines_of.get(id(stmt))
    account = last4(_text(stmt, "c:Acct/c:Id/c:IBAN", ns) or _text(stmt, "c:Acct/c:Id/c:Othr/c:Id", ns))
    try:
        currency = currency_of(_text(stmt, "c:Acct/c:Ccy", ns) or _first_currency(stmt, ns))
        start, end = _span(stmt, ns)
    except ValueError as exc:
        raise problem(file, where, str(exc)) from None
    entries: list[StatementLine] = []
    for entry in stmt.findall("c:Ntry", ns):
        number = lines_of.get(id(entry), 0)
        try:
            line = _line(entry, ns, number)
        except ValueError as exc:
            raise problem(file, number, f"<Ntry>: {exc}") from None
        if line is not None:
            entries.append(line)
    start, end = covered(start, end, [x.booked for x in entries])
    return Statement(file, "camt.053", account, start, end, currency, tuple(entries))


def _first_currency(stmt: ET.Element, ns: dict[str, str]) -> str | None:
    amount = stmt.find("c:Bal/c:Amt", ns)
    return amount.get("Ccy") if amount is not None else None


def _span(stmt: ET.Element, ns: dict[str, str]) -> tuple[date | None, date | None]:
    """The statement's dates: <FrToDt> when given, else its opening and closing booked balances' dates."""
    frm, to = _text(stmt, "c:FrToDt/c:FrDtTm", ns), _text(stmt, "c:FrToDt/c:ToDtTm", ns)
    if frm and to:
        start, start_time = _day(frm)
        if start_time.replace(":", "").strip("0"):
            start += timedelta(days=1)
        last, last_time = _day(to)
        return start, end_day(last, last_time)
    balances: dict[str, date] = {}
    for balance in stmt.findall("c:Bal", ns):
        code = _text(balance, "c:Tp/c:CdOrPrtry/c:Cd", ns)
        when = _date_of(balance.find("c:Dt", ns), ns)
        if code and when:
            balances[code] = when[0]
    opening, closing = balances.get("OPBD"), balances.get("CLBD")
    if opening and closing and opening < closing:
        opening += timedelta(days=1)  # the opening balance is the day before's close
    return opening or closing, closing


def _line(entry: ET.Element, ns: dict[str, str], number: int) -> StatementLine | None:
    status = _text(entry, "c:Sts", ns) or _text(entry, "c:Sts/c:Cd", ns)
    if status != "BOOK":
        if status in ("PDNG", "INFO", "FUTR"):
            return None  # not booked (pending, information only): not on the account yet
        raise ValueError(f"status {status!r} is not BOOK, PDNG or INFO")
    amount_element = entry.find("c:Amt", ns)
    text = (amount_element.text or "").strip() if amount_element is not None else ""
    if amount_element is None or not _AMOUNT.fullmatch(text):
        raise ValueError(f"<Amt> {text!r} is not an amount")
    currency = currency_of(amount_element.get("Ccy"))
    sign = {"CRDT": 1, "DBIT": -1}.get(_text(entry, "c:CdtDbtInd", ns) or "")
    if sign is None:
        raise ValueError("<CdtDbtInd> is neither CRDT nor DBIT")
    booked = _date_of(entry.find("c:BookgDt", ns), ns) or _date_of(entry.find("c:ValDt", ns), ns)
    if booked is None:
        raise ValueError("no <BookgDt>")
    texts = [_text(entry, "c:AddtlNtryInf", ns)]
    for tx in entry.findall("c:NtryDtls/c:TxDtls", ns):
        texts += [u.text for u in tx.findall("c:RmtInf/c:Ustrd", ns)] + [_text(tx, "c:AddtlTxInf", ns)]
    end_to_end = _text(entry, "c:NtryDtls/c:TxDtls/c:Refs/c:EndToEndId", ns)
    if end_to_end == "NOTPROVIDED":
        end_to_end = None
    reference = end_to_end or _text(entry, "c:AcctSvcrRef", ns) or _text(entry, "c:NtryRef", ns) or ""
    return StatementLine(
        booked[0],
        sign * minor_units(Decimal(text), currency),
        currency,
        mask_accounts(" ".join(" ".join(t.split()) for t in texts if t)),
        mask_accounts(reference),
        number,
    )
