"""Stripe faults, injected by the stand-in over HTTP: rate limits, 5xx, timeouts, resets, bad keys.

Every test runs the real `reconcile` command (or job.run with a real SDK client) against the
stand-in and nx-27017, and checks both what the run said and what it did to the data.
Backoff pauses are shortened by configuration (stripe.retry_backoff) and, for the SDK's own
retries, by its documented class settings (stripe.HTTPClient.INITIAL_DELAY / MAX_DELAY).
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from email.utils import format_datetime

import pytest
import stripe
from conftest import API_KEY
from faultkit import (
    FAST,
    FaultLog,
    assert_each_request_once,
    assert_error_summary,
    assert_run_recorded,
    one_page_request,
)

from reconcile.config import parse_config
from reconcile.decide import classify as c
from reconcile.run import window as job
from reconcile.run.settings import window_settings
from reconcile.stripe import pull as stripe_pull
from reconcile.timeutil import utcnow

CHARGES, BALANCE = "/v1/charges", "/v1/balance_transactions"


@pytest.fixture(autouse=True)
def fast_sdk_retries(monkeypatch):
    monkeypatch.setattr(stripe.HTTPClient, "INITIAL_DELAY", 0.001)
    monkeypatch.setattr(stripe.HTTPClient, "MAX_DELAY", 0.005)


def configure(cli, **sections):
    merged = {name: dict(values) for name, values in FAST.items()}
    for name, values in sections.items():
        merged.setdefault(name, {}).update(values)
    cli.configure(**merged)
    return cli


@pytest.fixture
def fast_cli(cli):
    return configure(cli)


def snapshot(db) -> dict:
    """The shop's orders and the audit trail (run history, open items and the watermark are the job's own
    bookkeeping: a failed run is recorded there on purpose)."""
    return {name: sorted(map(repr, db[name].find())) for name in ("orders", "reconcile_audit")}


def seed_pages(shop, count: int = 250) -> None:
    """`count` healthy paid orders and charges: three pages of charges, three of balance transactions."""
    for i in range(count):
        oid = shop.order(None, status="accepted", amount=100 + i, age=timedelta(hours=1, seconds=i))
        shop.charge(oid, amount=100 + i, age=timedelta(hours=1, seconds=i))


def every_other() -> Callable[[dict], bool]:
    """A `when` for inject(): true on every second matching request, forever (a steady 50% 429 rate)."""
    counter = itertools.count()
    return lambda query: next(counter) % 2 == 0


def assert_nothing_done(result, db, before, tmp_path) -> None:
    """The run stopped before changing anything, reported nothing as complete, and said why everywhere:
    the error line, --summary-json (no completed run), the run history (failed); the watermark stays
    unset so the window is done again, and the lease was given back."""
    assert snapshot(db) == before
    assert_error_summary(result.summary, result.exit_code, result.stderr)
    assert_run_recorded(db, result.summary, "failed")
    assert db["reconcile_state"].find_one({"_id": "watermark"}) is None
    assert db["reconcile_state"].find_one({"_id": "lease"}) is None
    assert not (tmp_path / "reports").exists() or not any((tmp_path / "reports").iterdir())


# --------------------------------------------------------------------------- 429


@pytest.mark.parametrize("fault", ["429", "429_retry_after"])
def test_steady_429_rate_still_finishes_with_complete_data(fast_cli, stripe_server, shop, fault):
    # The payouts' window list asks the same query as the balance transactions' (a created range, a limit):
    # the fault log, which sees queries only, could not tell them apart. Payouts under 429s: test_payouts.py.
    # A steady 50% refusal slows the budget to a request or two a second, and a request's time bound counts
    # its waits for the budget: on a loaded machine one page can pass FAST's 30s. Completeness is the point
    # here; the bound has tests of its own (below).
    configure(fast_cli, payouts={"enabled": False}, stripe={"max_retry_time": "10m"})
    seed_pages(shop)
    stuck = shop.order(c.REPAIRED)
    shop.charge(stuck)
    refused = FaultLog(every_other())
    stripe_server.inject("/v1/", fault, times=None, when=refused, retry_after=0)
    result = fast_cli()
    assert result.exit_code == 0, result.output
    assert result.summary["counts"]["ok"] == 250 and result.summary["repaired"] == [str(stuck)]
    assert result.summary["totals"]["usd"]["charge_count"] == 251  # every balance transaction, once
    assert stripe_server.faults_served >= 6  # half of the pages were refused at least once
    assert "stripe.rate_limited" in result.stderr
    # Slices interleave, so a retry need not follow its failure at once; each is the same request again.
    for path in (CHARGES, BALANCE):  # their queries differ (charges expand), so the faults tell apart
        assert_each_request_once(stripe_server.request_log, path, refused.queries)


def test_stripe_rate_limiter_is_ridden_out(fast_cli, stripe_server, shop):
    """The stand-in's own token bucket (2 requests/second per endpoint), not injected faults."""
    seed_pages(shop)
    configure(fast_cli, stripe={"retry_backoff": "50ms", "rate_limit_retries": 30})
    stripe_server.set_rate_limit(per_endpoint=2)
    result = fast_cli()
    assert result.exit_code == 0, result.output
    assert result.summary["counts"]["ok"] == 250
    assert stripe_server.rate_limited > 0


