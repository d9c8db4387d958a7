"""Pull Stripe objects for a window, through the official SDK.

Pages come from `StripeClient.raw_request` and are parsed JSON dicts: building SDK objects
costs ~10x the CPU per page, and the job keeps only a few fields of each object anyway.
The SDK still does requests, auth, 5xx/connection retries and error mapping; rate limits
(429), which it does not retry, are handled here.

The body of a successful answer is parsed by orjson, not by the SDK: stripe 16's `StripeResponse`
parses every body into `OrderedDict`s as it is built (`_stripe_response.py`), twice plain `json`'s
cost and ~8x orjson's. The job's HTTP client (`KeptBodyClient`, given to the SDK through its public
`http_client` option) keeps a 2xx body for the request that asked for it and hands the SDK `{}` in
its place; error answers pass through untouched, so the SDK's error mapping stays whole. Every request takes its token from the
run's shared budget (reconcile/stripe/budget.py); windows are pulled as concurrent time slices
(reconcile/stripe/slices.py).
"""

from __future__ import annotations

import email.utils
import logging
import math
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import orjson
import stripe

from reconcile.config import StripeConfig, account_rate
from reconcile.decide import columns
from reconcile.decide.inputs import BalanceRow, ChargeRow, IntentRow, SessionRow
from reconcile.errors import ConfigError, StripeAuthError, StripeKeyRejected, StripeRequestError, StripeUnavailable
from reconcile.runtime import interrupt
from reconcile.runtime.redact import network_cause, network_host, stripe_facts
from reconcile.stripe import fetch
from reconcile.stripe import slices as pull_plan
from reconcile.stripe.budget import Budget, endpoint_of
from reconcile.stripe.wire import Params, StripeObject
from reconcile.timeutil import to_unix

log = logging.getLogger(__name__)

# Lists Stripe documents as sorted newest first ("sorted by creation date, with the most recent ...
# appearing first"): charges, balance transactions, refunds; payouts ("The payouts return in sorted
# order, with the most recently created payouts appearing first"). Of PaymentIntents, Checkout
# Sessions and disputes it says only "Returns a list": those are walked by cursor alone (slices.py).
ORDERED_LISTS = frozenset({"/v1/charges", "/v1/balance_transactions", "/v1/refunds", "/v1/payouts"})
# A Stripe id as it may appear in a URL path (ids from order documents are checked against it).
SAFE_ID = re.compile(r"^[A-Za-z0-9_]{3,255}$")


# The body of the last 2xx answer, per thread, for the `request` that asked for it (see the docstring).
_kept = threading.local()


class KeptBodyClient(stripe.RequestsClient):
    """The SDK's `requests` HTTP client, keeping a successful answer's body for `request` to parse."""

    def request(self, method: str, url: str, headers: Any, post_data: Any = None, **kwargs: Any) -> Any:
        content, status, response_headers = super().request(method, url, headers, post_data, **kwargs)
        if getattr(_kept, "wanted", False) and 200 <= status < 300:
            _kept.body = content
            return b"{}", status, response_headers
        return content, status, response_headers


def _raw_get(client: stripe.StripeClient, path: str, params: Params) -> StripeObject:
    """One GET through the SDK's raw_request; the JSON object it answered, parsed by orjson when the
    client keeps bodies (KeptBodyClient), else as the SDK parsed it."""
    _kept.wanted, _kept.body = True, None
    try:
        response = client.raw_request("get", path, **params)
    finally:
        _kept.wanted = False
    body, _kept.body = _kept.body, None
    if body is None:
        data: StripeObject = response.data  # raw_request is untyped in the SDK; a GET answers an object
        return data
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):  # e.g. a page cut short: said by its facts, never its content
        request_id = (response.headers or {}).get("request-id")
        facts = f"HTTP {response.code}, a body that is not a JSON object" + (
            f", request {request_id}" if request_id else ""
        )
        raise StripeUnavailable(f"Stripe unavailable at {path}: APIError ({facts})")
    return parsed


