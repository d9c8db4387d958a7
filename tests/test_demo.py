"""`reconcile demo`, the README's first command: the whole invocation on a seeded shop, kept for the commands after it."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import mongomock
from click.testing import CliRunner

from reconcile.cli import main
from reconcile.cli.common import DEMO_KEY_ENV
from reconcile.demo.kept_shop import is_demo_config
from reconcile.demo.shop import DEMO_KEY, KEY_ENV, URI_ENV, seed_demo_shop
from reconcile.demo.standin import RESOURCES, StandinStore
from reconcile.timeutil import utcnow


def test_demo_matches_the_seeded_mix_and_reports_refunds_disputes_and_items(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "")  # the demo sets these; monkeypatch puts them back afterwards
    monkeypatch.setenv(URI_ENV, "")
    monkeypatch.chdir(tmp_path)  # the demo keeps its shop in the current directory
    result = CliRunner().invoke(main, ["demo", "--report-dir", str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "demo: every outcome matches the seeded mix" in result.output
    (html,) = tmp_path.glob("reconcile-*.html")
    text = html.read_text()
    assert text.index('id="headline"') < text.index('id="queue"') < text.index("What this run found")
    assert "Refunds and disputes created in this window" in text and "Dispute open" in text
    assert "Next: refund the second charge" in text and "Trend, last 14 days" in text
    # Payouts: the section, and the failed one in the work queue with the bank's reason in words.
    assert 'id="payouts"' in text and "Payout failed" in text and "the bank account has been closed" in text
    assert "1 payout failed" in result.output
    assert "not itemized: nothing reached the bank<" in text  # said once: the title says where the money went
    assert "the money went back to the balance" not in text
    assert len(list(tmp_path.glob("payouts-*.csv"))) == 1
    # The bank leg: a statement beside the shop, the day's payout on it, both outcomes for a person.
    assert (tmp_path / "reconcile-demo" / "bank-statement.csv").is_file()
    said = " ".join(result.output.split())  # the summary's lines are wrapped at 78 columns
    assert "1 bank deposit unmatched" in said and "1 payout not in bank" in said
    assert "Payout not on the bank statement" in text and "Stripe deposit no payout explains" in text
    # What it says is for a person adds up to the count it gives, and is what `reconcile items` lists.
    match = re.search(r"for a person \((\d+)\): (.*?) report:", said)
    assert match is not None, said
    listed = [part.split(" ", 1) for part in match.group(2).split(", ")]
    assert sum(int(n) for n, _ in listed) == int(match.group(1))
    assert "stale pending" not in match.group(2) and "1 dispute open" in match.group(2)
    assert "on the bank " in text and "GB33BUKB" not in text
    # Kept for the commands after it: the shop and a config naming it, with no secret in it.
    assert "kept: the demo shop in reconcile-demo/ and its config in reconcile.toml" in result.output
    config = (tmp_path / "reconcile.toml").read_text()
    assert config == (tmp_path / "reconcile-demo" / "reconcile.toml").read_text()
    assert is_demo_config(tmp_path / "reconcile.toml") and "sk_test" not in config
    assert (tmp_path / "reconcile-demo" / "stripe.json").is_file()


def test_demo_twice_starts_afresh_and_leaves_a_config_that_is_not_its_own(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "")
    monkeypatch.setenv(URI_ENV, "")
    monkeypatch.chdir(tmp_path)
    mine = '[mongodb]\ndatabase = "shop"\n'
    (tmp_path / "reconcile.toml").write_text(mine)
    first = CliRunner().invoke(main, ["demo", "--report-dir", str(tmp_path)], catch_exceptions=False)
    assert first.exit_code == 0, first.output
    assert "starting afresh" not in first.output
    second = CliRunner().invoke(main, ["demo", "--report-dir", str(tmp_path)], catch_exceptions=False)
    assert second.exit_code == 0, second.output
    assert "demo: starting afresh: the shop an earlier demo kept in reconcile-demo/ is replaced" in second.output
    assert "demo: every outcome matches the seeded mix" in second.output
    assert (tmp_path / "reconcile.toml").read_text() == mine  # a person's config is never overwritten
    assert "reconcile.toml here is not the demo's and is left alone" in second.output
    assert "--config reconcile-demo/reconcile.toml" in second.output


def test_the_cli_knows_the_demo_config_by_the_demo_key_variable():
    assert DEMO_KEY_ENV == KEY_ENV  # the CLI checks for it without importing the demo package


def test_the_kept_stripe_data_loads_back_the_same_objects_ids_and_order(tmp_path):
    """What `reconcile demo` saves is what the commands after it serve: every list, expanded, byte for byte."""
    store = StandinStore(api_key=DEMO_KEY)
    seed_demo_shop(store, mongomock.MongoClient()["shop"]["orders"], utcnow())
    txn = json.loads(store.list_page("balance_transaction", limit=1))["data"][0]["id"]
    hour_ago = int((utcnow() - timedelta(hours=1)).timestamp())
    payout = store.create_payout(amount=1000, created=hour_ago, transactions=[txn])
    store.save(tmp_path / "stripe.json")
    loaded = StandinStore.load(tmp_path / "stripe.json", DEMO_KEY)
    for name, resource in RESOURCES.items():
        expand = {field: {} for field in resource.expandable}
        assert loaded.list_page(name, limit=100, expand=expand) == store.list_page(name, limit=100, expand=expand)
    paid_out = {"payout": payout["id"]}
    assert loaded.list_page("balance_transaction", filters=paid_out) == store.list_page(
        "balance_transaction", filters=paid_out
    )
    assert json.loads(loaded.list_page("balance_transaction", filters=paid_out))["data"]
    assert loaded.new_id("ch_") == store.new_id("ch_")  # the same ids for what is added next
    assert DEMO_KEY not in (tmp_path / "stripe.json").read_text()
