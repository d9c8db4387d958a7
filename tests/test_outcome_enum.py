"""The outcome enums know about themselves: their attributes match the README's outcomes table and the report's words."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from reconcile.decide import classify as c
from reconcile.decide import movements
from reconcile.report import wording

README = Path(__file__).resolve().parent.parent / "README.md"


def _readme_outcomes() -> dict[str, str]:
    """Each outcome of the README's table (## Outcomes) -> its action column."""
    section = README.read_text(encoding="utf-8").split("## Outcomes", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z_]+)` \|.*\| ([^|]+) \|$", section, flags=re.MULTILINE)
    return {code: action.strip() for code, action in rows}


ROWS = _readme_outcomes()
# The outcomes the job settles itself: a compare-and-set change of the order's status.
AUTOMATIC = {"repaired", "marked_failed"}


def test_the_readme_lists_every_outcome_in_order():
    assert list(ROWS) == [o.value for o in c.Outcome]


@pytest.mark.parametrize("outcome", list(c.Outcome), ids=str)
def test_each_outcome_carries_what_the_readme_says(outcome: c.Outcome):
    action = ROWS[outcome.value]
    assert outcome.needs_person == ("**needs a person**" in action)
    assert outcome.automatic == (outcome.value in AUTOMATIC)
    assert outcome.automatic == action.startswith("set to the")
    assert not (outcome.automatic and outcome.needs_person)
    assert outcome.label_key == outcome.value == str(outcome) == f"{outcome}"
    assert wording.OUTCOME_TITLES[outcome.label_key]


def test_derived_tuples_come_from_the_members():
    assert c.OUTCOMES == tuple(c.Outcome)
    assert set(c.NEEDS_PERSON) == {o for o in c.Outcome if o.needs_person}
    assert set(c.HANDLED) == {c.REPAIRED, c.MARKED_FAILED}
    assert set(c.NEEDS_EDGE_LOOK) == {c.PAID_WITHOUT_CHARGE, c.STALE_PENDING, c.PROBABLE_MATCH}
    assert set(c.UNPAID_OUTCOMES) == {c.STALE_PENDING, c.MARKED_FAILED, c.PAID_WITHOUT_CHARGE}


@pytest.mark.parametrize(
    ("kind", "needs_person"),
    [
        (movements.REFUND_FAILED, True),
        (movements.REFUNDED_ORDER_STILL_PAID, True),
        (movements.DISPUTE_OPEN, True),
        (movements.DISPUTE_LOST, True),
        (movements.REFUND, False),
        (movements.PARTIAL_REFUND, False),
        (movements.DISPUTE_CLOSED, False),
    ],
    ids=str,
)
def test_each_movement_kind_knows_whether_it_needs_a_person(kind: movements.MovementKind, needs_person: bool):
    assert kind.needs_person is needs_person
    assert wording.MOVEMENT_TITLES[kind.label_key]
    if needs_person and kind != movements.DISPUTE_OPEN:  # an open dispute's next step has its due date
        assert kind in wording.NEXT_STEPS
