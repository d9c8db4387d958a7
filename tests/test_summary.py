"""The run summary (issue 10, item 2; issue 13, item 6): typed, serialised once, every outcome other than
ok listed with `needs_person`, and `reconcile runs --json` in the summary's keys and time format."""

from __future__ import annotations

import json
import re
from datetime import timedelta

from reconcile.decide import classify as c

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def seed(shop) -> dict[str, str]:
    stuck = shop.order(c.REPAIRED)
    shop.charge(stuck)
    stale = shop.order(c.STALE_PENDING, age=timedelta(hours=3))  # created, no charge, past the grace period
    fresh = shop.order(c.IN_FLIGHT, age=timedelta(minutes=1))  # created a minute ago: left alone
    differs = shop.order(c.AMOUNT_MISMATCH, status="accepted", amount=5000)
    shop.charge(differs, amount=4500)
    return {"stale": str(stale), "fresh": str(fresh), "differs": str(differs), "stuck": str(stuck)}


def test_discrepancies_list_every_outcome_but_ok_with_needs_person(cli, shop):
    ids = seed(shop)
    result = cli()
    assert result.exit_code == 1, result.output
    summary = result.summary
    found = {d["order_id"]: d for d in summary["discrepancies"]}
    assert (found[ids["stale"]]["outcome"], found[ids["stale"]]["needs_person"]) == (c.STALE_PENDING, False)
    assert (found[ids["fresh"]]["outcome"], found[ids["fresh"]]["needs_person"]) == (c.IN_FLIGHT, False)
    assert (found[ids["differs"]]["outcome"], found[ids["differs"]]["needs_person"]) == (c.AMOUNT_MISMATCH, True)
    assert found[ids["stuck"]]["outcome"] == c.REPAIRED
    assert len(summary["discrepancies"]) == sum(n for o, n in summary["counts"].items() if o != c.OK)
    assert summary["needs_attention"] == sum(1 for d in summary["discrepancies"] if d["needs_person"])


def test_runs_json_shares_the_summarys_keys_and_time_format(cli, shop):
    ids = seed(shop)
    summary = cli().summary
    listed = cli("runs", "--json")
    assert listed.exit_code == 0, listed.output
    [run] = [json.loads(line) for line in listed.output.splitlines()]
    assert run["run_id"] == summary["run_id"] and "_id" not in run
    assert run["window"] == summary["window"]
    assert run["repaired"] == summary["repaired"] == [ids["stuck"]] and run["repaired_count"] == 1
    assert run["marked_failed"] == summary["marked_failed"] == []
    assert (run["counts"], run["needs_attention"], run["report"]) == (
        summary["counts"],
        summary["needs_attention"],
        summary["report"],
    )
    assert all(ISO.match(run[k]) for k in ("at", "started", "finished")), run
    assert run["changes_reported"]
