"""Which order each Stripe payment belongs to, by every link a shop may use; probable pairs for the rest.

Pure: frames in, frames out. No I/O, no outcome names (classify.py decides outcomes), no words
(codes and facts: report/wording.py words them).

A payment is a chain of Stripe objects: Checkout Session -> PaymentIntent -> charge(s). A chain
is linked to orders by the kinds in `link_by`, strongest first:

- `charge_metadata`: metadata[order_id_metadata_key] on the charge;
- `payment_intent_metadata`: the same key on the charge's PaymentIntent (Stripe does not copy
  it to the charge);
- `checkout_session`: the session's client_reference_id, or the key in its metadata;
- `order_fields`: the charge, PaymentIntent or Checkout Session id stored on the order.

Each chain belongs to one order, by its strongest link to an order that exists. When its links
name two different existing orders, that is a conflict: every order it names is reported, and
none is repaired on its evidence. Chains with no charge (a PaymentIntent still processing, a
canceled one, an expired Checkout Session) are attempts: evidence about a pending order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from reconcile.config import (
    CHARGE_METADATA,
    CHECKOUT_SESSION,
    DEFAULT_LINK_BY,
    ORDER_FIELDS,
    PAYMENT_INTENT_METADATA,
)
from reconcile.decide.columns import Columns
from reconcile.decide.columns import frame as frame_of
from reconcile.decide.inputs import IntentRow, SessionRow

INTENT_COLUMNS = [
    "pi_id",
    "created",
    "status",
    "amount",
    "currency",
    "order_ref",
    "latest_charge",
    "email",
    "cancellation_reason",
    "livemode",
    "in_window",
    "payment_method_type",
]
SESSION_COLUMNS = [
    "session_id",
    "created",
    "status",
    "payment_status",
    "client_reference_id",
    "order_ref",
    "payment_intent",
    "amount_total",
    "currency",
    "email",
    "expires_at",
    "livemode",
    "in_window",
    "payment_method_type",
]

# Where a reference comes from (a source code) and the link kind it is, in strength order within a
# kind (report/wording.py has the words for a person).
SOURCES = {
    "charge_metadata": CHARGE_METADATA,
    "intent_metadata": PAYMENT_INTENT_METADATA,
    "session_client_reference_id": CHECKOUT_SESSION,
    "session_metadata": CHECKOUT_SESSION,
    "order_charge_id": ORDER_FIELDS,
    "order_payment_intent_id": ORDER_FIELDS,
    "order_session_id": ORDER_FIELDS,
}
_SOURCE_ORDER = {name: i for i, name in enumerate(SOURCES)}

# States of a payment attempt with no charge (report/wording.py words them).
PROCESSING, PAID_ELSEWHERE, EXPIRED, CANCELED, OPEN, INCOMPLETE = (
    "processing",
    "paid_elsewhere",
    "expired",
    "canceled",
    "open",
    "incomplete",
)
ATTEMPT_STATES = (PROCESSING, PAID_ELSEWHERE, EXPIRED, CANCELED, OPEN, INCOMPLETE)


# What each status of a charge-less PaymentIntent or Checkout Session says about a pending order.
# API version 2026-10-28.endive: these cover every value of stripe-python 16's PaymentIntent.status,
# checkout.Session.status and payment_status (tests/test_api_version.py checks that). A status
# Stripe adds later reads as INCOMPLETE (never as paid, never as failed).
INTENT_STATUS_STATES = {
    "processing": PROCESSING,
    "succeeded": PAID_ELSEWHERE,
    "requires_capture": PAID_ELSEWHERE,  # authorized: its charge exists somewhere
    "canceled": CANCELED,
    "requires_payment_method": INCOMPLETE,
    "requires_confirmation": INCOMPLETE,
    "requires_action": INCOMPLETE,
}
SESSION_STATUS_STATES = {
    "open": OPEN,
    "expired": EXPIRED,  # Checkout cancels the PaymentIntent of an expired session: abandonment, not failure
    "complete": None,  # by payment_status
}
SESSION_PAYMENT_STATES = {
    "paid": PAID_ELSEWHERE,
    "no_payment_required": PAID_ELSEWHERE,
    "unpaid": PROCESSING,  # complete but unpaid: a delayed payment method settling
}
# Why a PaymentIntent was canceled (report/wording.py words them). Every reason releases an uncaptured
# authorization (classify.released_authorizations); `expired` (the authorization lapsed) replaced
# `automatic` for that in 2025-03-31.basil.
CANCELLATION_REASONS = (
    "abandoned",
    "automatic",
    "duplicate",
    "expired",
    "failed_invoice",
    "fraudulent",
    "requested_by_customer",
    "void_invoice",
)


class ObjectKind(StrEnum):
    """The Stripe objects of a payment chain."""

    CHARGE = "charge"
    PAYMENT_INTENT = "payment_intent"
    CHECKOUT_SESSION = "checkout_session"


class PaymentObject(NamedTuple):
    """One Stripe object of a payment: its kind and id."""

    kind: ObjectKind
    id: str


@dataclass(frozen=True)
class Conflict:
    """A payment whose links name different orders: each claim is (source code in SOURCES, order key)."""

    payment: PaymentObject
    claims: tuple[tuple[str, str], ...]


def intents_frame(rows: Sequence[IntentRow] | Columns) -> pd.DataFrame:
    """Rows or columns (reconcile/decide/columns.py) of PaymentIntents; each counts once."""
    frame = frame_of(rows, INTENT_COLUMNS)
    frame["in_window"] = ~frame["in_window"].eq(False)
    return frame.drop_duplicates("pi_id", keep="first").reset_index(drop=True)


def sessions_frame(rows: Sequence[SessionRow] | Columns) -> pd.DataFrame:
    """Rows or columns (reconcile/decide/columns.py) of Checkout Sessions; each counts once."""
    frame = frame_of(rows, SESSION_COLUMNS)
    frame["in_window"] = ~frame["in_window"].eq(False)
    return frame.drop_duplicates("session_id", keep="first").reset_index(drop=True)


@dataclass(frozen=True)
class Links:
    # The charges, with `order_key` (the order they belong to), `link_kind` (by which link),
    # `order_ref` (the strongest reference of any kind, even to an order that does not exist)
    # and `ref_source` (where that reference comes from: a SOURCES code).
    charges: pd.DataFrame
    # Per order key: how many charge-less attempts it has in each state (ATTEMPT_STATES columns).
    attempts: pd.DataFrame
    # (order key, state) -> the first such attempt (a Checkout Session, else its PaymentIntent).
    attempt_objects: dict[tuple[str, str], PaymentObject]
    # Order key -> the payments involving that order whose links disagree.
    conflicts: dict[str, tuple[Conflict, ...]]
    # Order key -> the charges of those payments (an item re-checks them).
    conflict_charges: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # The same links as numbers, for joins without hashing ids again: each order row's key number
    # (-1: no key), each charge row's order's key number (-1: no order), and how many numbers there are.
    order_codes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    charge_codes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    n_codes: int = 0
    # Per charge row: it names an order by some reference (`order_ref` is set), existing or not. With
    # charge_codes >= 0 (it belongs to an order), what classify asks without scanning a million ids.
    charge_refs: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))


def _take(values: Any, positions: np.ndarray) -> np.ndarray:
    """values[positions] as objects, None where the position is -1."""
    out = np.full(len(positions), None, dtype=object)
    found = positions >= 0
    out[found] = np.asarray(values, dtype=object)[positions[found]]
    return out


def _chains(charges: pd.DataFrame, intents: pd.DataFrame, sessions: pd.DataFrame) -> pd.DataFrame:
    """One row per payment: each charge, each PaymentIntent with no charge, each session with neither.

    Charges come first, in their order. `pi_pos` and `session_pos` are row numbers in `intents`
    and `sessions` (-1: not pulled), so later lookups are array indexing, not joins. PaymentIntent
    ids are hashed once (one factorize) and every join below is on their integer codes.
    """
    charge_ids = charges["charge_id"].to_numpy(dtype=object)
    charge_intents = charges["payment_intent"].to_numpy(dtype=object)
    intent_ids = intents["pi_id"].to_numpy(dtype=object)
    session_ids = sessions["session_id"].to_numpy(dtype=object)
    session_intents = sessions["payment_intent"].to_numpy(dtype=object)
    if len(intent_ids) or len(session_ids):
        codes, uniques = pd.factorize(np.concatenate([charge_intents, intent_ids, session_intents]))
        n_unique = len(uniques)
    else:  # no PaymentIntent or session pulled (the link kinds need none): no chain to find
        codes, n_unique = np.full(len(charge_intents), -1, dtype=np.int64), 0
    n_c, n_i = len(charge_intents), len(intent_ids)
    charge_code, intent_code, session_code = codes[:n_c], codes[n_c : n_c + n_i], codes[n_c + n_i :]

    def first_row_by_code(row_codes: np.ndarray) -> np.ndarray:
        at = np.full(n_unique + 1, -1, dtype=np.int64)  # the extra slot answers code -1 with -1
        present = np.flatnonzero(row_codes >= 0)
        found, first = np.unique(row_codes[present], return_index=True)
        at[found] = present[first]
        return at

    intent_at, session_at = first_row_by_code(intent_code), first_row_by_code(session_code)
    charge_pi_pos, charge_session_pos = intent_at[charge_code], session_at[charge_code]
    charged = np.zeros(n_i, dtype=bool)
    charged[charge_pi_pos[charge_pi_pos >= 0]] = True
    lone_intents = np.flatnonzero(~charged)
    lone_intent_session_pos = session_at[intent_code[lone_intents]]
    # A session is part of the chain of its PaymentIntent when that was pulled or charged.
    known_code = np.zeros(n_unique + 1, dtype=bool)
    known_code[charge_code] = True
    known_code[intent_code] = True
    known_code[-1] = False
    lone_sessions = np.flatnonzero(~known_code[session_code])
    none = np.full(len(lone_intents) + len(lone_sessions), None, dtype=object)
    session_pos = np.concatenate([charge_session_pos, lone_intent_session_pos, lone_sessions])

    def ids(values: np.ndarray) -> pd.Series:  # as they are: pandas would scan a million ids to type them as text
        return pd.Series(values, dtype=object, copy=False)

    return pd.DataFrame(
        {
            "chain": ids(np.concatenate([charge_ids, intent_ids[lone_intents], session_ids[lone_sessions]])),
            "charge_id": ids(np.concatenate([charge_ids, none])),
            "pi_id": ids(np.concatenate([charge_intents, intent_ids[lone_intents], session_intents[lone_sessions]])),
            "pi_pos": np.concatenate([charge_pi_pos, lone_intents, intent_at[session_code[lone_sessions]]]),
            "session_pos": session_pos,
            "session_id": ids(_take(session_ids, session_pos)),
        },
        copy=False,
    )


_SOURCE_NAMES = list(SOURCES)


def _references(
    chains: pd.DataFrame,
    charges: pd.DataFrame,
    intents: pd.DataFrame,
    sessions: pd.DataFrame,
    orders: pd.DataFrame,
    link_by: tuple[str, ...],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (chain position, referenced order, source number) the enabled link kinds give, strongest first."""
    rank = {kind: i for i, kind in enumerate(link_by)}
    parts: list[tuple[int, np.ndarray, np.ndarray, int]] = []

    def add(position: np.ndarray, ref: Any, source: str) -> None:
        kind = SOURCES[source]
        if kind not in rank:
            return
        ref = np.asarray(ref, dtype=object)
        present = pd.notna(ref)
        if present.any():
            parts.append(
                (rank[kind] * 100 + _SOURCE_ORDER[source], position[present], ref[present], _SOURCE_ORDER[source])
            )

    everywhere = np.arange(len(chains))
    pi_pos, session_pos = chains["pi_pos"].to_numpy(), chains["session_pos"].to_numpy()
    add(np.arange(len(charges)), charges["order_ref"], "charge_metadata")  # charges are the first chains
    if len(intents):
        add(everywhere, _take(intents["order_ref"], pi_pos), "intent_metadata")
    if len(sessions):
        add(everywhere, _take(sessions["client_reference_id"], session_pos), "session_client_reference_id")
        add(everywhere, _take(sessions["order_ref"], session_pos), "session_metadata")
    for column, chain_column, source in (
        ("stored_charge_id", "charge_id", "order_charge_id"),
        ("stored_payment_intent_id", "pi_id", "order_payment_intent_id"),
        ("stored_session_id", "session_id", "order_session_id"),
    ):
        if column not in orders or ORDER_FIELDS not in rank:
            continue
        stored = orders.loc[orders[column].notna(), [column, "order_key"]]
        if stored.empty:
            continue
        chain_ids = chains[chain_column].to_numpy(dtype=object)
        # Charge ids are on the charges' chains, which come first (no scan of a million ids for them).
        present = everywhere < len(charges) if chain_column == "charge_id" else pd.notna(chain_ids)
        ids = pd.DataFrame({"position": everywhere[present], "id": pd.Series(chain_ids[present], dtype=object)})
        joined = ids.merge(stored, left_on="id", right_on=column)
        add(joined["position"].to_numpy(), joined["order_key"], source)
    if not parts:
        return np.array([], dtype=np.int64), np.array([], dtype=object), np.array([], dtype=np.int64)
    parts.sort(key=lambda part: part[0])  # strongest kind first; within a kind, SOURCES order
    return (
        np.concatenate([p[1] for p in parts]).astype(np.int64),
        np.concatenate([p[2] for p in parts]),
        np.concatenate([np.full(len(p[1]), p[3]) for p in parts]),
    )