def test_stripe_should_retry_429_is_retried_by_the_sdk(fast_cli, stripe_server, shop):
    seed_pages(shop, 120)
    refused = FaultLog()
    stripe_server.inject(CHARGES, "should_retry_429", times=2, when=refused)
    result = fast_cli()
    assert result.exit_code == 0, result.output
    assert result.summary["counts"]["ok"] == 120
    assert len(refused.queries) == 2
    assert_each_request_once(stripe_server.request_log, CHARGES, refused.queries)


def test_retry_after_is_honoured(stripe_server, store, db, now, shop, tmp_path):
    """Pauses are at least what Retry-After asks (recorded by the policy's sleep, not slept)."""
    shop.charge(shop.order(c.REPAIRED))
    stripe_server.inject(CHARGES, "429_retry_after", times=1, retry_after=7)
    stripe_server.inject(BALANCE, "429_retry_after", times=1, retry_after=3)
    config = parse_config({"stripe": {"api_base": stripe_server.url}, "mongodb": {"database": db.name}})
    pauses: list[tuple[str, float]] = []

    def sleep(seconds: float) -> None:  # the pulls run side by side: note which one paused (its thread's name)
        pauses.append((threading.current_thread().name, seconds))

    policy = stripe_pull.RetryPolicy(max_retries=5, max_total_seconds=60, base_seconds=0.001, sleep=sleep)
    client = stripe_pull.make_client(API_KEY, config.stripe)
    request = job.RunRequest(since=now - timedelta(days=1), until=now, now=now, report_dir=tmp_path)
    result = job.run(window_settings(config), client, db, request, policy=policy)
    assert result.counts[c.REPAIRED] == 1
    assert len(pauses) == 2
    by_pull = {path: [s for name, s in pauses if name.startswith(f"pull{path}:")] for path in (CHARGES, BALANCE)}
    assert len(by_pull[CHARGES]) == 1 and by_pull[CHARGES][0] >= 7
    assert len(by_pull[BALANCE]) == 1 and by_pull[BALANCE][0] >= 3


def test_retry_after_as_http_date():
    now = utcnow()
    assert stripe_pull.parse_retry_after(
        format_datetime(now + timedelta(seconds=30), usegmt=True), now
    ) == pytest.approx(30, abs=1)
    assert stripe_pull.parse_retry_after("12", now) == 12
    assert stripe_pull.parse_retry_after("soon", now) is None


def test_backoff_has_jitter_and_grows():
    policy = stripe_pull.RetryPolicy(base_seconds=1, cap_seconds=30)
    first = {round(policy.delay(0, None), 6) for _ in range(50)}
    fifth = [policy.delay(4, None) for _ in range(50)]
    assert len(first) > 40 and max(first) <= 1  # spread out, within the first step
    assert max(fifth) > 1 and max(fifth) <= 16  # the ceiling doubles each attempt
    assert policy.delay(0, 5) >= 5  # never sooner than Retry-After


def test_429_beyond_the_retry_bound_exits_3_with_nothing_partial(fast_cli, stripe_server, shop, db, tmp_path):
    seed_pages(shop, 120)
    shop.charge(shop.order(c.REPAIRED))
    configure(fast_cli, stripe={"rate_limit_retries": 3})
    stripe_server.inject(BALANCE, "429", times=None)  # charges come through, then balance never does
    before = snapshot(db)
    result = fast_cli()
    assert result.exit_code == 3, result.output
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("reconcile: error: Stripe kept rate-limiting /v1/balance_transactions: 4 attempts")
    assert "stripe.rate_limit_retries = 3" in line and "without treating partial data as complete" in line
    assert sum(1 for _, p, _ in stripe_server.request_log if p == BALANCE) == 4
    assert_nothing_done(result, db, before, tmp_path)


