"""The bank leg: statement records, and payouts matched to the deposits on them.

Pure: payouts and statements (as reconcile/bank/ reads them) in, matches and outcomes out; no I/O.
A payout matches one statement line of the same amount and currency booked from the day before its
arrival date to `match_days` business days after it (weekends are not business days; holidays are).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from pathlib import PurePath
from typing import Any, Protocol

from reconcile.config import BankConfig
from reconcile.decide.findings import Finding, ItemKind
from reconcile.money import currency_code

# Statement formats the readers know, as Statement.format holds them.
FORMATS = ("csv", "ofx", "mt940", "camt.053", "bai2")
# Payouts that may have reached the bank: a paid one must have; one in transit or pending may already have.
MATCHABLE_STATUSES = frozenset({"paid", "in_transit", "pending"})
DEFAULT_MATCH_DAYS = 3
DEFAULT_DESCRIPTION_PATTERN = "(?i)stripe"


class Payout(Protocol):
    """What matching needs of a payout (the payouts work's record, or any object with these attributes)."""

    @property
    def id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def amount(self) -> int: ...  # minor units
    @property
    def currency(self) -> str: ...
    @property
    def arrival_date(self) -> date: ...
    @property
    def trace_id(self) -> str | None: ...


@dataclass(frozen=True)
class StatementLine:
    """One booked entry of a statement: money in (amount > 0) or out (amount < 0)."""

    booked: date
    amount: int  # minor units of `currency`, signed: a credit is positive, a debit negative
    currency: str  # ISO 4217, lower case
    description: str  # account numbers and IBANs masked to their last four characters
    reference: str  # the bank's or the sender's reference ("" when the format or file has none)
    line: int  # where the entry starts in its file, from 1

    @property
    def is_credit(self) -> bool:
        return self.amount > 0


@dataclass(frozen=True)
class Statement:
    """One account's statement in one file: the dates it covers (both ends included) and its lines."""

    file: str  # the path as given
    format: str  # one of FORMATS
    account_last4: str | None  # the last four characters of the account number or IBAN, nothing more
    covers_from: date | None  # None: the file covers no date (a CSV without lines)
    covers_to: date | None
    currency: str | None  # the account's currency; None when its lines carry several (a CSV)
    lines: tuple[StatementLine, ...] = ()

    @property
    def currencies(self) -> frozenset[str]:
        """The currencies whose absence it can prove: its account's, or (a CSV of several) those on its lines."""
        return frozenset({self.currency} if self.currency else {line.currency for line in self.lines})

    def __post_init__(self) -> None:
        if self.account_last4 is not None and len(self.account_last4) > 4:
            raise ValueError("a statement keeps no more than the last four characters of its account")
        if self.format not in FORMATS:
            raise ValueError(f"unknown statement format {self.format!r}")


# --- account numbers out of every text a statement carries -------------------------------------------------

_IBAN_START = re.compile(r"\b[A-Z]{2}\d{2}(?=[ ]?[A-Z0-9])")
_IBAN_REST = re.compile(r"(?:[ ]?[A-Z0-9]){11,30}")
_ACCOUNT_WORD = re.compile(
    r"(?i)\b(?:iban|acct|account|a/c|acc|kto|konto|kontonr|konto-nr|rekening|compte)\b[.:#]?"
    r"(?:\s*(?:no|nr|number|num)\b[.:#]?)?\s*([A-Z]{0,4}[0-9](?:[0-9/-]|[ ](?=[0-9])){4,})"
)
_MT940_ACCOUNT = re.compile(r"(\?3[18])([^?\n]{5,})")  # :86: ?31 is the other party's account (?38 its IBAN)


def last4(identifier: str | None) -> str | None:
    """The last four characters of an account number or IBAN (spaces dropped); None when there is none."""
    compact = re.sub(r"[\s-]", "", identifier or "")
    return compact[-4:] or None


def _masked(number: str) -> str:
    return "****" + (last4(number) or "")


def _iban_valid(compact: str) -> bool:
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    digits = "".join(str(int(ch, 36)) for ch in moved)
    return int(digits) % 97 == 1


def mask_accounts(text: str) -> str:
    """Text with every IBAN (checked by its check digits) and every number named an account cut to its last
    four characters: statements carry the other party's account in their descriptions."""
    text = _MT940_ACCOUNT.sub(lambda m: m.group(1) + _masked(m.group(2)), text)
    out: list[str] = []
    pos = 0
    for start in _IBAN_START.finditer(text):
        if start.start() < pos:
            continue
        rest = _IBAN_REST.match(text, start.end())
        if not rest:
            continue
        chunk = start.group() + rest.group()
        # The longest prefix that is a valid IBAN, ending where a word ends (a following word may have joined).
        for end in range(len(chunk), 14, -1):
            if end < len(chunk) and chunk[end].isalnum() and chunk[end - 1] != " ":
                continue
            candidate = chunk[:end].rstrip()
            compact = candidate.replace(" ", "")
            if _iban_valid(compact):
                out.append(text[pos : start.start()] + _masked(compact))
                pos = start.start() + len(candidate)
                break
    text = "".join(out) + text[pos:]
    return _ACCOUNT_WORD.sub(lambda m: m.group(0).replace(m.group(1), _masked(m.group(1))), text)


# --- the matching window --------------------------------------------------------------------------------------


def add_business_days(start: date, days: int) -> date:
    """`days` business days after `start` (Monday to Friday; bank holidays are not known)."""
    day = start
    counted = 0
    while counted < days:
        day += timedelta(days=1)
        if day.weekday() < 5:
            counted += 1
    return day


def matching_window(arrival: date, match_days: int) -> tuple[date, date]:
    """The booking dates a payout's deposit may have, both included."""
    return arrival - timedelta(days=1), add_business_days(arrival, match_days)


# --- the decision ------------------------------------------------------------------------------------------


class BankOutcome(ItemKind):
    """The bank leg's items for a person."""

    # A paid payout past its matching window, with statements covering the window and no deposit on them.
    PAYOUT_NOT_IN_BANK = "payout_not_in_bank", True
    # A credit whose description matches bank.description_pattern that no payout explains.
    BANK_DEPOSIT_UNMATCHED = "bank_deposit_unmatched", True


class PayoutCheck(StrEnum):
    """Where one payout stands against the statements."""

    proven: bool  # the statements settle it: found, or shown to be missing

    def __new__(cls, code: str, proven: bool = False) -> PayoutCheck:
        member = str.__new__(cls, code)
        member._value_ = code
        member.proven = proven
        return member

    MATCHED = "matched", True  # its deposit is on a statement
    NOT_IN_BANK = "not_in_bank", True  # paid, window closed, covered, no deposit: a PAYOUT_NOT_IN_BANK item
    WINDOW_OPEN = "window_open"  # not provable yet: its matching window has not closed
    NOT_COVERED = "not_covered"  # not provable yet: no statement (of its currency) covers its whole window
    # Not paid (in transit, pending, failed, canceled) or of no amount, and no deposit seen: nothing to prove.
    NOT_EXPECTED = "not_expected"


@dataclass(frozen=True)
class BankRules:
    match_days: int = DEFAULT_MATCH_DAYS
    description_pattern: re.Pattern[str] = field(default_factory=lambda: re.compile(DEFAULT_DESCRIPTION_PATTERN))

    @classmethod
    def from_config(cls, bank: BankConfig) -> BankRules:
        return cls(bank.match_days, re.compile(bank.description_pattern))


@dataclass(frozen=True)
class Deposit:
    """A statement line the result keeps: it matched a payout, or its description matches the pattern."""

    booked: date
    amount: int  # minor units, signed as on the statement
    currency: str
    reference: str
    description: str  # masked (mask_accounts)
    file: str
    line: int
    payout_id: str | None  # the payout it matched; None: no payout explains it


@dataclass(frozen=True)
class PayoutMatch:
    payout_id: str
    check: PayoutCheck
    deposit: Deposit | None
    window_from: date
    window_to: date
    # The last day the statements of its currency cover without a gap from window_from (None: none covers
    # window_from), so the report can say "the statements end on ..., before the window closes".
    covered_to: date | None


@dataclass(frozen=True)
class BankFinding:
    """An item for a person, with its facts (words are made in report/)."""

    outcome: BankOutcome
    amount: int
    currency: str
    day: date  # the payout's arrival date, or the deposit's booking date
    payout_id: str | None = None
    window_from: date | None = None
    window_to: date | None = None
    files: tuple[str, ...] = ()  # the statements that covered the window (payout_not_in_bank)
    deposit: Deposit | None = None  # the deposit no payout explains (bank_deposit_unmatched)


@dataclass(frozen=True)
class BankResult:
    payouts: tuple[PayoutMatch, ...]  # one per payout, in the order given
    findings: tuple[BankFinding, ...]
    deposits: tuple[Deposit, ...]  # the only statement lines kept: matched, or matching the pattern


@dataclass(frozen=True)
class _Entry:
    statement: Statement
    line: StatementLine

    @property
    def key(self) -> tuple[str, int]:
        return self.statement.file, self.line.line


def _distinct_entries(statements: Sequence[Statement]) -> list[_Entry]:
    """Every line once: the same entry in two overlapping exports of one account (same account, day, amount,
    currency, reference, description) counts as many times as the file holding it most often has it."""
    seen: Counter[tuple[object, ...]] = Counter()
    entries = []
    for statement in statements:
        mine: Counter[tuple[object, ...]] = Counter()
        for line in statement.lines:
            same = (statement.account_last4, line.booked, line.amount, line.currency, line.reference, line.description)
            mine[same] += 1
            if mine[same] > seen[same]:
                seen[same] += 1
                entries.append(_Entry(statement, line))
    return entries


def _covered_to(statements: Iterable[Statement], currency: str, start: date) -> date | None:
    """The last day covered without a gap from `start` by the statements of `currency` (None: start is not)."""
    spans = sorted(
        (s.covers_from, s.covers_to)
        for s in statements
        if s.covers_from is not None and s.covers_to is not None and currency in s.currencies
    )
    reached: date | None = None
    for begin, end in spans:
        frontier = start if reached is None else reached + timedelta(days=1)
        if begin > frontier:
            break  # a gap: nothing after it joins on
        if end >= frontier:
            reached = end
    return reached


_SPACE = re.compile(r"\s+")
# A trace id shorter than this could be found by chance in any description: it breaks no tie.
MIN_TRACE_CHARS = 6


def _names_trace(line: StatementLine, trace_id: str | None) -> bool:
    """Whether the line's description or reference holds the payout's trace id (spaces and case ignored)."""
    trace = _SPACE.sub("", trace_id or "").lower()
    if len(trace) < MIN_TRACE_CHARS:
        return False
    return trace in _SPACE.sub("", line.description).lower() or trace in _SPACE.sub("", line.reference).lower()


def match_payouts(
    payouts: Sequence[Payout],
    statements: Sequence[Statement],
    rules: BankRules,
    today: date,
    payouts_cover: tuple[date, date] | None = None,
) -> BankResult:
    """Each payout's deposit, each deposit used once; the items for a person.

    `today` decides whose window has closed. `payouts_cover`: the booking dates for which `payouts` holds every
    payout (from, to, both included); a Stripe-looking deposit outside them is not an item, as its payout may
    simply not have been read. None: the payouts given are all there are.
    """
    entries = _distinct_entries(statements)
    by_money: dict[tuple[str, int], list[_Entry]] = defaultdict(list)
    for entry in entries:
        by_money[(entry.line.currency, entry.line.amount)].append(entry)
    pattern = rules.description_pattern

    windows = {p.id: matching_window(p.arrival_date, rules.match_days) for p in payouts}
    order = sorted(
        (p for p in payouts if p.status in MATCHABLE_STATUSES and p.amount),
        key=lambda p: (p.arrival_date, p.id),
    )
    candidates: dict[str, list[_Entry]] = {}
    for p in order:
        start, end = windows[p.id]
        found = [
            e for e in by_money.get((currency_code(p.currency) or "", p.amount), []) if start <= e.line.booked <= end
        ]
        # Preference among equals: the payout's trace id, then the pattern, then the nearest day, then file order.
        found.sort(
            key=lambda e: (
                not _names_trace(e.line, p.trace_id),
                not pattern.search(e.line.description),
                abs((e.line.booked - p.arrival_date).days),
                e.line.booked,
                e.key,
            )
        )
        candidates[p.id] = found

    owner: dict[tuple[str, int], str] = {}
    matched: dict[str, _Entry] = {}
    # First the deposits that name their payout's trace id: they are certain, and no augmenting path moves them.
    certain: set[tuple[str, int]] = set()
    for p in order:
        for e in candidates[p.id]:
            if _names_trace(e.line, p.trace_id) and e.key not in owner:
                owner[e.key] = p.id
                matched[p.id] = e
                certain.add(e.key)
                break

    # Then as many payouts as can be matched (augmenting paths), each trying its preferred deposits first.
    def augment(payout_id: str, tried: set[tuple[str, int]]) -> bool:
        for e in candidates[payout_id]:
            if e.key in tried or e.key in certain:
                continue
            tried.add(e.key)
            holder = owner.get(e.key)
            if holder is None or augment(holder, tried):
                owner[e.key] = payout_id
                matched[payout_id] = e
                return True
        return False

    for p in order:
        if p.id not in matched:
            augment(p.id, set())

    def deposit_of(entry: _Entry, payout_id: str | None) -> Deposit:
        line = entry.line
        return Deposit(
            line.booked,
            line.amount,
            line.currency,
            line.reference,
            line.description,
            entry.statement.file,
            line.line,
            payout_id,
        )

    results: list[PayoutMatch] = []
    findings: list[BankFinding] = []
    for p in payouts:
        start, end = windows[p.id]
        currency = currency_code(p.currency) or ""
        covered_to = _covered_to(statements, currency, start)
        hit = matched.get(p.id)
        if hit is not None:
            check = PayoutCheck.MATCHED
        elif p.status != "paid" or not p.amount:
            check = PayoutCheck.NOT_EXPECTED
        elif today <= end:
            check = PayoutCheck.WINDOW_OPEN
        elif covered_to is None or covered_to < end:
            check = PayoutCheck.NOT_COVERED
        else:
            check = PayoutCheck.NOT_IN_BANK
            files = tuple(
                sorted(
                    {
                        s.file
                        for s in statements
                        if s.covers_from is not None
                        and s.covers_to is not None
                        and currency in s.currencies
                        and s.covers_from <= end
                        and s.covers_to >= start
                    }
                )
            )
            findings.append(
                BankFinding(
                    BankOutcome.PAYOUT_NOT_IN_BANK,
                    p.amount,
                    currency,
                    p.arrival_date,
                    payout_id=p.id,
                    window_from=start,
                    window_to=end,
                    files=files,
                )
            )
        deposit = deposit_of(hit, p.id) if hit is not None else None
        results.append(PayoutMatch(p.id, check, deposit, start, end, covered_to))

    kept = [r.deposit for r in results if r.deposit is not None]
    taken = {(d.file, d.line) for d in kept}
    for entry in entries:
        if entry.key in taken or not pattern.search(entry.line.description):
            continue
        deposit = deposit_of(entry, None)
        kept.append(deposit)
        inside = payouts_cover is None or payouts_cover[0] <= entry.line.booked <= payouts_cover[1]
        if entry.line.is_credit and inside:
            findings.append(
                BankFinding(
                    BankOutcome.BANK_DEPOSIT_UNMATCHED,
                    entry.line.amount,
                    entry.line.currency,
                    entry.line.booked,
                    deposit=deposit,
                )
            )
    kept.sort(key=lambda d: (d.booked, d.file, d.line))
    return BankResult(tuple(results), tuple(findings), tuple(kept))


# --- the bank leg in a run: the payouts that can explain a deposit, items, what clears them -----------------


@dataclass(frozen=True)
class KnownPayout:
    """A payout an earlier run saw, as store/payouts.py keeps it: enough to match it to a deposit."""

    id: str
    status: str
    amount: int
    currency: str
    arrival_date: date
    trace_id: str | None = None


def known_payout(doc: Mapping[str, Any]) -> KnownPayout | None:
    """A kept payout document (decide/payouts.WatchDoc) as a payout to match; None when it lacks a field."""
    try:
        arrival = datetime.fromtimestamp(int(doc["arrival_date"]), UTC).date()
        return KnownPayout(
            str(doc["_id"]),
            str(doc["status"]),
            int(doc["amount"]),
            str(doc["currency"]).lower(),
            arrival,
            doc.get("trace_id") or None,
        )
    except (KeyError, TypeError, ValueError, OverflowError):
        return None


def payouts_cover(arrivals: Iterable[date], until: date, match_days: int) -> tuple[date, date]:
    """The booking days for which the payouts known explain every Stripe deposit: after the matching window of
    the earliest payout known (a payout older than every one a run saw would arrive no later), up to `until`.
    No payout known: no day (an empty span, from after `until`)."""
    first = min(arrivals, default=None)
    if first is None:
        return until + timedelta(days=1), until
    return matching_window(first, match_days)[1] + timedelta(days=1), until


def statements_span(statements: Iterable[Statement]) -> tuple[date, date] | None:
    """The first and last day any statement covers (None: none covers a day)."""
    days = [d for s in statements for d in (s.covers_from, s.covers_to) if d is not None]
    return (min(days), max(days)) if days else None


PAYOUT_NOT_IN_BANK = BankOutcome.PAYOUT_NOT_IN_BANK
BANK_DEPOSIT_UNMATCHED = BankOutcome.BANK_DEPOSIT_UNMATCHED
SOURCE = "bank"  # the items' `source`: re-checked by the bank leg only, never by a window's coverage


def payout_item_key(payout_id: str) -> str:
    return f"{PAYOUT_NOT_IN_BANK}:{payout_id}"


def deposit_id(deposit: Deposit, occurrence: int = 1) -> str:
    """A deposit named by what it is, not where it was read (the same line in next month's export, or in
    another format, is the same deposit): day, amount, currency and a digest of its reference and description.
    `occurrence`: the second of two identical lines is another deposit."""
    text = f"{deposit.reference.strip()}\n{' '.join(deposit.description.split())}".lower()
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    tail = f":{occurrence}" if occurrence > 1 else ""
    return f"{deposit.booked.isoformat()}:{deposit.amount}:{deposit.currency}:{digest}{tail}"


def deposit_ids(deposits: Iterable[Deposit]) -> dict[tuple[str, int], str]:
    """Each kept deposit's id, by (file, line): identical lines numbered in the order read."""
    seen: Counter[str] = Counter()
    out = {}
    for d in sorted(deposits, key=lambda d: (d.booked, d.file, d.line)):
        base = deposit_id(d)
        seen[base] += 1
        out[(d.file, d.line)] = deposit_id(d, seen[base])
    return out


def item_key(f: BankFinding, ids: Mapping[tuple[str, int], str]) -> str:
    if f.outcome is PAYOUT_NOT_IN_BANK:
        return payout_item_key(f.payout_id or "")
    assert f.deposit is not None
    return f"{BANK_DEPOSIT_UNMATCHED}:{ids[(f.deposit.file, f.deposit.line)]}"


def finding(f: BankFinding, key: str, detail: str, livemode: bool | None) -> Finding:
    """A bank finding as the items collection records it; money at stake is its amount."""
    return {
        "key": key,
        "kind": f.outcome,
        "needs_person": f.outcome.needs_person,
        "source": SOURCE,
        "order_key": None,
        "charge_id": None,
        "charge_ids": [],
        "object_id": f.payout_id,  # the payout (payout_not_in_bank); None for a deposit
        "anchor": None,  # resolved only by a run whose statements settle it
        "amount": f.amount,
        "at_stake": f.amount,
        "currency": f.currency,
        "detail": detail,
        "deadline": None,
        "livemode": livemode,
        "email": None,
        "order_status": None,
        "charge_amount": None,
        "object_status": None,
    }


@dataclass(frozen=True)
class Settled:
    """What a run's statements say of the live bank items: gone (key -> why) and looked at."""

    cleared: dict[str, str]
    checked: list[str]


def settle(result: BankResult, ids: Mapping[tuple[str, int], str], live: Iterable[str]) -> Settled:
    """Live bank items the statements settle. A payout's item goes when its deposit is found (or it is no longer
    paid); a deposit's item goes when a payout explains it. An item the statements cannot tell about stays."""
    checks = {m.payout_id: m for m in result.payouts}
    deposits = {ids[(d.file, d.line)]: d for d in result.deposits if d.amount > 0}
    cleared: dict[str, str] = {}
    checked: list[str] = []
    for key in live:
        kind, _, subject = key.partition(":")
        if kind == PAYOUT_NOT_IN_BANK and subject in checks:
            checked.append(key)
            m = checks[subject]
            if m.check is PayoutCheck.MATCHED and m.deposit is not None:
                cleared[key] = f"deposit found: {m.deposit.booked.isoformat()} on {_base(m.deposit.file)}"
            elif m.check is PayoutCheck.NOT_EXPECTED:
                cleared[key] = "payout no longer paid"
        elif kind == BANK_DEPOSIT_UNMATCHED and subject in deposits:
            checked.append(key)
            d = deposits[subject]
            if d.payout_id is not None:
                cleared[key] = f"payout {d.payout_id} explains it"
    return Settled(cleared, checked)


def _base(file: str) -> str:
    return PurePath(file).name
