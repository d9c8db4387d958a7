"""The pure rules behind people's decisions (decide/items.py, decide/undo.py) and the [items] config."""

from __future__ import annotations

import pytest

from reconcile.config import Threshold, parse_config
from reconcile.decide import items as rules
from reconcile.decide import undo
from reconcile.errors import ConfigError

FACTS = {"kind": "amount_mismatch", "amount": 5000, "currency": "usd", "charge_id": "ch_1", "charge_ids": ["ch_1"]}


@pytest.mark.parametrize(
    "doc,finding,state,flag",
    [
        (None, FACTS, rules.OPEN, None),
        ({"state": "acknowledged", **FACTS}, FACTS, rules.ACKNOWLEDGED, None),
        ({"state": "accepted", "decided_by": "bob", "accepted_facts": rules.facts_of(FACTS)}, FACTS, "accepted", None),
        (
            {"state": "accepted", "decided_by": "bob", "accepted_facts": rules.facts_of(FACTS)},
            {**FACTS, "charge_ids": ["ch_1", "ch_2"]},
            rules.OPEN,
            "reopened: facts changed since accepted by bob: charge ids ch_1 -> ch_1, ch_2",
        ),
        (
            {"state": "resolved", "resolved_by": "carol"},
            FACTS,
            rules.OPEN,
            "still present after being marked resolved by carol",
        ),
        ({"state": "resolved", "resolved_by": "carol", "verified_at": 1}, FACTS, rules.OPEN, None),
    ],
    ids=["new", "acknowledged", "accepted-same", "accepted-changed", "resolved-still-there", "resolved-verified"],
)
def test_reopen_rules(doc, finding, state, flag):
    again = rules.seen_again(doc, finding)
    assert (again.state, again.flag) == (state, flag)
    assert again.note == flag


def test_charge_order_in_lists_is_no_change():
    assert rules.changed_facts(rules.facts_of(FACTS), rules.facts_of({**FACTS, "charge_ids": ["ch_1"]})) == []


RECORD = {
    "run_id": "r1",
    "order_key": "o1",
    "action": "repaired",
    "from_status": "created",
    "to_status": "accepted",
    "charge_id": "ch_1",
    "previous_charge_id": None,
}


@pytest.mark.parametrize(
    "now,step",
    [
        (None, undo.MISSING),
        (undo.OrderNow("accepted", "ch_1", {"run_id": "r1", "action": "repaired"}), undo.PUT_BACK),
        (undo.OrderNow("shipped", "ch_1", {"run_id": "r1", "action": "repaired"}), undo.CHANGED_SINCE),
        (undo.OrderNow("accepted", "ch_9", {"run_id": "r1", "action": "repaired"}), undo.CHANGED_SINCE),
        (undo.OrderNow("accepted", "ch_1", {"run_id": "r2", "action": "repaired"}), undo.CHANGED_SINCE),
        (undo.OrderNow("created", None, {"run_id": "u1", "action": "undo", "undid_run": "r1"}), undo.ALREADY_UNDONE),
        (undo.OrderNow("created", None, {"run_id": "u1", "action": "undo", "undid_run": "r0"}), undo.CHANGED_SINCE),
    ],
    ids=["gone", "as-left", "status-moved", "other-charge", "other-run", "undone", "undone-other-run"],
)
def test_undo_plan(now, step):
    orders = {} if now is None else {"o1": now}
    (planned,) = undo.plan([RECORD], orders)
    assert planned.step == step


def test_a_failure_mark_is_undone_without_touching_the_charge():
    record = {**RECORD, "action": "marked_failed", "to_status": "failed", "charge_id": None}
    order = undo.OrderNow("failed", "ch_kept", {"run_id": "r1", "action": "marked_failed"})
    assert undo.plan([record], {"o1": order})[0].step == undo.PUT_BACK and undo.holds(record)


def _config(items: dict) -> dict:
    return {"mongodb": {"database": "shop"}, "items": items}


def test_severity_thresholds_from_config():
    config = parse_config(_config({"severity": {"critical": [500, "2d"], "high": [50, "1d"]}}))
    assert config.items.severity == (Threshold("critical", 500, 2 * 86400), Threshold("high", 50, 86400))
    assert rules.severity(49_999, "usd", 0, config.items.severity) == "high"
    assert rules.severity(10, "usd", 0, config.items.severity) == "low"


@pytest.mark.parametrize(
    "value,message",
    [
        ({"urgent": [1, "1d"]}, "items.severity: unknown level 'urgent'"),
        ({"critical": [1000]}, 'items.severity.critical must be [amount in major units, age like "5d"]'),
        ({"critical": [1000, "soon"]}, "items.severity.critical:"),
        ("critical", "items.severity must be a table"),
    ],
)
def test_bad_severity_config_names_the_key(value, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_config(_config({"severity": value}))