def _first(chain: np.ndarray, rows: np.ndarray, size: int) -> np.ndarray:
    """For each chain position, the first of `rows` (indices into refs) naming it, or -1."""
    out = np.full(size, -1, dtype=np.int64)
    if len(rows):
        chains, first = np.unique(chain[rows], return_index=True)
        out[chains] = rows[first]
    return out


def _attempt_states(lone: pd.DataFrame, intents: pd.DataFrame, sessions: pd.DataFrame) -> np.ndarray:
    pi_status = pd.Series(_take(intents["status"], lone["pi_pos"].to_numpy()))
    s_status = pd.Series(_take(sessions["status"], lone["session_pos"].to_numpy()))
    s_paid = pd.Series(_take(sessions["payment_status"], lone["session_pos"].to_numpy()))
    complete = s_status.eq("complete")
    pi_state = pi_status.map(INTENT_STATUS_STATES)
    s_state = s_status.map(SESSION_STATUS_STATES).where(~complete, s_paid.map(SESSION_PAYMENT_STATES))
    conditions = [
        pi_state.eq(PROCESSING) | s_state.eq(PROCESSING),
        pi_state.eq(PAID_ELSEWHERE) | s_state.eq(PAID_ELSEWHERE),
        s_state.eq(EXPIRED),
        pi_state.eq(CANCELED),
        s_state.eq(OPEN),
    ]
    return np.select([c.to_numpy(dtype=bool) for c in conditions], list(ATTEMPT_STATES[:5]), default=INCOMPLETE)