def test_retry_after_longer_than_the_time_bound_stops_at_once(fast_cli, stripe_server, shop, db, tmp_path):
    shop.charge(shop.order(c.REPAIRED))
    configure(fast_cli, stripe={"max_retry_time": "30s"})
    stripe_server.inject(CHARGES, "429_retry_after", times=None, retry_after=600)
    before = snapshot(db)
    result = fast_cli()
    assert result.exit_code == 3, result.output
    assert "asked to wait 600s more" in result.stderr and "stripe.max_retry_time = 30s" in result.stderr
    assert sum(1 for _, p, _ in stripe_server.request_log if p == CHARGES) == 1
    assert_nothing_done(result, db, before, tmp_path)


def test_a_request_rate_limited_past_its_time_bound_stops_with_exit_3(fast_cli, stripe_server, shop, db, tmp_path):
    """No Retry-After, and the time bound spent (a budget slowed by 429s waits too): exit 3, one line, not a crash."""
    shop.charge(shop.order(c.REPAIRED))
    configure(fast_cli, stripe={"max_retry_time": "1ms"})
    stripe_server.inject(CHARGES, "429", times=None)
    before = snapshot(db)
    result = fast_cli()
    assert result.exit_code == 3, result.output
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("reconcile: error: Stripe kept rate-limiting /v1/charges: 1 attempts over ")
    assert "stripe.max_retry_time = 0.001s" in last and "asked to wait" not in last
    assert_nothing_done(result, db, before, tmp_path)


# --------------------------------------------------------------------------- 5xx, timeouts, resets


@pytest.mark.parametrize(
    "fault, opts",
    [
        ("500", {}),
        ("503", {}),
        ("drop", {"stage": "body"}),  # reset in the middle of the response body: the SDK does not retry this
        ("drop", {"stage": "before"}),  # reset before any byte
        ("hang", {}),  # never answers: the client times out (stripe.timeout)
    ],
)
@pytest.mark.parametrize("path", [CHARGES, BALANCE])
def test_failed_page_is_retried_alone_from_its_cursor(fast_cli, stripe_server, shop, fault, opts, path):
    seed_pages(shop)
    stuck = shop.order(c.REPAIRED)
    shop.charge(stuck)
    # Only a hang needs the client to time out; every other page must be answered, however slowly.
    # Long enough that no healthy page of an in-process stand-in times out on a busy machine.
    configure(fast_cli, stripe={"timeout": "5s" if fault == "hang" else "60s"})
    # One page after the first (a request carrying a cursor), twice in a row.
    failed = FaultLog(one_page_request())
    stripe_server.inject(path, fault, times=2, when=failed, **opts)
    result = fast_cli()
    assert result.exit_code == 0, result.output
    assert result.summary["counts"]["ok"] == 250 and result.summary["repaired"] == [str(stuck)]
    assert len(failed.queries) == 2 and failed.queries[0] == failed.queries[1]
    # The failed page: once, then two retries of exactly that request (same range, same cursor);
    # every other page once, no slice restarted.
    assert_each_request_once(stripe_server.request_log, path, failed.queries)
    made = [q for _, p, q in stripe_server.request_log if p == path]
    assert made.count(failed.queries[0]) == 3
    assert result.summary["totals"]["usd"]["charge_count"] == 251  # every balance transaction, once


@pytest.mark.parametrize(
    "fault, opts",
    [
        ("500", {}),  # retried by the SDK
        ("drop", {"stage": "body"}),  # retried by the job
        ("should_not_retry_500", {}),  # Stripe says a retry would not help
    ],
)
def test_page_failing_past_the_retries_exits_3_with_nothing_changed(
    fast_cli, stripe_server, shop, db, tmp_path, fault, opts
):
    seed_pages(shop, 150)
    shop.charge(shop.order(c.REPAIRED))
    stripe_server.inject(CHARGES, fault, times=None, when=lambda q: "starting_after" in q, **opts)
    before = snapshot(db)
    result = fast_cli()
    assert result.exit_code == 3, result.output
    assert "reconcile: error: Stripe unavailable at /v1/charges" in result.stderr
    attempts = sum(1 for _, p, q in stripe_server.request_log if p == CHARGES and "starting_after" in q)
    # Bounded: 1 + stripe.max_network_retries (2), by the SDK or by the job; none when Stripe says not to.
    assert attempts == (1 if fault == "should_not_retry_500" else 3)
    assert_nothing_done(result, db, before, tmp_path)


# --------------------------------------------------------------------------- keys


