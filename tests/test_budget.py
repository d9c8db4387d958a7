"""The request budget's arithmetic, on a fake clock (the real-server checks are in test_pull_concurrent.py)."""

from __future__ import annotations

import pytest

from reconcile.stripe.budget import Budget, endpoint_of


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds


def budget(per_endpoint, account, **kwargs) -> tuple[Budget, FakeClock]:
    clock = FakeClock()
    return Budget(per_endpoint, account, clock=clock, sleep=clock.sleep, **kwargs), clock


def grants(b: Budget, endpoint: str, n: int) -> list[float]:
    return [b.acquire(endpoint) for _ in range(n)]


def test_endpoint_rate_spaces_requests_after_a_small_burst():
    b, clock = budget(10, None, burst_seconds=0.2)
    times = grants(b, "/v1/charges", 12)
    assert times[:2] == [1000.0, 1000.0]  # two tokens of burst
    gaps = [round(later - earlier, 9) for earlier, later in zip(times[1:], times[2:], strict=False)]
    assert gaps == [0.1] * 10
    # Over any stretch, no more than burst + rate * seconds.
    assert times[-1] - times[0] == pytest.approx(1.0)


def test_account_bucket_is_shared_by_endpoints():
    b, clock = budget(100, 10, burst_seconds=0.1)
    times = [b.acquire(path) for path in ["/v1/charges", "/v1/balance_transactions"] * 6]
    assert times[-1] - times[0] == pytest.approx(1.1)  # 12 requests at 10/s across both


def test_endpoints_do_not_share_their_own_buckets():
    b, clock = budget(5, None, burst_seconds=0.2)
    charges = grants(b, "/v1/charges", 1)
    balance = grants(b, "/v1/balance_transactions", 1)
    assert charges == balance == [1000.0]


def test_no_limits_never_waits():
    b, clock = budget(None, None)
    assert set(grants(b, "/v1/charges", 50)) == {1000.0}
    assert b.stats().waited_seconds == 0


def test_429_slows_the_endpoint_once_per_burst_then_it_recovers():
    b, clock = budget(20, None, decrease=0.5, recover_seconds=10)
    sent = grants(b, "/v1/charges", 5)
    for at in sent:  # five requests in flight all come back 429: one decrease
        b.throttled("/v1/charges", at)
    assert b.rate("/v1/charges") == pytest.approx(10, abs=0.01)
    assert b.stats().throttled == {"/v1/charges": 5} and b.stats().slowed == {"/v1/charges": 1}
    clock.now += 0.001
    later = b.acquire("/v1/charges")
    b.throttled("/v1/charges", later)  # sent after the decrease: counts again
    assert b.rate("/v1/charges") == pytest.approx(5, abs=0.01)
    clock.now += 2.5  # additive increase: 20 per 10 s, so 2.5 s brings back 5
    assert b.rate("/v1/charges") == pytest.approx(10, abs=0.01)
    clock.now += 60
    assert b.rate("/v1/charges") == pytest.approx(20)  # never above the configured rate
    assert b.stats().lowest_rate["/v1/charges"] == pytest.approx(5, abs=0.01)


def test_rate_never_falls_below_the_floor():
    b, clock = budget(10, None, decrease=0.1, floor=0.2)
    for _ in range(5):
        b.throttled("/v1/charges", b.acquire("/v1/charges"))
    assert b.rate("/v1/charges") == pytest.approx(2)


def test_slowed_rate_spaces_requests_wider():
    b, clock = budget(10, None, burst_seconds=0.1, decrease=0.5, recover_seconds=1e9)
    b.throttled("/v1/charges", b.acquire("/v1/charges"))
    times = grants(b, "/v1/charges", 4)
    assert [round(t2 - t1, 6) for t1, t2 in zip(times, times[1:], strict=False)] == [0.2, 0.2, 0.2]


def test_endpoint_of_strips_ids():
    assert endpoint_of("/v1/charges/ch_123") == "/v1/charges"
    assert endpoint_of("/v1/charges") == "/v1/charges"
    assert endpoint_of("/v1/checkout/sessions/cs_test_abc") == "/v1/checkout/sessions"
    assert endpoint_of("/v1/balance_transactions?limit=3") == "/v1/balance_transactions"
    assert endpoint_of("/v1/unknown/thing") == "/v1/unknown/thing"


def test_rates_must_be_positive():
    with pytest.raises(ValueError):
        Budget(0, None)


def test_a_429_lowers_the_account_bucket_as_well_as_the_endpoints():
    from reconcile.stripe.budget import ACCOUNT

    b, clock = budget(12.5, 12.5, decrease=0.5, recover_seconds=1e9)
    b.throttled("/v1/charges", b.acquire("/v1/charges"))
    assert b.rate("/v1/charges") == pytest.approx(6.25) and b.rate(ACCOUNT) == pytest.approx(6.25)
    # Other endpoints keep their own rate, but together they now wait for the slower account.
    assert b.rate("/v1/payment_intents") == pytest.approx(12.5)
    clock.now += 10
    times = [b.acquire(path) for path in ["/v1/payment_intents", "/v1/balance_transactions"] * 10]
    assert times[-1] - times[0] >= 17 / 6.25  # 20 requests at the lowered 6.25/s (less a small burst)
    assert b.stats().slowed == {"/v1/charges": 1, ACCOUNT: 1}


@pytest.mark.parametrize(
    ("key", "account"), [("sk_test_abc", 12.5), ("rk_test_abc", 12.5), ("sk_live_abc", 50.0), ("rk_live_abc", 50.0)]
)
def test_a_test_mode_key_defaults_to_half_the_sandbox_account_limit(monkeypatch, key, account):
    """Stripe's sandbox account limit is 25/s (live: 100/s): the default takes half of either."""
    from reconcile.config import parse_config
    from reconcile.stripe.pull import RetryPolicy

    config = parse_config({"mongodb": {"database": "shop"}}, "test")
    monkeypatch.setenv(config.stripe.api_key_env, key)
    policy = RetryPolicy.from_config(config.stripe, config.test_mode_key())
    assert policy.budget is not None and policy.budget.account == account
    clock = FakeClock()
    policy.budget._clock, policy.budget._sleep = clock, clock.sleep
    policy.budget._account.tat = clock.now
    # Three pulls side by side (charges, PaymentIntents, balance transactions) for one second.
    paths = ["/v1/charges", "/v1/payment_intents", "/v1/balance_transactions"]
    granted = [policy.budget.acquire(paths[n % 3]) for n in range(60)]
    in_first_second = sum(1 for t in granted if t < granted[0] + 1.0)
    assert in_first_second <= account + max(1.0, account * 0.2)


def test_an_explicit_account_rate_wins_over_the_keys_mode(monkeypatch):
    from reconcile.config import parse_config

    config = parse_config({"mongodb": {"database": "shop"}, "stripe": {"account_requests_per_second": 20}}, "t")
    monkeypatch.setenv(config.stripe.api_key_env, "sk_test_abc")
    from reconcile.config import account_rate

    assert account_rate(config.stripe, config.test_mode_key()) == 20