def link(
    charges: pd.DataFrame,
    orders: pd.DataFrame,
    intents: pd.DataFrame,
    sessions: pd.DataFrame,
    link_by: tuple[str, ...] = DEFAULT_LINK_BY,
) -> Links:
    """Link every charge and charge-less attempt to one order by its strongest link; find conflicts.

    Vectorised on integer codes (chain positions, order numbers): a million charges take about a second.
    """
    chains = _chains(charges, intents, sessions)
    size = len(chains)
    chain, ref, source = _references(chains, charges, intents, sessions, orders, link_by)
    order_codes, key_array, code = _number_orders(orders, ref)
    n_keys = len(key_array)

    strongest = _first(chain, np.arange(len(chain)), size)  # any reference, even to an order that does not exist
    existing = np.flatnonzero(code >= 0)
    # Distinct (chain, order) links, the strongest of each kept.
    existing = existing[~pd.Series(chain[existing] * max(n_keys, 1) + code[existing]).duplicated().to_numpy()]
    named = np.bincount(chain[existing], minlength=size)  # how many different orders each chain names
    winner = _first(chain, existing, size)

    has_winner = winner >= 0
    order_of = np.full(size, None, dtype=object)
    order_of[has_winner] = key_array[code[winner[has_winner]]]
    n_charges = len(charges)
    win_c, strong_c = winner[:n_charges], strongest[:n_charges]
    linked = _linked_charges(charges, order_of[:n_charges], ref, source, win_c, strong_c)
    charge_codes = np.where(win_c >= 0, code[np.where(win_c >= 0, win_c, 0)] if len(code) else -1, -1)
    attempts, attempt_objects = _attempts(
        chains.iloc[n_charges:].assign(order_key=order_of[n_charges:]), intents, sessions
    )
    disputed = existing[named[chain[existing]] > 1]
    conflicts, conflict_charges = _conflicts(chains, chain, disputed, code, source, key_array)
    return Links(
        linked,
        attempts,
        attempt_objects,
        conflicts,
        conflict_charges,
        order_codes,
        charge_codes,
        n_keys,
        strong_c >= 0,
    )