def outputs(result, tmp_path, db=None) -> str:
    """Everything the run left for people: stdout, stderr (log lines), report files, summary, run history."""
    texts = [result.stdout, result.stderr]
    if result.summary:
        texts.append(json.dumps(result.summary))
    if db is not None:  # what `reconcile runs` and `reconcile show` print
        texts.extend(json.dumps(doc, default=str) for doc in db["reconcile_runs"].find())
    for path in (tmp_path / "reports").glob("*") if (tmp_path / "reports").exists() else []:
        texts.append(path.read_text())
    return "\n".join(texts)


def test_invalid_key_ends_at_once_and_never_shows(fast_cli, stripe_server, shop, db, tmp_path, monkeypatch):
    shop.charge(shop.order(c.REPAIRED))
    bad = "sk_test_51Hrevoked0keyZZ9xTail"
    monkeypatch.setenv("STRIPE_API_KEY", bad)
    before = snapshot(db)
    result = fast_cli()
    assert result.exit_code == 2, result.output
    # No retries: a wrong key does not get better. Charges and balance are asked side by side: each at
    # most once (the second may see the first's failure before it asks at all).
    asked = Counter(p for _, p, _ in stripe_server.request_log)
    assert set(asked) <= {CHARGES, BALANCE} and set(asked.values()) == {1}
    assert "Stripe rejected the API key (HTTP 401, invalid_request_error, request req_" in result.stderr
    text = outputs(result, tmp_path, db)
    assert bad not in text and bad[8:] not in text and "xTail" not in text  # not even Stripe's echoed tail
    assert_nothing_done(result, db, before, tmp_path)


def test_restricted_key_names_the_permission_it_lacks(fast_cli, stripe_server, store, shop, db, tmp_path, monkeypatch):
    shop.charge(shop.order(c.REPAIRED))
    restricted = "rk_test_51Hrestricted0keyQQ7yEnd"
    store.restricted_keys[restricted] = {BALANCE}
    monkeypatch.setenv("STRIPE_API_KEY", restricted)
    before = snapshot(db)
    result = fast_cli()
    assert result.exit_code == 2, result.output
    line = result.stderr.strip().splitlines()[-1]
    assert re.fullmatch(
        r"reconcile: error: the Stripe key may not read /v1/balance_transactions \(HTTP 403, invalid_request_error, "
        r"request req_\w+\): it lacks the permission rak_balance_read; give the restricted key read access to it, "
        r"or use another key",
        line,
    ), line
    assert sum(1 for _, p, _ in stripe_server.request_log if p == BALANCE) == 1
    text = outputs(result, tmp_path, db)
    assert restricted not in text and "yEnd" not in text
    assert_nothing_done(result, db, before, tmp_path)


def test_key_revoked_mid_pagination_stops_at_once(fast_cli, stripe_server, shop, db, tmp_path):
    seed_pages(shop, 150)
    shop.charge(shop.order(c.REPAIRED))
    stripe_server.inject(CHARGES, "401", times=None, when=lambda q: "starting_after" in q)
    before = snapshot(db)
    result = fast_cli()
    assert result.exit_code == 2, result.output
    # One page after the first and no retry of it, per pull (charges and balance page side by side; the
    # second may stop before its own next page once the first has failed).
    asked = Counter(p for _, p, q in stripe_server.request_log if "starting_after" in q)
    assert asked[CHARGES] == 1 and asked[BALANCE] <= 1 and set(asked) <= {CHARGES, BALANCE}
    assert API_KEY not in outputs(result, tmp_path, db) and API_KEY[-6:] not in outputs(result, tmp_path, db)
    assert_nothing_done(result, db, before, tmp_path)


def test_no_secret_or_card_data_in_any_output(fast_cli, stripe_server, store, shop, db, tmp_path):
    """A full run with every outcome: the key, card fingerprints and card numbers appear nowhere."""
    from reconcile.demo.shop import seed_demo_shop

    seed_demo_shop(store, db["orders"], shop.now)
    stripe_server.inject(CHARGES, "429", times=1)  # a warning line too
    result = fast_cli("--verbose")
    assert result.exit_code == 1
    text = outputs(result, tmp_path, db)
    assert API_KEY not in text and API_KEY[8:] not in text
    for card_field in ('"last4"', "AOB934RVNwzk6xtn", '"exp_month"', '"fingerprint"', "4242424242424242"):
        assert card_field not in text
    for line in result.stderr.splitlines():
        if line.startswith("{"):
            json.loads(line)  # every log line is one JSON object
