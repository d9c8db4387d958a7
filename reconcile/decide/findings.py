"""A finding: something a run found that a person may need to look at, as the items collection records it.

Built by decide/items.py (`core_findings`, from the classified outcomes) and decide/movements.py
(`evaluate`, refunds and disputes); store/items.py keeps the fields in `CARRIED` on the item.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NotRequired, TypedDict


class ItemKind(StrEnum):
    """A kind of finding (classify.Outcome, movements.MovementKind, payouts.PayoutOutcome, bank.BankOutcome): a
    code that knows whether a person must act, and where its title and next step are (report/wording.py).
    Members are `CODE = "code", needs_person`; a kind with more to know defines its own `__new__`."""

    needs_person: bool

    def __new__(cls, code: str, needs_person: bool = False) -> ItemKind:
        member = str.__new__(cls, code)
        member._value_ = code
        member.needs_person = needs_person
        return member

    @property
    def label_key(self) -> str:
        """The key of the kind's title and next step in report/wording.py."""
        return self.value


class Finding(TypedDict):
    key: str  # stable across runs: the same thing found again is the same item
    kind: str  # an outcome (decide/classify.py) or a movement kind (decide/movements.py)
    needs_person: bool
    source: str  # "order", "charge", "refund" or "dispute"
    order_key: str | None
    charge_id: str | None
    charge_ids: list[str]
    object_id: str | None  # the refund or dispute
    anchor: int | None  # unix seconds: the window that can judge it again
    amount: int | None  # minor units
    currency: str | None
    detail: str | None
    deadline: int | None  # unix seconds a person must act by
    livemode: bool | None
    email: str | None
    order_status: str | None
    charge_amount: int | None
    # Core findings only: facts an acceptance holds to (decide.items.facts_of), and the money at stake
    # (decide.items.at_stake: not a fact, how it is counted may change).
    amount_refunded: NotRequired[int | None]
    disputed: NotRequired[bool]  # core findings: the paid charge is disputed
    at_stake: NotRequired[int | None]
    expected_end: NotRequired[int | None]  # core findings: unix seconds the order's payment should have settled by
    # Refunds and disputes only.
    object_status: NotRequired[str | None]
    created: NotRequired[int]
    charge_currency: NotRequired[str | None]
    charge_created: NotRequired[int | None]
    order_amount: NotRequired[int | None]
    order_currency: NotRequired[str | None]