def _number_orders(orders: pd.DataFrame, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The orders' keys numbered (each order row's number, the keys by number), then each reference's
    number: the order's it names, -1 when no order has that key.

    (Numbering keys and references together in one pass peaks ~40 MB higher at a million: its table holds both.)
    """
    order_codes, uniques = pd.factorize(orders["order_key"].to_numpy(dtype=object))
    key_array = np.asarray(uniques, dtype=object)
    del uniques
    code = (  # both sides as plain objects: pandas would otherwise scan a million ids to type them as text
        pd.Index(key_array, dtype=object, copy=False).get_indexer(pd.Index(ref, dtype=object, copy=False))
        if len(ref)
        else np.zeros(0, dtype=np.int64)
    )
    return order_codes, key_array, code


# Per source number (SOURCES order), its link kind and its code; the extra last slot is "none".
_KIND_NAMES = np.array([*SOURCES.values(), None], dtype=object)
_SOURCE_CODES = np.array([*SOURCES, None], dtype=object)


def _linked_charges(
    charges: pd.DataFrame,
    order_of: np.ndarray,
    ref: np.ndarray,
    source: np.ndarray,
    winner: np.ndarray,
    strongest: np.ndarray,
) -> pd.DataFrame:
    """The charges with `order_key`, `link_kind`, `order_ref` and `ref_source` (see Links.charges).

    `winner` and `strongest`: per charge, the reference (an index into `ref` and `source`, -1: none)
    that links it, and its strongest of any kind."""
    none = len(SOURCES)  # the index of None in the name arrays
    padded_ref = np.append(ref, np.array([None], dtype=object))
    padded_source = np.append(source, none).astype(np.int64)

    def objects(values: np.ndarray) -> pd.Series:  # as they are: no scan of a million ids to type them
        return pd.Series(values, index=charges.index, dtype=object, copy=False)

    return charges.assign(
        order_key=objects(order_of),
        link_kind=objects(_KIND_NAMES[padded_source[np.where(winner >= 0, winner, len(ref))]]),
        order_ref=objects(padded_ref[np.where(strongest >= 0, strongest, len(ref))]),
        ref_source=objects(_SOURCE_CODES[padded_source[np.where(strongest >= 0, strongest, len(ref))]]),
    )


def _attempts(
    lone: pd.DataFrame, intents: pd.DataFrame, sessions: pd.DataFrame
) -> tuple[pd.DataFrame, dict[tuple[str, str], PaymentObject]]:
    """Per order key, how many charge-less attempts (`lone` chains with their `order_key`) it has in
    each state, and the first such attempt of each (order key, state)."""
    lone = lone.loc[lone["order_key"].notna()]
    attempts = pd.DataFrame(0, index=pd.Index([], name="order_key"), columns=list(ATTEMPT_STATES))
    if not len(lone):
        return attempts, {}
    lone = lone.assign(state=_attempt_states(lone, intents, sessions))
    attempts = (
        lone.groupby(["order_key", "state"])
        .size()
        .unstack(fill_value=0)
        .reindex(columns=list(ATTEMPT_STATES), fill_value=0)
    )
    first = lone.drop_duplicates(["order_key", "state"])
    objects = [
        PaymentObject(ObjectKind.CHECKOUT_SESSION, s)
        if isinstance(s, str)
        else PaymentObject(ObjectKind.PAYMENT_INTENT, p)
        for s, p in zip(first["session_id"], first["pi_id"], strict=False)
    ]
    return attempts, dict(zip(zip(first["order_key"], first["state"], strict=False), objects, strict=False))


def _conflicts(
    chains: pd.DataFrame,
    chain: np.ndarray,
    disputed: np.ndarray,
    code: np.ndarray,
    source: np.ndarray,
    key_array: np.ndarray,
) -> tuple[dict[str, tuple[Conflict, ...]], dict[str, tuple[str, ...]]]:
    """Per order key, the payments whose links name it and another order, and the charges among them.

    `disputed`: the references (indices into `chain`, `code`, `source`) of chains naming several orders."""
    conflicts: dict[str, list[Conflict]] = defaultdict(list)
    conflict_charges: dict[str, list[str]] = defaultdict(list)
    disputed = disputed[np.argsort(chain[disputed], kind="stable")]
    for mine in np.split(disputed, np.flatnonzero(np.diff(chain[disputed])) + 1) if len(disputed) else []:
        row = chains.iloc[chain[mine[0]]]
        kind = (
            ObjectKind.CHARGE
            if isinstance(row["charge_id"], str)
            else (ObjectKind.PAYMENT_INTENT if isinstance(row["pi_id"], str) else ObjectKind.CHECKOUT_SESSION)
        )
        found = Conflict(
            PaymentObject(kind, row["chain"]), tuple((_SOURCE_NAMES[source[i]], key_array[code[i]]) for i in mine)
        )
        for i in mine:
            conflicts[key_array[code[i]]].append(found)
            if kind == ObjectKind.CHARGE:
                conflict_charges[key_array[code[i]]].append(row["chain"])
    return {k: tuple(v) for k, v in conflicts.items()}, {k: tuple(v) for k, v in conflict_charges.items()}


# --------------------------------------------------------------------------- probable matches


@dataclass(frozen=True)
class Pairing:
    """A proposed pair of an unpaid order and an unreferenced charge, and why (report/wording.py words it)."""

    confidence: str  # "high", "medium" or "low"
    charge_id: str
    exact_amount: bool  # the same amount (else within the tolerance); the currency is always the same
    same_email: bool
    gap: int  # seconds from the order to the charge (negative: the charge came first)


@dataclass(frozen=True)
class Tie:
    """Candidates equally likely for one order (charge ids) or one charge (order keys): nothing was picked.

    One candidate: it fits this row and another equally well; several: they all fit this row."""

    side: str  # "order" (the candidates are charge ids) or "charge" (the candidates are order keys)
    candidates: tuple[str, ...]


@dataclass(frozen=True)
class Proposals:
    # order row, charge row (labels of the frames given), confidence, rank (best first), and the
    # pair's facts: charge_id, exact_amount, same_email, gap (seconds).
    pairs: pd.DataFrame
    # Row label -> why no pair was proposed although candidates exist (equally likely ones).
    order_notes: dict[Hashable, Tie]
    charge_notes: dict[Hashable, Tie]
    # How many pairs there would have been to weigh when there were too many: then none is proposed.
    skipped: int = 0


# Past this many candidate pairs, unreferenced charges are not a few crashed checkouts but a
# systematic gap (a link kind not configured): proposals would be noise, and costly.
MAX_PAIRS = 1_000_000


_CONFIDENCE = {3: "high", 2: "medium", 1: "medium", 0: "low"}


def _normal_email(emails: pd.Series) -> pd.Series:
    text = emails.astype(object).str.strip().str.lower()  # anything but a string becomes missing
    return text.where(text.str.len().gt(0), None)


def propose(
    orders: pd.DataFrame,
    charges: pd.DataFrame,
    drift_seconds: int,
    tolerance: int = 0,
    dismissed: frozenset[tuple[str, str]] = frozenset(),
    max_pairs: int = MAX_PAIRS,
) -> Proposals:
    """Pairs of an unpaid order and an unreferenced charge that are probably one purchase.

    `orders`: order_key, amount, currency, created, email; `charges`: charge_id, amount,
    currency, created, email (index labels are returned). A pair needs the same currency, an
    amount within `tolerance`, times within `drift_seconds` and no two different emails. Its
    level: +2 same email, +1 exact amount. Each side's best level must be held by exactly one
    candidate, and by the same pair from both sides; otherwise nothing is picked and the
    candidates are named as equally likely. A pair in `dismissed` ((order_key, charge_id) a person
    said are not one purchase) is no candidate at all.
    """
    empty = Proposals(pd.DataFrame(columns=list(_PAIR_COLUMNS)), {}, {})
    if orders.empty or charges.empty:
        return empty
    pairs, estimate = _candidate_pairs(
        _order_side(orders), _charge_side(charges), drift_seconds, tolerance, dismissed, max_pairs
    )
    if estimate > max_pairs:
        return Proposals(empty.pairs, {}, {}, skipped=estimate)
    if pairs.empty:
        return empty
    best = _best_pairs(pairs)
    order_notes, charge_notes = _tie_notes(pairs, best)
    return Proposals(_proposal_frame(best.chosen), order_notes, charge_notes)


def _order_side(orders: pd.DataFrame) -> pd.DataFrame:
    """The orders' matching columns (times as integer seconds, emails normalised); rows missing one are dropped."""
    return pd.DataFrame(
        {
            "order": orders.index,
            "order_key": orders["order_key"].astype(str).to_numpy(),
            "currency": orders["currency"].to_numpy(),
            "amount": orders["amount"].astype("Int64").to_numpy(),
            "o_created": orders["created"].astype("Int64").to_numpy(),
            "o_email": _normal_email(orders["email"]).to_numpy(),
        }
    ).dropna(subset=["currency", "amount", "o_created"])