def make_client(api_key: str, config: StripeConfig) -> stripe.StripeClient:
    return stripe.StripeClient(
        api_key,
        # Every request names the version the job's rules are written for (docs/stripe-api-version.md), so
        # the account's default version never changes what the job reads.
        stripe_version=config.api_version,
        base_addresses={"api": config.api_base.rstrip("/")} if config.api_base else None,
        max_network_retries=config.max_network_retries,
        http_client=KeptBodyClient(timeout=config.timeout.total_seconds()),
    )


# Workers per pull when not configured: enough to keep the endpoint's budget busy when a list
# page takes up to this long (Stripe: roughly 0.2-0.8 s with expansion).
_SLOW_PAGE_SECONDS = 0.8
_DEFAULT_WORKERS = 8
_MAX_WORKERS = 32
# A pull adds workers when its requests take longer than that: as many as the endpoint's rate times the
# mean round trip (Little's law), with this headroom for the spread of round trips, up to the cap.
_IN_FLIGHT_HEADROOM = 1.2
_MAX_GROWN_WORKERS = 64


@dataclass
class RetryPolicy:
    """How a run talks to Stripe: backoff with full jitter for 429s (honouring Retry-After) and dropped
    responses, the shared request budget, and how many requests one window pull keeps in flight."""

    max_retries: int = 8
    max_total_seconds: float = 300.0
    base_seconds: float = 0.5
    cap_seconds: float = 30.0
    network_retries: int = 3
    sleep: Callable[[float], None] = interrupt.wait
    rng: random.Random = field(default_factory=random.Random)
    budget: Budget | None = None  # None: no client-side limit (tests, stand-ins)
    concurrency: int | None = None  # workers per window pull; None: derived from the budget
    abort: threading.Event = field(default_factory=threading.Event)  # set: pulls stop early
    # The answered requests' round trips (the budget's wait apart), per endpoint: (count, seconds in all).
    _round_trips: dict[str, tuple[int, float]] = field(default_factory=dict, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def from_config(cls, config: StripeConfig, test_mode: bool = False) -> RetryPolicy:
        """`test_mode`: the key is a sandbox key, whose account limit is a quarter of a live one's."""
        return cls(
            max_retries=config.rate_limit_retries,
            max_total_seconds=config.max_retry_time.total_seconds(),
            base_seconds=config.retry_backoff.total_seconds(),
            network_retries=config.max_network_retries,
            # Waiting for a token is a pause like any other: a stop request cuts it short.
            budget=Budget(config.requests_per_second, account_rate(config, test_mode), sleep=interrupt.wait),
            concurrency=config.concurrency,
        )

    def workers(self) -> int:
        if self.concurrency:
            return self.concurrency
        rate = self.budget.per_endpoint if self.budget else None
        if rate is None:
            return _DEFAULT_WORKERS
        return max(2, min(_MAX_WORKERS, math.ceil(rate * _SLOW_PAGE_SECONDS)))

    def observe(self, endpoint: str, seconds: float) -> None:
        """A request to `endpoint` was answered `seconds` after it was sent."""
        with self._lock:
            count, total = self._round_trips.get(endpoint, (0, 0.0))
            self._round_trips[endpoint] = (count + 1, total + seconds)

    def round_trip(self, endpoint: str) -> float | None:
        """The mean round trip of requests to `endpoint` so far (None: none answered yet)."""
        with self._lock:
            count, total = self._round_trips.get(endpoint, (0, 0.0))
        return total / count if count else None

    def workers_for(self, endpoint: str) -> int:
        """Workers a pull of `endpoint` should have now: `workers()`, or more when its requests' round
        trips are longer than that count keeps busy at the endpoint's rate. A configured concurrency
        is kept as it is."""
        base = self.workers()
        rate = self.budget.rate(endpoint) if self.budget and not self.concurrency else None
        round_trip = self.round_trip(endpoint)
        if rate is None or round_trip is None:
            return base
        return max(base, min(_MAX_GROWN_WORKERS, math.ceil(rate * round_trip * _IN_FLIGHT_HEADROOM)))

    def delay(self, attempt: int, retry_after: float | None) -> float:
        backoff = self.rng.uniform(0, min(self.cap_seconds, self.base_seconds * 2**attempt))
        return max(backoff, retry_after or 0.0)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date; None if unreadable."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _retry_after(error: stripe.StripeError) -> float | None:
    for name, value in (error.headers or {}).items():
        if name.lower() == "retry-after":
            return parse_retry_after(value)
    return None


_REFUSED_VERSION = re.compile(r"Invalid Stripe API version: [A-Za-z0-9_.\-]{1,60}\.?")


def _lacking_permission(message: str) -> str | None:
    match = re.search(r"'(rak_[a-z0-9_]+)'", message or "")
    return match.group(1) if match else None


def _api_host(client: stripe.StripeClient) -> str:
    """The host the client sends API requests to (the SDK keeps it on its requestor)."""
    addresses = getattr(getattr(client, "_requestor", None), "base_addresses", None) or {}
    base = addresses.get("api") or "https://api.stripe.com"
    return base.split("://", 1)[-1].rstrip("/")


def request(client: stripe.StripeClient, path: str, params: Params, policy: RetryPolicy) -> StripeObject:
    """One GET, with 429s and dropped responses retried under the policy; Stripe's errors become the job's own.

    A retry repeats exactly this request (same page, same cursor): a failed page is fetched again
    alone, never the window from its start.
    """
    started = time.monotonic()
    limited = 0  # 429s answered so far
    dropped = 0  # connection failures the SDK did not retry itself
    endpoint = endpoint_of(path)
    while True:
        granted = _token(policy, endpoint)
        sent = time.monotonic()
        try:
            answer = _raw_get(client, path, params)
            policy.observe(endpoint, time.monotonic() - sent)
            return answer
        except stripe.RateLimitError as exc:
            if policy.budget:
                policy.budget.throttled(endpoint, granted)
            _pause_after_rate_limit(exc, path, policy, limited, started)
            limited += 1
        except stripe.APIConnectionError as exc:
            _pause_after_drop(exc, client, path, policy, dropped)
            dropped += 1
        except stripe.StripeError as exc:
            raise _job_error(exc, path) from None


def _token(policy: RetryPolicy, endpoint: str) -> float:
    """Wait for the budget's token for one request to `endpoint`; when it was granted (0.0: no budget)."""
    if not policy.budget:
        return 0.0
    granted = policy.budget.acquire(endpoint)
    interrupt.checkpoint("pull")  # the wait for a token may have been cut short by a stop
    return granted


def _pause_after_rate_limit(
    exc: stripe.RateLimitError, path: str, policy: RetryPolicy, limited: int, started: float
) -> None:
    """Sleep before repeating a request Stripe rate-limited; StripeUnavailable once the policy's bounds are spent."""
    waited = time.monotonic() - started
    remaining = policy.max_total_seconds - waited
    retry_after = _retry_after(exc)
    if limited >= policy.max_retries or remaining <= 0 or (retry_after or 0.0) > remaining:
        asked = (
            f", then asked to wait {retry_after:.0f}s more"
            if retry_after is not None and retry_after > remaining
            else ""
        )
        raise StripeUnavailable(
            f"Stripe kept rate-limiting {path}: {limited + 1} attempts over {waited:.0f}s{asked} "
            f"(bounds: stripe.rate_limit_retries = {policy.max_retries}, "
            f"stripe.max_retry_time = {policy.max_total_seconds:g}s); "
            "the run stopped without treating partial data as complete"
        ) from None
    pause = min(policy.delay(limited, retry_after), remaining)
    log.warning(
        "stripe.rate_limited",
        extra={"path": path, "attempt": limited + 1, "retry_after_s": retry_after, "sleep_s": round(pause, 3)},
    )
    policy.sleep(pause)
    interrupt.checkpoint("pull")


def _pause_after_drop(
    exc: stripe.APIConnectionError, client: stripe.StripeClient, path: str, policy: RetryPolicy, dropped: int
) -> None:
    """Sleep before repeating a GET whose connection dropped; StripeUnavailable when it is not one to repeat.

    The SDK retries timeouts and refused connections itself (should_retry), but not a connection
    reset in the middle of a response. A GET is safe to repeat, so repeat it.
    """
    if exc.should_retry or dropped >= policy.network_retries or "SSLError" in str(exc):
        # One line naming the host and the cause; not the SDK's paragraph (advice to email Stripe).
        message = exc.user_message or str(exc)
        host = network_host(message) or _api_host(client)
        raise StripeUnavailable(
            f"Stripe unavailable at {path}: cannot reach {host}: {network_cause(message)}, after retries"
        ) from None
    pause = policy.delay(dropped, None)
    log.warning("stripe.connection_retry", extra={"path": path, "attempt": dropped + 1, "sleep_s": round(pause, 3)})
    policy.sleep(pause)
    interrupt.checkpoint("pull")


def _job_error(exc: stripe.StripeError, path: str) -> Exception:
    """The job's own error for a Stripe error that is not retried.

    Every message names the path and the facts of the error (stripe_facts), never Stripe's message
    or the body: those can hold card data, customers' emails, or the key's tail.
    """
    if isinstance(exc, stripe.AuthenticationError):
        return StripeKeyRejected(
            f"Stripe rejected the API key ({stripe_facts(exc)}) at {path}; "
            "check the key in the environment variable named by stripe.api_key_env"
        )
    if isinstance(exc, stripe.PermissionError):
        permission = _lacking_permission(exc.user_message or "")
        needs = f": it lacks the permission {permission}" if permission else ""
        return StripeAuthError(
            f"the Stripe key may not read {path} ({stripe_facts(exc)}){needs}; "
            "give the restricted key read access to it, or use another key"
        )
    if isinstance(exc, stripe.InvalidRequestError):
        refused = _REFUSED_VERSION.fullmatch(exc.user_message or "")
        if refused:  # the message only echoes the version sent (a token): safe to repeat
            return ConfigError(
                f"Stripe does not accept the API version the job sends: {refused.group(0)} "
                f"({stripe_facts(exc)}); check stripe.api_version (unset: the version the installed SDK pins)"
            )
        return StripeRequestError(f"Stripe rejected the request to {path} ({stripe_facts(exc)})")
    if isinstance(exc, stripe.APIError):
        return StripeUnavailable(
            f"Stripe unavailable at {path} after retries: {type(exc).__name__} ({stripe_facts(exc)})"
        )
    return StripeUnavailable(f"Stripe error at {path}: {type(exc).__name__} ({stripe_facts(exc)})")


def get_many(
    client: stripe.StripeClient,
    gets: Sequence[tuple[str, Params]],
    policy: RetryPolicy,
    label: str,
    step: str | None = "",
) -> list[StripeObject | None]:
    """The objects at these (path, params), in order; None where Stripe answered that it has none
    (a 4xx other than auth: an id that no longer exists or never did)."""

    def one(path: str, params: Params) -> StripeObject | None:
        try:
            return request(client, path, params, policy)
        except StripeRequestError:
            return None

    calls = [partial(one, path, params) for path, params in gets]
    return fetch.run(calls, policy, label, dict(Counter(endpoint_of(path) for path, _ in gets)), step=step)


def iter_pages(
    client: stripe.StripeClient, path: str, params: Params, policy: RetryPolicy
) -> Iterator[list[StripeObject]]:
    """Every page of a list endpoint by one cursor walk (the sequential reference; windows use fetch_window)."""
    cursor: str | None = None
    seen_cursors: set[str] = set()
    while True:
        interrupt.checkpoint("pull")  # between pages: nothing is half-done here
        page_params = dict(params, limit=pull_plan.PAGE_SIZE)
        if cursor:
            page_params["starting_after"] = cursor
        page = request(client, path, page_params, policy)
        data = pull_plan.check_page(page, path, cursor=cursor, seen=seen_cursors)
        if data:
            yield data
        if not page.get("has_more"):
            return
        cursor = data[-1]["id"]
        seen_cursors.add(cursor)


def id_of(value: Any) -> str | None:
    """The id of a Stripe object, expanded (a dict) or not (its id); None when absent."""
    if isinstance(value, dict):
        return value.get("id")
    return value or None


def clean_order_ref(value: Any) -> str | None:
    """A metadata order id as a plain string value; blank means none."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value or None


def charge_row(charge: StripeObject, metadata_key: str, every_intent: bool = True) -> ChargeRow:
    """The fields of a charge the job uses (no card data).

    With `every_intent` False the PaymentIntent id is kept for an authorization (succeeded, not
    captured) alone: whether it was released shows on its PaymentIntent, and when no link kind uses
    PaymentIntents or sessions nothing else reads the id (~80 MB at a million charges)."""
    bt = charge.get("balance_transaction")
    bt = bt if isinstance(bt, dict) else {}
    billing = charge.get("billing_details") or {}
    details = charge.get("payment_method_details") or {}
    card = details.get("card") or {}
    return {
        "charge_id": charge["id"],
        "created": int(charge["created"]),
        "status": charge.get("status"),
        "captured": bool(charge.get("captured")),
        "amount": int(charge.get("amount") or 0),
        "amount_captured": int(charge.get("amount_captured") or 0),
        "amount_refunded": int(charge.get("amount_refunded") or 0),
        "refunded": bool(charge.get("refunded")),
        "disputed": bool(charge.get("disputed")),
        "currency": (charge.get("currency") or "").lower(),
        "order_ref": clean_order_ref((charge.get("metadata") or {}).get(metadata_key)),
        "payment_intent": id_of(charge.get("payment_intent")) if every_intent or _authorization(charge) else None,
        "description": charge.get("description"),
        "email": billing.get("email") or charge.get("receipt_email"),
        "livemode": bool(charge.get("livemode")),
        "failure_code": charge.get("failure_code"),
        "settlement_currency": (bt.get("currency") or "").lower() or None,
        "settlement_amount": bt.get("amount"),
        "exchange_rate": bt.get("exchange_rate"),
        # When an uncaptured card authorization lapses (Stripe releases it then).
        "capture_before": card.get("capture_before") if isinstance(card.get("capture_before"), int) else None,
        # How long it may stay pending depends on it (orders.settle_within): sepa_debit, card, ...
        "payment_method_type": details.get("type") if isinstance(details.get("type"), str) else None,
    }


def _authorization(charge: StripeObject) -> bool:
    """A card authorization not captured (yet): its money is held, not moved."""
    return charge.get("status") == "succeeded" and not charge.get("captured")


def balance_row(txn: StripeObject) -> BalanceRow:
    """The fields of a balance transaction the totals use (decide/totals.BALANCE_COLUMNS)."""
    return {
        "txn_id": txn["id"],
        "created": int(txn["created"]),
        "reporting_category": txn.get("reporting_category") or txn.get("type"),
        "currency": (txn.get("currency") or "").lower(),
        "amount": int(txn.get("amount") or 0),
        "fee": int(txn.get("fee") or 0),
        "net": int(txn.get("net") or 0),
    }


T = TypeVar("T")
R = TypeVar("R")
# Reduces one Stripe object to the row the job keeps (charge_row, payment_intent_row, ...).
RowFn = Callable[[StripeObject], R]
CHARGE_PARAMS: Params = {"expand": ["data.balance_transaction"]}


def _pull(
    client: stripe.StripeClient,
    path: str,
    since: datetime,
    until: datetime,
    on_page: Callable[[list[StripeObject]], T],
    policy: RetryPolicy,
    params: Params | None,
) -> list[T]:
    """``on_page`` of every page created in [since, until), in list order (see pull_plan)."""
    base = dict(params or {})

    def fetch(page_params: Params) -> StripeObject:
        interrupt.checkpoint("pull")  # between pages (of any slice): nothing is half-done here
        return request(client, path, {**base, **page_params}, policy)

    endpoint = endpoint_of(path)
    waited = _token_wait(policy, endpoint)
    watch = getattr(
        client, "watch_pull", None
    )  # a progress display wrapping the client (reconcile/runtime/progress.py)
    progress = watch(path, to_unix(since), to_unix(until)) if callable(watch) else None
    pages, stats = pull_plan.pull_window(
        fetch,
        to_unix(since),
        to_unix(until),
        on_page,
        workers=policy.workers(),
        abort=policy.abort,
        label=path,
        progress=progress,
        ordered=path in ORDERED_LISTS,
        want_workers=partial(policy.workers_for, endpoint),
    )
    waiting = (_token_wait(policy, endpoint) - waited) / stats.seconds if stats.seconds else 0.0
    log.info(
        "pull.page_set",
        extra={
            "path": path,
            "count": stats.objects,
            "requests": stats.requests,
            "slices": stats.slices,
            "seconds": round(stats.seconds, 3),
            # What bounds a pull (bench/): the workers' CPU per page, the requests in flight (mean, the
            # budget's wait apart), and how long the last slices ran alone after work was last shared out.
            "workers": stats.workers,
            "round_trip_seconds": round(policy.round_trip(endpoint) or 0.0, 3),
            "cpu_ms_per_page": round(stats.cpu_seconds / max(1, stats.requests) * 1000, 2),
            "in_flight": round(stats.in_flight - waiting, 2),
            "waiting_for_budget": round(waiting, 2),
            "tail_seconds": round(stats.tail_seconds, 3),
        },
    )
    return pages


def _token_wait(policy: RetryPolicy, endpoint: str) -> float:
    """Seconds the run's requests to `endpoint` have waited for the budget's tokens so far."""
    return policy.budget.stats().waited.get(endpoint, 0.0) if policy.budget else 0.0


def fetch_window(
    client: stripe.StripeClient,
    path: str,
    since: datetime,
    until: datetime,
    row: RowFn[R],
    policy: RetryPolicy,
    params: Params | None = None,
) -> list[R]:
    """Every object of a list endpoint created in [since, until), each reduced to its row of fields.

    The one entry point for window pulls: the window is cut into time slices pulled side by side
    under the policy's budget (reconcile/stripe/slices.py). Rows come back in Stripe's list order,
    exactly as a sequential pull would give them. Callable from several threads at once.
    """
    pages = _pull(client, path, since, until, lambda objs: [row(obj) for obj in objs], policy, params)
    return [r for page in pages for r in page]


def fetch_window_columns(
    client: stripe.StripeClient,
    path: str,
    since: datetime,
    until: datetime,
    row: RowFn[columns.Row],
    policy: RetryPolicy,
    params: Params | None = None,
) -> columns.Columns:
    """As fetch_window, packed into columns page by page: for big windows (~3x less memory)."""
    pages = _pull(
        client, path, since, until, lambda objs: columns.compact(columns.pack(row(obj) for obj in objs)), policy, params
    )
    return columns.concat(pages)


def fetch_charges(
    client: stripe.StripeClient, since: datetime, until: datetime, metadata_key: str, policy: RetryPolicy
) -> list[ChargeRow]:
    return fetch_window(
        client, "/v1/charges", since, until, lambda c: charge_row(c, metadata_key), policy, CHARGE_PARAMS
    )


def fetch_charge_columns(
    client: stripe.StripeClient,
    since: datetime,
    until: datetime,
    metadata_key: str,
    policy: RetryPolicy,
    every_intent: bool = True,
) -> columns.Columns:
    """The window's charges as columns; `every_intent` as in `charge_row`."""
    return fetch_window_columns(
        client,
        "/v1/charges",
        since,
        until,
        lambda c: charge_row(c, metadata_key, every_intent),
        policy,
        CHARGE_PARAMS,
    )


def fetch_balance_columns(
    client: stripe.StripeClient, since: datetime, until: datetime, policy: RetryPolicy
) -> columns.Columns:
    return fetch_window_columns(client, "/v1/balance_transactions", since, until, balance_row, policy)


def retrieve_charges(
    client: stripe.StripeClient, charge_ids: list[str], metadata_key: str, policy: RetryPolicy
) -> list[ChargeRow]:
    """Charges by id (stored on orders whose charge fell outside the window), side by side under the
    budget (reconcile/stripe/fetch.py), in the ids' order; a missing or malformed id is skipped."""
    return retrieve_objects(
        client,
        "/v1/charges",
        charge_ids,
        lambda c: charge_row(c, metadata_key),
        policy,
        {"expand": ["balance_transaction"]},
        step="charges by id",
    )


def payment_intent_row(intent: StripeObject, metadata_key: str) -> IntentRow:
    """The fields of a PaymentIntent the matching uses."""
    return {
        "pi_id": intent["id"],
        "created": int(intent["created"]),
        "status": intent.get("status"),
        "amount": int(intent.get("amount") or 0),
        "currency": (intent.get("currency") or "").lower(),
        "order_ref": clean_order_ref((intent.get("metadata") or {}).get(metadata_key)),
        "latest_charge": id_of(intent.get("latest_charge")),
        "email": intent.get("receipt_email"),
        "cancellation_reason": intent.get("cancellation_reason"),
        "livemode": bool(intent.get("livemode")),
        "payment_method_type": method_types(intent),
    }


def checkout_session_row(session: StripeObject, metadata_key: str) -> SessionRow:
    """The fields of a Checkout Session the matching uses."""
    details = session.get("customer_details") or {}
    total = session.get("amount_total")
    return {
        "session_id": session["id"],
        "created": int(session["created"]),
        "status": session.get("status"),
        "payment_status": session.get("payment_status"),
        "client_reference_id": clean_order_ref(session.get("client_reference_id")),
        "order_ref": clean_order_ref((session.get("metadata") or {}).get(metadata_key)),
        "payment_intent": id_of(session.get("payment_intent")),
        "amount_total": None if total is None else int(total),
        "currency": (session.get("currency") or "").lower() or None,
        "email": details.get("email") or session.get("customer_email"),
        "expires_at": session.get("expires_at"),
        "livemode": bool(session.get("livemode")),
        "payment_method_type": method_types(session),
    }


def method_types(payment: StripeObject) -> str | None:
    """A PaymentIntent's or Checkout Session's payment method type: its payment method's when expanded,
    else its `payment_method_types` space-separated (decide/deadlines.py takes the slowest of them)."""
    method = payment.get("payment_method")
    if isinstance(method, dict) and isinstance(method.get("type"), str):
        return str(method["type"])
    types = payment.get("payment_method_types")
    if isinstance(types, list):
        return " ".join(t for t in types if isinstance(t, str)) or None
    return None


def retrieve_objects(
    client: stripe.StripeClient,
    path: str,
    ids: list[str],
    row: RowFn[R],
    policy: RetryPolicy,
    params: Params | None = None,
    step: str | None = None,
) -> list[R]:
    """Objects by id (`path` is the list path, e.g. /v1/payment_intents), side by side under the budget
    (reconcile/stripe/fetch.py), in the ids' order; a missing or malformed id is skipped. `step`: the
    progress step's name (default: "<kind> by id")."""
    safe = []
    for object_id in ids:
        if SAFE_ID.match(object_id):
            safe.append(object_id)
        else:  # ids may come from order documents: never let one shape the URL
            log.warning("pull.stored_id_invalid", extra={"path": path, "id": object_id[:40]})
    step = step or f"{path.rsplit('/', 1)[-1].replace('_', ' ')} by id"
    found = get_many(client, [(f"{path}/{i}", dict(params or {})) for i in safe], policy, path, step=step)
    rows = []
    for object_id, obj in zip(safe, found, strict=True):
        if obj is None:
            log.warning("pull.stored_id_missing", extra={"path": path, "id": object_id})
        else:
            rows.append(row(obj))
    return rows


def list_by(
    client: stripe.StripeClient,
    path: str,
    param: str,
    values: list[str],
    row: RowFn[R],
    policy: RetryPolicy,
    params: Params | None = None,
) -> list[R]:
    """Every object of a list endpoint whose `param` equals one of `values` (e.g. charges of PaymentIntents):
    one filtered list per value (one request where many retrieves would be), side by side under the
    budget (reconcile/stripe/fetch.py), in the values' order."""

    def listed(value: str) -> list[R]:
        return [
            row(obj) for page in iter_pages(client, path, dict(params or {}, **{param: value}), policy) for obj in page
        ]

    calls = [partial(listed, v) for v in values if SAFE_ID.match(v)]
    step = f"{path.rsplit('/', 1)[-1].replace('_', ' ')} by {param.replace('_', ' ')}"
    lists = fetch.run(  # one page each, mostly
        calls, policy, f"{path}?{param}=", {endpoint_of(path): len(calls)}, step=step
    )
    return [r for rows in lists for r in rows]
