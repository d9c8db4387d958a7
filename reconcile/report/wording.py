"""The words of an outcome: one short sentence per row, from the codes and numbers the decision returns.

decide/classify.py gives each row an outcome, its columns and (where they say more) its
`Facts`; this module writes the `detail` a person reads in the report, the CSV, the summary and
the open items. It decides nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from pathlib import PurePath
from typing import Any, TypedDict, cast

import numpy as np
import pandas as pd

from reconcile.decide import bank as bank_rules
from reconcile.decide import classify as c
from reconcile.decide import match, movements
from reconcile.decide import payouts as payout_rules
from reconcile.decide.findings import Finding
from reconcile.money import format_amount
from reconcile.timeutil import fmt, from_unix

# A charge-less payment attempt, by its state (match.ATTEMPT_STATES).
ATTEMPT_WORDS = {
    match.PROCESSING: "payment processing (bank debits take days to settle)",
    match.PAID_ELSEWHERE: "succeeded, but its charge was not found",
    match.EXPIRED: "expired, the customer abandoned the checkout",
    match.CANCELED: "canceled",
    match.OPEN: "still open, the customer may still pay",
    match.INCOMPLETE: "never completed",
}
# A payment method type (Stripe's PaymentMethod.type) as a person names it; another is said as its code.
METHOD_WORDS = {
    "sepa_debit": "SEPA debit",
    "us_bank_account": "ACH debit",
    "bacs_debit": "Bacs debit",
    "au_becs_debit": "BECS debit",
    "acss_debit": "pre-authorized debit",
    "nz_bank_account": "NZ BECS debit",
    "card": "card payment",
}
NO_CHARGE = "no charge at all (abandoned checkout, or the request never reached Stripe)"
YOUNG = "younger than the grace period"
NO_ORDER = "charge names no order"
# Where a reference to an order comes from (match.SOURCES), for a person.
SOURCE_WORDS = {
    "charge_metadata": "charge metadata",
    "intent_metadata": "PaymentIntent metadata",
    "session_client_reference_id": "Checkout Session client_reference_id",
    "session_metadata": "Checkout Session metadata",
    "order_charge_id": "charge id stored on the order",
    "order_payment_intent_id": "PaymentIntent id stored on the order",
    "order_session_id": "Checkout Session id stored on the order",
}
# Why a PaymentIntent was canceled (match.CANCELLATION_REASONS), in a person's words.
CANCELLATION_WORDS = {
    "abandoned": "abandoned",
    "automatic": "canceled automatically",
    "duplicate": "a duplicate",
    "expired": "the authorization expired",
    "failed_invoice": "its invoice failed",
    "fraudulent": "fraudulent",
    "requested_by_customer": "requested by the customer",
    "void_invoice": "its invoice was voided",
}
# A Stripe object of a payment chain (match.ObjectKind), as a person names it.
OBJECT_NOUNS = {
    match.ObjectKind.CHARGE: "charge",
    match.ObjectKind.PAYMENT_INTENT: "PaymentIntent",
    match.ObjectKind.CHECKOUT_SESSION: "Checkout Session",
}
_NO_FACTS = c.Facts()


def worded(outcomes: pd.DataFrame, rules: c.Rules) -> pd.DataFrame:
    """`outcomes` (classify's result) with its `detail` column written; changed in place and returned."""
    outcomes["detail"] = details(outcomes, rules)
    return outcomes


def details(outcomes: pd.DataFrame, rules: c.Rules) -> list[str | None]:
    """A short sentence per outcome that is not plain ok."""
    outcome = outcomes["outcome"].to_numpy()
    status = outcomes["order_status"].astype(object).to_numpy()
    no_facts = outcomes["facts"].isna().to_numpy()
    # The common sentences that depend on nothing but the outcome, set at once (a backfill can have
    # hundreds of thousands of them, each then one shared string); the loop below writes the rest.
    plain = [
        (outcome == c.REPAIRED, repaired(rules)),
        ((outcome == c.STALE_PENDING) & no_facts, NO_CHARGE),
        ((outcome == c.IN_FLIGHT) & no_facts & (status == rules.pending_status), YOUNG),
        ((outcome == c.ORPHAN_CHARGE) & no_facts, NO_ORDER),
    ]
    texts = np.full(len(outcomes), None, dtype=object)
    done = outcome == c.OK
    for mask, text in plain:
        texts[mask] = text
        done |= mask
    unpaid = (outcome == c.PAID_WITHOUT_CHARGE) & no_facts
    texts[unpaid] = [f"order is {s} but no succeeded charge was found" for s in status[unpaid]]
    done |= unpaid
    positions = np.flatnonzero(~done)
    if not len(positions):
        return list(texts)
    # Plain dicts of only the columns used: row access on a wide frame costs ~100 us a row.
    rows = outcomes.iloc[positions][list(DetailRow.__annotations__)].to_dict("records")
    for position, row in zip(positions, rows, strict=True):
        texts[position] = sentence(cast(DetailRow, row), row["facts"] or _NO_FACTS, rules)
    return list(texts)


class DetailRow(TypedDict):
    """The columns of one of classify's rows its detail is written from (cells: a missing value is NA or None)."""

    outcome: str
    order_key: str | None
    order_status: str | None
    amount: Any  # an int, or missing
    currency: str | None
    charge_id: str | None
    charge_amount: Any  # an int, or missing
    charge_currency: str | None
    amount_refunded: Any  # an int, or missing
    order_created: Any  # unix seconds, or missing
    expected_end: Any  # unix seconds: the order's deadline (decide/deadlines.py), or missing
    facts: c.Facts | None


def repaired(rules: c.Rules) -> str:
    return f"{rules.pending_status} -> {rules.paid_statuses[0]} (charge succeeded)"


def _release(reason: str | None) -> str:
    """Why an authorization was released (classify.AUTHORIZATION_LAPSED: nobody canceled it)."""
    if not reason:
        return "the authorization window passed"
    return f"PaymentIntent canceled: {CANCELLATION_WORDS.get(reason, reason)}"


def _object(what: match.PaymentObject | None) -> str:
    """'PaymentIntent pi_...', 'Checkout Session cs_...'."""
    return f"{OBJECT_NOUNS[what.kind]} {what.id}" if what is not None else "a payment attempt"


def _attempt(facts: c.Facts, state: str) -> str | None:
    """The order's attempt in `state` and what that state means, None if it has none."""
    for s, what in facts.attempts:
        if s == state:
            return f"{_object(what)}: {ATTEMPT_WORDS[state]}"
    return None


def _conflicts(conflicts: Iterable[match.Conflict]) -> str:
    """Each payment whose links disagree, and what each link names."""
    return " | ".join(
        f"{_object(c.payment)}: " + "; ".join(f"{SOURCE_WORDS[source]} names order {key}" for source, key in c.claims)
        for c in conflicts
    )


def pairing_text(pair: match.Pairing) -> str:
    """A probable match's detail: the confidence, the charge and why they are probably one purchase."""
    reasons = "same amount and currency" if pair.exact_amount else "same currency, amount within the tolerance"
    if pair.same_email:
        reasons += ", same email"
    minutes = abs(pair.gap) // 60
    when = (
        f"{minutes}m {'after' if pair.gap >= 0 else 'before'} the order" if minutes else "within a minute of the order"
    )
    return (
        f"probable match ({pair.confidence} confidence): charge {pair.charge_id} has no order "
        f"reference; {reasons}; charged {when}. Confirm by hand: never repaired automatically"
    )


def tie_text(tie: match.Tie) -> str:
    """Why no pair was proposed for a row although candidates exist."""
    this, others = ("order", "unreferenced charges") if tie.side == "order" else ("charge", "unpaid orders")
    if len(tie.candidates) > 1:
        return f"{len(tie.candidates)} {others} fit this {this} equally well ({', '.join(tie.candidates)}): none picked"
    other = "charge" if tie.side == "order" else "order"
    return f"{other} {tie.candidates[0]} fits this {this} and another equally well: none picked"


def sentence(row: DetailRow, facts: c.Facts, rules: c.Rules) -> str | None:
    """The detail of one row (a dict of classify's columns), with what match adds about probable pairs."""
    if facts.pair is not None:
        return pairing_text(facts.pair)
    text = _base(row, facts, rules)
    if facts.too_many_pairings:
        text = (
            f"{text}; too many possible pairings ({facts.too_many_pairings:,}) to propose probable matches:"
            " check matching.link_by"
        )
    for tie in facts.notes:
        note = tie_text(tie)
        text = f"{text}; {note}" if text else note
    return text


# What the job would have done to an order whose repair a person undid.
_WOULD: dict[str, str] = {c.REPAIRED: "repair it", c.MARKED_FAILED: "mark it failed"}


def _base(row: DetailRow, facts: c.Facts, rules: c.Rules) -> str | None:
    outcome = row["outcome"]
    if outcome == c.REPAIR_UNDONE:
        would = _WOULD.get(facts.would_be or "", "change it")
        return (
            f"repair undone {facts.undone or ''}; the job would {would} again but leaves it alone until a "
            "person clears the marker (`reconcile items clear`)"
        )
    if outcome == c.DATA_PROBLEM:
        return facts.problem if facts.problem is not None else f"unknown order status {str(row['order_status'])[:40]!r}"
    if outcome == c.LINK_CONFLICT:
        return "links disagree, nothing repaired: " + _conflicts(facts.conflict)
    if outcome == c.DUPLICATE_CHARGE:
        return f"{len(facts.paid_charges)} succeeded charges: " + ", ".join(facts.paid_charges)
    if outcome == c.AMOUNT_MISMATCH:
        return _amount_mismatch(row, facts, rules)
    if outcome == c.REFUNDED_OR_DISPUTED:
        return _refunded_or_disputed(row, facts)
    if outcome == c.REPAIRED:
        return repaired(rules)
    if outcome == c.MARKED_FAILED:
        reasons = []
        if facts.failed_charges:
            reasons.append(f"{facts.failed_charges} failed charge(s)")
        canceled = _attempt(facts, match.CANCELED)
        if canceled is not None:
            reasons.append(canceled)
        if facts.released:
            reasons.append(f"authorization released uncaptured ({_release(facts.released_reason)})")
        return f"{rules.pending_status} -> {rules.failed_status} ({'; '.join(reasons)}; none succeeded)"
    if outcome == c.FAILED_BUT_CHARGED:
        return f"order is {rules.failed_status} but charge {row['charge_id']} succeeded"
    if outcome == c.UNCAPTURED:
        return "charge authorized, not captured"
    if outcome == c.PAID_WITHOUT_CHARGE:
        text = f"order is {row['order_status']} but no succeeded charge was found"
        if facts.released:
            text += f"; its authorization was released uncaptured ({_release(facts.released_reason)})"
        for state in (match.PAID_ELSEWHERE, match.EXPIRED, match.CANCELED, match.INCOMPLETE):
            what = _attempt(facts, state)
            if what is not None:
                return f"{text}; {what}"
        return text
    if outcome == c.IN_FLIGHT:
        return _in_flight(row, facts, rules)
    if outcome == c.OVERDUE_PROCESSING:
        return _overdue(row, facts, rules)
    if outcome == c.STALE_PENDING:
        for state in (match.PAID_ELSEWHERE, match.EXPIRED, match.INCOMPLETE):
            what = _attempt(facts, state)
            if what is not None:
                return f"no charge: {what}"
        return NO_CHARGE
    if outcome == c.ORPHAN_CHARGE:
        if facts.ref_source is None:
            return NO_ORDER
        source = SOURCE_WORDS.get(facts.ref_source, facts.ref_source)
        return f"{source} names order {str(row['order_key'])[:60]}, which does not exist"
    return None


def _amount_mismatch(row: DetailRow, facts: c.Facts, rules: c.Rules) -> str:
    text = (
        f"order {format_amount(row['amount'], row['currency'] or '')}, "
        f"charge captured {format_amount(row['charge_amount'], row['charge_currency'] or '')}"
    )
    if facts.authorized is not None and facts.authorized > row["charge_amount"]:
        text += f" of {format_amount(facts.authorized, row['charge_currency'] or '')} authorized"
    if (
        rules.amount_tolerance
        and row["order_status"] == rules.pending_status
        and row["currency"] == row["charge_currency"]
        and abs(row["amount"] - row["charge_amount"]) <= rules.amount_tolerance
    ):
        text += " (within orders.amount_tolerance, which repairs use only with orders.repair_within_tolerance)"
    return text


def _refunded_or_disputed(row: DetailRow, facts: c.Facts) -> str:
    currency = row["charge_currency"] or ""
    parts = []
    if pd.notna(row["amount_refunded"]) and row["amount_refunded"] > 0:
        parts.append(f"refunded {format_amount(row['amount_refunded'], currency)}")
    if facts.disputed:
        parts.append("disputed")
    text = (" and ".join(parts) or "no refund in Stripe") + f" while the order is {row['order_status']}"
    recorded = facts.order_refunded
    expected = int(row["amount"]) - recorded
    paid = int(row["charge_amount"]) - int(row["amount_refunded"] if pd.notna(row["amount_refunded"]) else 0)
    if expected != paid:
        recorded_text = (
            f", after {format_amount(recorded, row['currency'] or '')} refunded on the order" if recorded else ""
        )
        text += (
            f"; the order expects net {format_amount(expected, row['currency'] or '')}{recorded_text},"
            f" the customer paid net {format_amount(paid, currency)}"
        )
    return text


def method_text(method: str | None) -> str:
    """'SEPA debit', 'ACH debit', ...; 'payment' when the method is not known."""
    if not method:
        return "payment"
    return METHOD_WORDS.get(method, f"{method.replace('_', ' ')} payment")


def span_text(seconds: int) -> str:
    """'14 days', '1 day', '5 hours', '15 minutes': a duration as a person says it (rounded down)."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


def judged_text(row: DetailRow, rules: c.Rules) -> str | None:
    """When an order in flight will be judged: '14 Dec' (its day, or the hour when that is within a day of
    the order); None when its deadline is unknown or passed."""
    end, created = row["expected_end"], row["order_created"]
    if end is None or pd.isna(end) or int(end) <= rules.now:
        return None
    near = created is not None and not pd.isna(created) and int(end) - int(created) < 86400
    return day_text(int(end), with_time=near)


def _in_flight(row: DetailRow, facts: c.Facts, rules: c.Rules) -> str:
    processing, still_open = _attempt(facts, match.PROCESSING), _attempt(facts, match.OPEN)
    if facts.pending_charges:
        text = "charge still processing" + (f" ({method_text(facts.method)})" if facts.method else "")
    elif processing is not None:
        text = processing
    elif still_open is not None and not facts.young:
        text = still_open
    elif facts.own_deadline and not facts.young:
        text = "no answer from its payment yet, before the order's own expected end"
    else:
        text = YOUNG
    if row["order_status"] != rules.pending_status:
        text = f"order is {row['order_status']}; its payment is still in progress: {text}"
    judged = judged_text(row, rules)
    return f"{text}; judged after {judged}" if judged else text


def _overdue(row: DetailRow, facts: c.Facts, rules: c.Rules) -> str:
    """'SEPA debit still processing 16 days after the order; Stripe settles these within 14 days'."""
    created = row["order_created"]
    age = span_text(max(0, rules.now - int(created))) if created is not None and not pd.isna(created) else "long"
    text = f"{method_text(facts.method)} still processing {age} after the order"
    end = row["expected_end"]
    if facts.own_deadline and end is not None and not pd.isna(end):
        text += f"; the order expected it settled by {day_text(int(end), with_time=True)}"
    elif facts.settle_seconds is not None:
        text += f"; Stripe settles these within {span_text(facts.settle_seconds)}"
    else:
        text += f"; longer than orders.grace_period ({span_text(rules.grace_seconds)}), and no orders.settle_within entry for it"
    if row["order_status"] != rules.pending_status:
        text = f"order is {row['order_status']}; {text}"
    return text


# --- The report's words for people: titles of outcomes and items, the next step of each item. ---

# Each outcome in plain words (the counts table and the listed sections); the code stays beside it
# only as the CSV's `outcome` value, for a search.
OUTCOME_TITLES: dict[str, str] = {
    c.OK: "Matched, nothing to do",
    c.REPAIRED: "Stuck orders set to paid (repaired)",
    c.MARKED_FAILED: "Pending orders marked failed: only failed charges",
    c.IN_FLIGHT: "Payments still in progress, left alone for now",
    c.STALE_PENDING: "Abandoned checkouts: pending orders with no charge",
    c.OVERDUE_PROCESSING: "Payments still processing past their deadline",
    c.PAID_WITHOUT_CHARGE: "Orders marked paid with no succeeded charge",
    c.AMOUNT_MISMATCH: "Charged amount differs from the order",
    c.DUPLICATE_CHARGE: "Orders charged more than once",
    c.ORPHAN_CHARGE: "Charges with no order",
    c.REFUNDED_OR_DISPUTED: "Refunded or disputed, but the order is still live",
    c.UNCAPTURED: "Authorized, not captured yet",
    c.FAILED_BUT_CHARGED: "Orders marked failed whose charge succeeded",
    c.DATA_PROBLEM: "Order documents the job could not read",
    c.LINK_CONFLICT: "Payments whose links name different orders",
    c.PROBABLE_MATCH: "Probable matches to confirm (a charge and an unpaid order)",
    c.REPAIR_UNDONE: "Orders a person put back (undo): the job leaves them alone",
}


# Each kind of refund or dispute finding (movements.MovementKind) in plain words.
MOVEMENT_TITLES: dict[str, str] = {
    movements.REFUND_FAILED: "Refund failed: the customer did not get the money back",
    movements.REFUNDED_ORDER_STILL_PAID: "Charge fully refunded, order still paid",
    movements.DISPUTE_OPEN: "Dispute open: respond before the due date",
    movements.DISPUTE_LOST: "Dispute lost, order still paid",
    movements.REFUND: "Refund",
    movements.PARTIAL_REFUND: "Partial refund",
    movements.DISPUTE_CLOSED: "Dispute closed",
}


# Each outcome of the bank leg (bank.BankOutcome) in plain words.
BANK_TITLES: dict[str, str] = {
    bank_rules.PAYOUT_NOT_IN_BANK: "Payout not on the bank statement",
    bank_rules.BANK_DEPOSIT_UNMATCHED: "Stripe deposit no payout explains",
}


# Each payout outcome (payouts.PayoutOutcome) in plain words.
PAYOUT_TITLES: dict[str, str] = {
    payout_rules.PAYOUT_FAILED: "Payout failed: the money went back to the Stripe balance",
    payout_rules.PAYOUT_CANCELED: "Payout canceled: the money went back to the Stripe balance",
    payout_rules.PAYOUT_OVERDUE: "Payout overdue: not paid days after its arrival date",
    payout_rules.PAYOUT_MISMATCH: "Payout does not add up to its transactions",
}


def item_title(kind: str | None) -> str:
    """What happened, in plain words, for an item of any kind (an outcome, a refund/dispute or payout finding)."""
    text = (
        OUTCOME_TITLES.get(kind or "")
        or MOVEMENT_TITLES.get(kind or "")
        or PAYOUT_TITLES.get(kind or "")
        or BANK_TITLES.get(kind or "")
    )
    return text or (kind or "unknown").replace("_", " ")


def day_text(unix: int | None, with_time: bool = False) -> str:
    """'3 Dec' (or '3 Dec 14:00 UTC'): a deadline as a person reads it."""
    if unix is None:
        return ""
    moment = pd.Timestamp(int(unix), unit="s", tz="UTC")
    text = f"{moment.day} {moment.strftime('%b')}"
    return f"{text} {moment.strftime('%H:%M')} UTC" if with_time else text


def age_text(days: int | None) -> str:
    if not days:
        return "today"
    return f"{days} day{'s' if days != 1 else ''}"


def next_step(item: Mapping[str, Any]) -> str:
    """The next step for an item, in a few words (item: an open item document or a finding)."""
    kind = item.get("kind")
    deadline = item.get("deadline")
    charge = item.get("charge_id")
    others = [i for i in (item.get("charge_ids") or []) if i != charge]
    if kind == c.DUPLICATE_CHARGE:
        if len(others) == 1:
            return f"refund the second charge {others[0]}"
        return f"refund the {len(others)} extra charges" if others else "refund the extra charge"
    if kind == c.UNCAPTURED:
        return f"capture or cancel before {day_text(deadline)}" if deadline else "capture or cancel the charge"
    if kind == movements.DISPUTE_OPEN:
        return f"respond in Stripe by {day_text(deadline, with_time=True)}" if deadline else "respond in Stripe"
    if kind == c.REFUNDED_OR_DISPUTED and item.get("disputed") and not item.get("amount_refunded"):
        return "hold the order until the dispute is decided"  # its dispute is an item of its own
    return NEXT_STEPS.get(kind or "", "look into it")


NEXT_STEPS: dict[str, str] = {
    c.PAID_WITHOUT_CHARGE: "find the payment, or stop the order",
    c.OVERDUE_PROCESSING: "ask Stripe support why it has not settled; hold the order",
    c.AMOUNT_MISMATCH: "settle the difference with the customer",
    c.ORPHAN_CHARGE: "find the order, or refund the charge",
    c.REFUNDED_OR_DISPUTED: "record the refund on the order, or cancel it",
    c.FAILED_BUT_CHARGED: "ship the order, or refund the charge",
    c.DATA_PROBLEM: "fix the order document",
    c.LINK_CONFLICT: "fix the order reference on the payment",
    c.PROBABLE_MATCH: "confirm or dismiss the match",
    c.REPAIR_UNDONE: "settle the order by hand, then clear its undo marker",
    movements.REFUND_FAILED: "refund the customer another way",
    movements.REFUNDED_ORDER_STILL_PAID: "cancel the order (the money went back)",
    movements.DISPUTE_LOST: "cancel the order (the dispute was lost)",
    payout_rules.PAYOUT_FAILED: "fix the bank account in Stripe, then pay the balance out again",
    payout_rules.PAYOUT_CANCELED: "find who canceled it, then pay the balance out again",
    payout_rules.PAYOUT_OVERDUE: "ask the bank with the trace id, then Stripe support",
    payout_rules.PAYOUT_MISMATCH: "compare the payout's transactions in Stripe with the payouts CSV",
    bank_rules.PAYOUT_NOT_IN_BANK: "ask the bank with the payout's trace id; check the account Stripe pays to",
    bank_rules.BANK_DEPOSIT_UNMATCHED: "find its payout in Stripe (another account?) or ask the bank who sent it",
}


# --- Refunds and disputes (decide/movements.py): a finding's detail from its Judgement and facts. ---


def movement_findings(judged: Iterable[movements.Movement]) -> list[Finding]:
    """The findings of judged refunds and disputes (movements.evaluate), each with its detail in words."""
    return [m.finding(movement_detail(m)) for m in judged]


def movement_detail(m: movements.Movement) -> str:
    """One refund's or dispute's detail: what happened to the money, and its order."""
    amount = format_amount(m.amount, m.currency)
    whose = f"order {m.order_key} is {m.order_status}" if m.order_key is not None else "the charge names no order"
    j = movements.Judgement
    status = m.status or ""
    match m.judgement:
        case j.REFUND_FAILED:
            return f"refund of {amount} failed ({m.failure_reason or 'no reason given'}); {whose}"
        case j.REFUND_CANCELED:
            return f"refund of {amount} canceled; {whose}"
        case j.FULL_REFUND_LISTED:
            return f"charge fully refunded ({amount}); {whose}, listed under refunded_or_disputed"
        case j.FULL_REFUND_ORDER_PAID:
            return f"charge fully refunded ({amount}) but {whose}"
        case j.PARTIAL_REFUND:
            return f"partial refund of {amount} ({m.status}); {whose}"
        case j.FULL_REFUND:
            return f"charge fully refunded ({amount}); {whose}"
        case j.DISPUTE_OPEN:
            kind = "inquiry" if status.startswith("warning_") else "dispute"
            due = f", respond by {fmt(from_unix(m.due_by))}" if m.due_by else ""
            known = status in movements.DISPUTE_OPEN_STATUSES
            words = status.replace("_", " ") if known else f"in unknown status {status[:40]!r}"
            return f"{kind} of {amount} {words} ({m.reason}){due}; {whose}"
        case j.DISPUTE_LOST:
            return f"dispute of {amount} lost ({m.reason}); {whose}"
        case j.DISPUTE_LOST_SETTLED:
            return f"dispute of {amount} lost; {whose}"
    return f"dispute of {amount} {status.replace('_', ' ')} ({m.reason}); {whose}"


# --- Payouts (decide/payouts.py): a payout finding's detail, its status and failure in plain words. ---

# Stripe's payout failure codes (API version 2026-10-28.endive, "Payout failures"), for a person.
PAYOUT_FAILURE_WORDS = {
    "account_closed": "the bank account has been closed",
    "account_frozen": "the bank account has been frozen",
    "bank_account_restricted": "the bank account has restrictions on payouts to it",
    "bank_ownership_changed": "the bank account changed owner",
    "could_not_process": "the bank could not process this payout",
    "debit_not_authorized": "debits are not authorized on this bank account",
    "declined": "the bank declined the transfer",
    "incorrect_account_holder_address": "the bank says the account holder's address is wrong",
    "incorrect_account_holder_name": "the bank says the account holder's name is wrong",
    "incorrect_account_holder_tax_id": "the bank says the account holder's tax id is wrong",
    "insufficient_funds": "the Stripe balance did not cover the payout",
    "invalid_account_number": "the bank account number is not valid",
    "invalid_currency": "the bank account cannot take this currency",
    "no_account": "the bank could not find the account (wrong details on file?)",
    "unsupported_card": "the debit card does not take payouts",
}
PAYOUT_STATUS_WORDS = {
    "paid": "paid",
    "pending": "pending (not sent yet)",
    "in_transit": "in transit to the bank",
    "canceled": "canceled",
    "failed": "failed",
}
NOT_ITEMIZED = "not itemized by Stripe"
# A payout outcome in a word or two (the console's payouts line).
PAYOUT_SHORT: dict[str, str] = {
    payout_rules.PAYOUT_FAILED: "failed",
    payout_rules.PAYOUT_CANCELED: "canceled",
    payout_rules.PAYOUT_OVERDUE: "overdue",
    payout_rules.PAYOUT_MISMATCH: "not adding up",
    bank_rules.PAYOUT_NOT_IN_BANK: "not on the bank statement",
    bank_rules.BANK_DEPOSIT_UNMATCHED: "deposit without payout",
}


def failure_words(code: str | None) -> str:
    """A payout failure code in plain words (an unknown one as itself)."""
    if not code:
        return "no reason given"
    return PAYOUT_FAILURE_WORDS.get(code, code.replace("_", " "))


def payout_detail(
    payout: payout_rules.Payout, outcome: payout_rules.PayoutOutcome, itemized: payout_rules.Itemized | None, now: int
) -> str:
    """One payout finding's detail: what happened to the money, with the facts a person checks."""
    amount = format_amount(payout.amount, payout.currency)
    expected = day_text(payout.arrival)
    match outcome:
        case payout_rules.PAYOUT_FAILED:
            return (
                f"payout of {amount} expected {expected} failed: {failure_words(payout.failure_code)} "
                f"({payout.failure_code or 'no code'}); Stripe returned the money to the balance"
            )
        case payout_rules.PAYOUT_CANCELED:
            return f"payout of {amount} expected {expected} was canceled; Stripe returned the money to the balance"
        case payout_rules.PAYOUT_OVERDUE:
            late = max(0, (now - payout.arrival) // payout_rules.DAY)
            status = PAYOUT_STATUS_WORDS.get(payout.status, payout.status)
            ago = f"{age_text(late)} ago" if late else "today"
            return f"payout of {amount} expected {expected} ({ago}) is still {status}"
    net = itemized.totals["net"] if itemized else 0
    count = itemized.transactions if itemized else 0
    return (
        f"payout of {amount} expected {expected}: its {count} transactions add up to "
        f"{format_amount(net, payout.currency)} (difference {format_amount(payout.amount - net, payout.currency)})"
    )


# --- The bank leg (decide/bank.py): a bank finding's detail, where a payout stands against the statements. ---

REFERENCE_CHARS = 34  # a reference longer than this is cut where people read it (a phone's width)


def iso_day(day: date) -> str:
    return f"{day.day} {day.strftime('%b')} {day.year}"


def short_reference(reference: str) -> str:
    text = " ".join(reference.split())
    return text if len(text) <= REFERENCE_CHARS else text[: REFERENCE_CHARS - 1] + "\u2026"


def bank_detail(f: bank_rules.BankFinding) -> str:
    """A bank finding's detail: the money, the days looked at, the statements (base names only)."""
    amount = format_amount(f.amount, f.currency)
    if f.outcome is bank_rules.PAYOUT_NOT_IN_BANK:
        files = ", ".join(PurePath(x).name for x in f.files) or "the statements"
        span = f"{iso_day(f.window_from)} to {iso_day(f.window_to)}" if f.window_from and f.window_to else ""
        return (
            f"payout {f.payout_id} of {amount} expected {iso_day(f.day)}: no deposit of that amount booked "
            f"{span} on {files}"
        )
    d = f.deposit
    assert d is not None
    ref = f" (reference {short_reference(d.reference)})" if d.reference.strip() else ""
    return (
        f"deposit of {amount} booked {iso_day(d.booked)}{ref} on {PurePath(d.file).name}, "
        f'"{short_reference(d.description)}": no payout of that amount arrived within the matching days'
    )


def bank_check_text(m: bank_rules.PayoutMatch | None) -> str:
    """Where a payout stands against the bank statements, a few words ("": the run read no statement)."""
    if m is None:
        return ""
    check = m.check
    if check is bank_rules.PayoutCheck.MATCHED and m.deposit is not None:
        d = m.deposit
        ref = f", ref {short_reference(d.reference)}" if d.reference.strip() else ""
        return f"on the bank {iso_day(d.booked)}{ref} ({PurePath(d.file).name})"
    if check is bank_rules.PayoutCheck.NOT_IN_BANK:
        return f"NOT on the bank statements ({iso_day(m.window_from)} to {iso_day(m.window_to)})"
    if check is bank_rules.PayoutCheck.WINDOW_OPEN:
        return f"not on the statements yet: its deposit may be booked until {iso_day(m.window_to)}"
    if check is bank_rules.PayoutCheck.NOT_COVERED:
        if m.covered_to is None:
            return f"not provable yet: no statement covers {iso_day(m.window_from)} to {iso_day(m.window_to)}"
        return f"not provable yet: the statements end {iso_day(m.covered_to)}, before {iso_day(m.window_to)}"
    return "no deposit expected (not paid)"


def statement_text(s: bank_rules.Statement) -> str:
    """A statement read, as the report lists it: its base name, format, account's last four, the days it covers."""
    account = f", account ****{s.account_last4}" if s.account_last4 else ""
    days = f", {iso_day(s.covers_from)} to {iso_day(s.covers_to)}" if s.covers_from and s.covers_to else ", no days"
    return f"{PurePath(s.file).name} ({s.format}{account}{days})"