def _charge_side(charges: pd.DataFrame) -> pd.DataFrame:
    """The charges' matching columns, as `_order_side`."""
    return pd.DataFrame(
        {
            "charge": charges.index,
            "charge_id": charges["charge_id"].to_numpy(),
            "currency": charges["currency"].to_numpy(),
            "c_amount": charges["amount"].astype("Int64").to_numpy(),
            "c_created": charges["created"].astype("Int64").to_numpy(),
            "c_email": _normal_email(charges["email"]).to_numpy(),
        }
    ).dropna(subset=["currency", "c_amount", "c_created"])


def _candidate_pairs(
    o: pd.DataFrame,
    c: pd.DataFrame,
    drift_seconds: int,
    tolerance: int,
    dismissed: frozenset[tuple[str, str]],
    max_pairs: int,
) -> tuple[pd.DataFrame, int]:
    """Every (order, charge) pair that may be one purchase, with its gap and level; and the join's size estimate.

    When the estimate exceeds `max_pairs` the join is not made (the pairs come back empty).
    """
    # Join on currency, amount and time bucket (a bucket is one drift long, so a pair within the
    # drift is at most one bucket apart): one copy of each charge per accepted amount and bucket.
    width = max(int(drift_seconds), 1)
    o["bucket"] = o["o_created"] // width
    c["bucket"] = c["c_created"] // width
    shifted = pd.concat(
        [
            c.assign(amount=c["c_amount"] + d, bucket=c["bucket"] + b)
            for d in range(-tolerance, tolerance + 1)
            for b in (-1, 0, 1)
        ],
        ignore_index=True,
    )
    on = ["currency", "amount", "bucket"]
    sizes = o.groupby(on).size().rename("o").to_frame().join(shifted.groupby(on).size().rename("c"), how="inner")
    estimate = int((sizes["o"] * sizes["c"]).sum())
    if estimate > max_pairs:
        return o.iloc[0:0], estimate
    pairs = o.merge(shifted, on=on)
    if dismissed and not pairs.empty:
        named = pd.Series(list(zip(pairs["order_key"], pairs["charge_id"], strict=True)), index=pairs.index)
        pairs = pairs.loc[~named.isin(list(dismissed))]
    if pairs.empty:
        return pairs, estimate
    gap = (pairs["c_created"] - pairs["o_created"]).astype("int64")
    same_email = pairs["o_email"].notna() & pairs["c_email"].notna() & pairs["o_email"].eq(pairs["c_email"])
    other_email = pairs["o_email"].notna() & pairs["c_email"].notna() & ~same_email
    exact = pairs["c_amount"].eq(pairs["amount"]).fillna(False).astype(bool)  # `amount` is the order's
    pairs = pairs.assign(gap=gap, level=2 * same_email.astype(int) + exact.astype(int))
    return pairs.loc[gap.abs().le(drift_seconds) & ~other_email].copy(), estimate


