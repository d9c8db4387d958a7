"""The run's request budget: a token bucket per Stripe endpoint and one for the account.

Every request of a run (all pulls, side by side) takes one token from its endpoint's bucket and
one from the account's, so together they never ask for more than the configured rates. The
account's limit is shared with the shop's live checkout, which is why the defaults are half of
Stripe's published limits.

The buckets are GCRA (virtual scheduling): a request reserves the earliest instant both buckets
allow and sleeps until then, so waiting threads are served in order and never race each other.
A 429 lowers the rate of its endpoint and of the account (multiplicative decrease): Stripe's 429
does not say which limit was hit, and the account's is the one the shop's checkout shares. Time
without one brings each rate back up to the configured one (additive increase). So a limit lower
than configured (an account with busy checkout traffic) is found and followed rather than hammered.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

# Collections whose retrieve-by-id shares the list's bucket. Stripe counts list and retrieve as
# separate endpoints; sharing one bucket is the cautious reading (and the stand-in's).
_COLLECTIONS = (
    "/v1/checkout/sessions",
    "/v1/charges",
    "/v1/balance_transactions",
    "/v1/refunds",
    "/v1/disputes",
    "/v1/payment_intents",
    "/v1/payouts",
    "/v1/customers",
    "/v1/events",
)


# The account's bucket, by this name in the stats and logs.
ACCOUNT = "account"


def endpoint_of(path: str) -> str:
    """The bucket a request path counts against: its collection, ids and query stripped."""
    path = path.split("?", 1)[0].rstrip("/")
    for collection in _COLLECTIONS:
        if path == collection or path.startswith(collection + "/"):
            return collection
    return path


@dataclass
class _Bucket:
    configured: float
    rate: float
    burst: float  # tokens that may be taken back to back
    tat: float = 0.0  # theoretical arrival time of the next conforming request
    slowed_at: float = float("-inf")  # when the rate was last lowered
    touched: float = 0.0  # when the rate was last raised (recovery is lazy)

    def earliest(self) -> float:
        return self.tat - (self.burst - 1) / self.rate

    def take(self, at: float) -> None:
        self.tat = max(self.tat, at) + 1.0 / self.rate


@dataclass
class BudgetStats:
    requests: dict[str, int]
    throttled: dict[str, int]
    slowed: dict[str, int]
    lowest_rate: dict[str, float]
    waited_seconds: float
    waited: dict[str, float]  # seconds requests waited for a token, by endpoint (summed over requests)


class Budget:
    """Shared by every request of one run; thread-safe.

    ``per_endpoint`` and ``account`` are requests per second (None: no limit at that level).
    ``burst_seconds`` of tokens may be spent back to back (at least one token): small, so the
    server's own bucket stays nearly full and network jitter does not turn into 429s.
    """

    def __init__(
        self,
        per_endpoint: float | None,
        account: float | None,
        *,
        burst_seconds: float = 0.2,
        decrease: float = 0.7,
        floor: float = 0.1,
        recover_seconds: float = 20.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        for value in (per_endpoint, account):
            if value is not None and value <= 0:
                raise ValueError("request rates must be positive (or None for no limit)")
        self.per_endpoint = per_endpoint
        self.account = account
        self._burst_seconds = burst_seconds
        self._decrease = decrease
        self._floor = floor
        self._recover_seconds = recover_seconds
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}
        self._account = self._new_bucket(account) if account is not None else None
        self._requests: dict[str, int] = {}
        self._throttled: dict[str, int] = {}
        self._slowed: dict[str, int] = {}
        self._lowest: dict[str, float] = {}
        self._waited = 0.0
        self._waited_by: dict[str, float] = {}

    def _new_bucket(self, rate: float) -> _Bucket:
        return _Bucket(rate, rate, max(1.0, rate * self._burst_seconds), tat=self._clock())

    def rate(self, endpoint: str) -> float | None:
        """The endpoint's current rate (requests/second), None if it has no limit; ``ACCOUNT``: the account's."""
        with self._lock:
            if endpoint == ACCOUNT:
                if self._account is None:
                    return None
                self._recover(ACCOUNT, self._account, self._clock())
                return self._account.rate
            bucket = self._buckets.get(endpoint)
            if bucket is None:
                return self.per_endpoint
            self._recover(endpoint, bucket, self._clock())
            return bucket.rate

    def acquire(self, endpoint: str) -> float:
        """Wait for a token from the endpoint's and the account's bucket; returns the instant it was granted."""
        with self._lock:
            now = self._clock()
            buckets = []
            if self.per_endpoint is not None:
                bucket = self._buckets.get(endpoint)
                if bucket is None:
                    bucket = self._buckets[endpoint] = self._new_bucket(self.per_endpoint)
                self._recover(endpoint, bucket, now)
                buckets.append(bucket)
            if self._account is not None:
                self._recover(ACCOUNT, self._account, now)
                buckets.append(self._account)
            at = max([now] + [b.earliest() for b in buckets])
            for b in buckets:
                b.take(at)
            self._requests[endpoint] = self._requests.get(endpoint, 0) + 1
            self._waited += at - now
            self._waited_by[endpoint] = self._waited_by.get(endpoint, 0.0) + (at - now)
        if at > now:
            self._sleep(at - now)
        return at

    def throttled(self, endpoint: str, sent_at: float) -> None:
        """Stripe answered 429 to a request granted at ``sent_at``: slow the endpoint and the account down.

        Requests already in flight when a rate was lowered do not lower it again, so one burst
        of 429s counts once.
        """
        slowed = []
        with self._lock:
            self._throttled[endpoint] = self._throttled.get(endpoint, 0) + 1
            now = self._clock()
            for name, bucket in ((endpoint, self._buckets.get(endpoint)), (ACCOUNT, self._account)):
                if bucket is None or sent_at <= bucket.slowed_at:
                    continue
                self._recover(name, bucket, now)
                bucket.rate = max(bucket.configured * self._floor, bucket.rate * self._decrease)
                bucket.slowed_at = bucket.touched = now
                bucket.tat = max(bucket.tat, now)  # no saved-up burst right after a 429
                self._slowed[name] = self._slowed.get(name, 0) + 1
                self._lowest[name] = min(self._lowest.get(name, bucket.configured), bucket.rate)
                slowed.append((name, bucket.rate))
        for name, rate in slowed:
            log.warning("budget.slowed", extra={"endpoint": name, "requests_per_second": round(rate, 2)})

    def _recover(self, endpoint: str, bucket: _Bucket, now: float) -> None:
        if bucket.rate >= bucket.configured:
            return
        step = bucket.configured * (now - bucket.touched) / self._recover_seconds
        bucket.touched = now
        bucket.rate = min(bucket.configured, bucket.rate + step)
        if bucket.rate >= bucket.configured:
            log.info("budget.recovered", extra={"endpoint": endpoint, "requests_per_second": round(bucket.rate, 2)})

    def stats(self) -> BudgetStats:
        with self._lock:
            return BudgetStats(
                dict(self._requests),
                dict(self._throttled),
                dict(self._slowed),
                dict(self._lowest),
                self._waited,
                dict(self._waited_by),
            )
