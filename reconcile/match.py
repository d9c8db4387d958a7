"""Which order each Stripe payment belongs to, by every link a shop may use; probable pairs for the rest.

Pure: frames in, frames out. No I/O, no outcome names (classify.py decides outcomes).

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
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

CHARGE_METADATA = "charge_metadata"
PAYMENT_INTENT_METADATA = "payment_intent_metadata"
CHECKOUT_SESSION = "checkout_session"
ORDER_FIELDS = "order_fields"
LINK_KINDS = (CHARGE_METADATA, PAYMENT_INTENT_METADATA, CHECKOUT_SESSION, ORDER_FIELDS)
DEFAULT_LINK_BY = (CHARGE_METADATA, ORDER_FIELDS)

INTENT_COLUMNS = [
    "pi_id", "created", "status", "amount", "currency", "order_ref", "latest_charge", "email",
    "cancellation_reason", "livemode", "in_window",
]
SESSION_COLUMNS = [
    "session_id", "created", "status", "payment_status", "client_reference_id", "order_ref", "payment_intent",
    "amount_total", "currency", "email", "expires_at", "livemode", "in_window",
]

# Where a reference comes from: (link kind, words for a person), in strength order within a kind.
SOURCES = {
    "charge_metadata": (CHARGE_METADATA, "charge metadata"),
    "intent_metadata": (PAYMENT_INTENT_METADATA, "PaymentIntent metadata"),
    "session_client_reference_id": (CHECKOUT_SESSION, "Checkout Session client_reference_id"),
    "session_metadata": (CHECKOUT_SESSION, "Checkout Session metadata"),
    "order_charge_id": (ORDER_FIELDS, "charge id stored on the order"),
    "order_payment_intent_id": (ORDER_FIELDS, "PaymentIntent id stored on the order"),
    "order_session_id": (ORDER_FIELDS, "Checkout Session id stored on the order"),
}
_SOURCE_ORDER = {name: i for i, name in enumerate(SOURCES)}
_KIND_OF = {name: kind for name, (kind, _) in SOURCES.items()}
_WORDS_OF = {name: words for name, (_, words) in SOURCES.items()}

# States of a payment attempt with no charge, and how each reads in a report.
PROCESSING, PAID_ELSEWHERE, EXPIRED, CANCELED, OPEN, INCOMPLETE = (
    "processing", "paid_elsewhere", "expired", "canceled", "open", "incomplete",
)
ATTEMPT_STATES = (PROCESSING, PAID_ELSEWHERE, EXPIRED, CANCELED, OPEN, INCOMPLETE)
_STATE_WORDS = {
    PROCESSING: "payment processing (bank debits take days to settle)",
    PAID_ELSEWHERE: "succeeded, but its charge was not found",
    EXPIRED: "expired, the customer abandoned the checkout",
    CANCELED: "canceled",
    OPEN: "still open, the customer may still pay",
    INCOMPLETE: "never completed",
}


def intents_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(rows, columns=INTENT_COLUMNS)
    frame["in_window"] = ~frame["in_window"].eq(False)
    return frame.drop_duplicates("pi_id", keep="first").reset_index(drop=True)


def sessions_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(rows, columns=SESSION_COLUMNS)
    frame["in_window"] = ~frame["in_window"].eq(False)
    return frame.drop_duplicates("session_id", keep="first").reset_index(drop=True)


@dataclass(frozen=True)
class Links:
    # The charges, with `order_key` (the order they belong to), `link_kind` (by which link),
    # `order_ref` (the strongest reference of any kind, even to an order that does not exist)
    # and `ref_source` (where that reference comes from, for a person).
    charges: pd.DataFrame
    # Per order key: how many charge-less attempts it has in each state (ATTEMPT_STATES columns).
    attempts: pd.DataFrame
    # (order key, state) -> the first such attempt, e.g. "Checkout Session cs_test_...".
    attempt_objects: dict[tuple[str, str], str]
    # Order key -> sentences naming links that disagree about a payment involving that order.
    conflicts: dict[str, str]


def _chains(charges: pd.DataFrame, intents: pd.DataFrame, sessions: pd.DataFrame) -> pd.DataFrame:
    """One row per payment: each charge, each PaymentIntent with no charge, each session with neither."""
    by_intent = sessions.dropna(subset=["payment_intent"]).drop_duplicates("payment_intent")
    session_of = pd.Series(by_intent["session_id"].to_numpy(), index=by_intent["payment_intent"].to_numpy())
    charged = pd.Index(charges["payment_intent"].dropna().unique())
    lone_intents = intents.loc[~intents["pi_id"].isin(charged), "pi_id"]
    covered = sessions["payment_intent"].isin(charged) | sessions["payment_intent"].isin(intents["pi_id"])
    lone_sessions = sessions.loc[~covered]
    frames = [
        pd.DataFrame({
            "chain": charges["charge_id"].to_numpy(), "charge_id": charges["charge_id"].to_numpy(),
            "pi_id": charges["payment_intent"].to_numpy(),
            "session_id": charges["payment_intent"].map(session_of).to_numpy(),
        }),
        pd.DataFrame({
            "chain": lone_intents.to_numpy(), "charge_id": None, "pi_id": lone_intents.to_numpy(),
            "session_id": lone_intents.map(session_of).to_numpy(),
        }),
        pd.DataFrame({
            "chain": lone_sessions["session_id"].to_numpy(), "charge_id": None,
            "pi_id": lone_sessions["payment_intent"].to_numpy(), "session_id": lone_sessions["session_id"].to_numpy(),
        }),
    ]
    return pd.concat([f for f in frames if len(f)], ignore_index=True) if any(len(f) for f in frames) else frames[0]


def _lookup(keys: pd.Series, frame: pd.DataFrame, key: str, value: str) -> pd.Series:
    table = pd.Series(frame[value].to_numpy(), index=frame[key].to_numpy())
    return keys.map(table) if len(table) else pd.Series(None, index=keys.index, dtype=object)


def _references(
    chains: pd.DataFrame, charges: pd.DataFrame, intents: pd.DataFrame, sessions: pd.DataFrame,
    orders: pd.DataFrame, link_by: tuple[str, ...],
) -> pd.DataFrame:
    """Every (chain, referenced order, source, rank) the enabled link kinds give."""
    rank = {kind: i for i, kind in enumerate(link_by)}
    parts = []

    def add(chain: Any, ref: Any, source: str) -> None:
        kind = SOURCES[source][0]
        if kind not in rank:
            return
        part = pd.DataFrame({"chain": np.asarray(chain, dtype=object), "ref": np.asarray(ref, dtype=object)})
        part = part.loc[part["ref"].notna() & part["chain"].notna()]
        if len(part):
            parts.append(part.assign(source=source, rank=rank[kind] * 100 + _SOURCE_ORDER[source]))

    add(charges["charge_id"], charges["order_ref"], "charge_metadata")
    add(chains["chain"], _lookup(chains["pi_id"], intents, "pi_id", "order_ref"), "intent_metadata")
    add(chains["chain"], _lookup(chains["session_id"], sessions, "session_id", "client_reference_id"),
        "session_client_reference_id")
    add(chains["chain"], _lookup(chains["session_id"], sessions, "session_id", "order_ref"), "session_metadata")
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
        joined = chains.loc[chains[chain_column].notna(), ["chain", chain_column]].merge(
            stored, left_on=chain_column, right_on=column
        )
        add(joined["chain"], joined["order_key"], source)
    if not parts:
        return pd.DataFrame({"chain": [], "ref": [], "source": [], "rank": []})
    return pd.concat(parts, ignore_index=True).sort_values("rank", kind="stable")


def _attempt_states(lone: pd.DataFrame, intents: pd.DataFrame, sessions: pd.DataFrame) -> np.ndarray:
    pi_status = _lookup(lone["pi_id"], intents, "pi_id", "status")
    s_status = _lookup(lone["session_id"], sessions, "session_id", "status")
    s_paid = _lookup(lone["session_id"], sessions, "session_id", "payment_status")
    complete = s_status.eq("complete")
    conditions = [
        pi_status.eq("processing") | (complete & s_paid.eq("unpaid")),
        pi_status.isin(["succeeded", "requires_capture"]) | (complete & s_paid.isin(["paid", "no_payment_required"])),
        s_status.eq("expired"),  # Checkout cancels the PaymentIntent of an expired session: abandonment, not failure
        pi_status.eq("canceled"),
        s_status.eq("open"),
    ]
    return np.select([c.to_numpy(dtype=bool) for c in conditions], list(ATTEMPT_STATES[:5]), default=INCOMPLETE)


def link(
    charges: pd.DataFrame, orders: pd.DataFrame, intents: pd.DataFrame, sessions: pd.DataFrame,
    link_by: tuple[str, ...] = DEFAULT_LINK_BY,
) -> Links:
    """Link every charge and charge-less attempt to one order by its strongest link; find conflicts."""
    chains = _chains(charges, intents, sessions)
    refs = _references(chains, charges, intents, sessions, orders, link_by)
    keys = pd.Index(orders["order_key"].dropna().unique())

    strongest = refs.drop_duplicates("chain")  # any reference, even to an order that does not exist
    existing = refs.loc[refs["ref"].isin(keys)].drop_duplicates(["chain", "ref"])
    named = existing.groupby("chain")["ref"].transform("size") if len(existing) else pd.Series(dtype=int)
    winner = existing.drop_duplicates("chain").set_index("chain")
    order_of = winner["ref"]
    charge_ids = charges["charge_id"]
    strongest = strongest.set_index("chain")
    linked = charges.assign(
        order_key=charge_ids.map(order_of).astype(object),
        link_kind=charge_ids.map(winner["source"].map(_KIND_OF)).astype(object),
        order_ref=charge_ids.map(strongest["ref"]).astype(object),
        ref_source=charge_ids.map(strongest["source"].map(_WORDS_OF)).astype(object),
    )

    lone = chains.loc[chains["charge_id"].isna()].copy()
    lone["order_key"] = lone["chain"].map(order_of)
    lone = lone.loc[lone["order_key"].notna()]
    attempts = pd.DataFrame(0, index=pd.Index([], name="order_key"), columns=list(ATTEMPT_STATES))
    objects: dict[tuple[str, str], str] = {}
    if len(lone):
        lone["state"] = _attempt_states(lone, intents, sessions)
        attempts = (
            lone.groupby(["order_key", "state"]).size().unstack(fill_value=0)
            .reindex(columns=list(ATTEMPT_STATES), fill_value=0)
        )
        first = lone.drop_duplicates(["order_key", "state"])
        label = [f"Checkout Session {s}" if isinstance(s, str) else f"PaymentIntent {p}"
                 for s, p in zip(first["session_id"], first["pi_id"])]
        objects = dict(zip(zip(first["order_key"], first["state"]), label))

    conflicts: dict[str, list[str]] = defaultdict(list)
    if len(existing):
        disputed = existing.loc[named.gt(1)]
        what = chains.set_index("chain")
        for chain, group in disputed.groupby("chain", sort=False):  # few: each one needs a person
            row = what.loc[chain]
            noun = "charge" if isinstance(row["charge_id"], str) else (
                "PaymentIntent" if isinstance(row["pi_id"], str) else "Checkout Session")
            claims = "; ".join(f"{SOURCES[s][1]} names order {r}" for r, s in zip(group["ref"], group["source"]))
            for ref in group["ref"]:
                conflicts[ref].append(f"{noun} {chain}: {claims}")
    return Links(linked, attempts, objects, {k: " | ".join(v) for k, v in conflicts.items()})


def attempt_words(state: str) -> str:
    return _STATE_WORDS[state]


# --------------------------------------------------------------------------- probable matches


@dataclass(frozen=True)
class Proposals:
    # order row, charge row (labels of the frames given), confidence word, rank (best first).
    pairs: pd.DataFrame
    # Row label -> why no pair was proposed although candidates exist (equally likely ones).
    order_notes: dict[Any, str]
    charge_notes: dict[Any, str]


_CONFIDENCE = {3: "high", 2: "medium", 1: "medium", 0: "low"}


def _normal_email(emails: pd.Series) -> pd.Series:
    text = emails.where(emails.map(lambda v: isinstance(v, str)), None)
    text = text.str.strip().str.lower()
    return text.where(text.str.len().gt(0), None)


def propose(orders: pd.DataFrame, charges: pd.DataFrame, drift_seconds: int, tolerance: int = 0) -> Proposals:
    """Pairs of an unpaid order and an unreferenced charge that are probably one purchase.

    `orders`: order_key, amount, currency, created, email; `charges`: charge_id, amount,
    currency, created, email (index labels are returned). A pair needs the same currency, an
    amount within `tolerance`, times within `drift_seconds` and no two different emails. Its
    level: +2 same email, +1 exact amount. Each side's best level must be held by exactly one
    candidate, and by the same pair from both sides; otherwise nothing is picked and the
    candidates are named as equally likely.
    """
    empty = Proposals(pd.DataFrame(columns=["order", "charge", "confidence", "rank", "detail"]), {}, {})
    if orders.empty or charges.empty:
        return empty
    o = pd.DataFrame({
        "order": orders.index, "order_key": orders["order_key"].astype(str).to_numpy(),
        "currency": orders["currency"].to_numpy(), "amount": orders["amount"].astype("Int64").to_numpy(),
        "o_created": orders["created"].astype("Int64").to_numpy(), "o_email": _normal_email(orders["email"]).to_numpy(),
    }).dropna(subset=["currency", "amount", "o_created"])
    c = pd.DataFrame({
        "charge": charges.index, "charge_id": charges["charge_id"].to_numpy(),
        "currency": charges["currency"].to_numpy(), "c_amount": charges["amount"].astype("Int64").to_numpy(),
        "c_created": charges["created"].astype("Int64").to_numpy(), "c_email": _normal_email(charges["email"]).to_numpy(),
    }).dropna(subset=["currency", "c_amount", "c_created"])
    # Amounts within the tolerance: one copy of each (few) charge per accepted difference.
    shifted = pd.concat([c.assign(amount=c["c_amount"] + d) for d in range(-tolerance, tolerance + 1)], ignore_index=True)
    pairs = o.merge(shifted, on=["currency", "amount"])
    if pairs.empty:
        return empty
    gap = (pairs["c_created"] - pairs["o_created"]).astype("int64")
    same_email = pairs["o_email"].notna() & pairs["c_email"].notna() & pairs["o_email"].eq(pairs["c_email"])
    other_email = pairs["o_email"].notna() & pairs["c_email"].notna() & ~same_email
    exact = pairs["c_amount"].eq(pairs["amount"]).fillna(False).astype(bool)  # `amount` is the order's
    pairs = pairs.assign(gap=gap, level=2 * same_email.astype(int) + exact.astype(int))
    pairs = pairs.loc[gap.abs().le(drift_seconds) & ~other_email].copy()
    if pairs.empty:
        return empty

    def best_of(side: str) -> tuple[pd.Series, pd.Series]:
        top = pairs.groupby(side)["level"].transform("max")
        at_top = pairs["level"].eq(top)
        ties = pairs.loc[at_top].groupby(side).size()
        return at_top, pairs[side].map(ties)

    order_top, order_ties = best_of("order")
    charge_top, charge_ties = best_of("charge")
    chosen = pairs.loc[order_top & charge_top & order_ties.eq(1) & charge_ties.eq(1)]
    chosen = chosen.assign(absgap=chosen["gap"].abs()).sort_values(["level", "absgap"], ascending=[False, True])

    details = []
    for row in chosen.itertuples():
        reasons = "same amount and currency" if row.level % 2 else "same currency, amount within the tolerance"
        if row.level >= 2:
            reasons += ", same email"
        minutes = abs(int(row.gap)) // 60
        when = f"{minutes}m {'after' if row.gap >= 0 else 'before'} the order" if minutes else "within a minute of the order"
        details.append(
            f"probable match ({_CONFIDENCE[int(row.level)]} confidence): charge {row.charge_id} has no order "
            f"reference; {reasons}; charged {when}. Confirm by hand: never repaired automatically"
        )
    result = pd.DataFrame({
        "order": chosen["order"].to_numpy(), "charge": chosen["charge"].to_numpy(),
        "confidence": [_CONFIDENCE[int(v)] for v in chosen["level"]], "rank": np.arange(1, len(chosen) + 1),
        "detail": details,
    })

    # Say so where candidates were equally likely and nothing was picked.
    done_orders, done_charges = set(chosen["order"]), set(chosen["charge"])
    top = pairs.loc[order_top]
    order_notes: dict[Any, str] = {}
    for order, group in top.loc[~top["order"].isin(done_orders)].groupby("order", sort=False):
        if len(group) > 1:
            order_notes[order] = (f"{len(group)} unreferenced charges fit this order equally well "
                                  f"({', '.join(group['charge_id'])}): none picked")
        elif charge_ties.loc[group.index[0]] > 1 and charge_top.loc[group.index[0]]:
            order_notes[order] = (f"charge {group['charge_id'].iloc[0]} fits this order and another equally well: "
                                  "none picked")
    top = pairs.loc[charge_top]
    charge_notes: dict[Any, str] = {}
    for charge, group in top.loc[~top["charge"].isin(done_charges)].groupby("charge", sort=False):
        if len(group) > 1:
            charge_notes[charge] = (f"{len(group)} unpaid orders fit this charge equally well "
                                    f"({', '.join(group['order_key'])}): none picked")
        elif order_ties.loc[group.index[0]] > 1 and order_top.loc[group.index[0]]:
            charge_notes[charge] = (f"order {group['order_key'].iloc[0]} fits this charge and another equally well: "
                                    "none picked")
    return Proposals(result, order_notes, charge_notes)