@dataclass(frozen=True)
class _Best:
    """Per candidate pair: whether it holds its order's (charge's) best level, and how many share that level."""

    order_top: pd.Series
    order_ties: pd.Series
    charge_top: pd.Series
    charge_ties: pd.Series
    chosen: pd.DataFrame  # the pairs best from both sides and alone there, strongest first


def _best_pairs(pairs: pd.DataFrame) -> _Best:
    """The pairs that are each side's single best candidate, from both sides."""

    def best_of(side: str) -> tuple[pd.Series, pd.Series]:
        top = pairs.groupby(side)["level"].transform("max")
        at_top = pairs["level"].eq(top)
        ties = pairs.loc[at_top].groupby(side).size()
        return at_top, pairs[side].map(ties)

    order_top, order_ties = best_of("order")
    charge_top, charge_ties = best_of("charge")
    chosen = pairs.loc[order_top & charge_top & order_ties.eq(1) & charge_ties.eq(1)]
    chosen = chosen.assign(absgap=chosen["gap"].abs()).sort_values(["level", "absgap"], ascending=[False, True])
    return _Best(order_top, order_ties, charge_top, charge_ties, chosen)


_PAIR_COLUMNS = ("order", "charge", "confidence", "rank", "charge_id", "exact_amount", "same_email", "gap")


def _proposal_frame(chosen: pd.DataFrame) -> pd.DataFrame:
    """The picked pairs as the result frame (_PAIR_COLUMNS): order, charge, confidence, rank and the pair's facts."""
    level = chosen["level"].to_numpy(dtype=np.int64)
    return pd.DataFrame(
        {
            "order": chosen["order"].to_numpy(),
            "charge": chosen["charge"].to_numpy(),
            "confidence": [_CONFIDENCE[int(v)] for v in level],
            "rank": np.arange(1, len(chosen) + 1),
            "charge_id": chosen["charge_id"].to_numpy(),
            "exact_amount": level % 2 == 1,
            "same_email": level >= 2,
            "gap": chosen["gap"].to_numpy(dtype=np.int64),
        }
    )


def pairings(pairs: pd.DataFrame) -> list[Pairing]:
    """Proposals.pairs as records, one per pair, in order."""
    return [
        Pairing(confidence, charge_id, bool(exact), bool(email), int(gap))
        for confidence, charge_id, exact, email, gap in zip(
            pairs["confidence"].tolist(),
            pairs["charge_id"].tolist(),
            pairs["exact_amount"].tolist(),
            pairs["same_email"].tolist(),
            pairs["gap"].tolist(),
            strict=True,
        )
    ]


def _tie_notes(pairs: pd.DataFrame, best: _Best) -> tuple[dict[Hashable, Tie], dict[Hashable, Tie]]:
    """Where candidates were equally likely and nothing was picked: a Tie per order row and per charge row."""
    return (
        _ties(pairs, best.order_top, best.charge_ties, best.charge_top, set(best.chosen["order"]), "order"),
        _ties(pairs, best.charge_top, best.order_ties, best.order_top, set(best.chosen["charge"]), "charge"),
    )


def _ties(
    pairs: pd.DataFrame, top: pd.Series, other_ties: pd.Series, other_top: pd.Series, done: set[Hashable], side: str
) -> dict[Hashable, Tie]:
    """The ties of one side's rows (`side`: "order" or "charge") not picked: several candidates at its
    best level, or one that is also at the best level of another row of this side."""
    candidate = "charge_id" if side == "order" else "order_key"
    at_top = pairs.loc[top]
    notes: dict[Hashable, Tie] = {}
    for label, group in at_top.loc[~at_top[side].isin(done)].groupby(side, sort=False):
        first = group.index[0]
        if len(group) > 1 or (other_ties.loc[first] > 1 and other_top.loc[first]):
            notes[label] = Tie(side, tuple(group[candidate]))
    return notes
