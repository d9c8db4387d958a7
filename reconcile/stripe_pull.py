"""Pull Stripe objects for a window, through the official SDK.

Pages come from `StripeClient.raw_request` and are parsed JSON dicts: building SDK objects
costs ~10x the CPU per page, and the job keeps only a few fields of each object anyway.
The SDK still does requests, auth, 5xx/connection retries and error mapping; rate limits
(429), which it does not retry, are handled here. Every request takes its token from the
run's shared budget (reconcile/budget.py); windows are pulled as concurrent time slices
(reconcile/pull_plan.py).
"""

from __future__ import annotations

import logging
import math
import random
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterator

import stripe

from reconcile import columns, pull_plan
from reconcile.budget import Budget, endpoint_of
from reconcile.config import StripeConfig
from reconcile.errors import StripeAuthError, StripeRequestError, StripeUnavailable
from reconcile.timeutil import to_unix

log = logging.getLogger(__name__)

PAGE_SIZE = 100
_SAFE_ID = re.compile(r"^[A-Za-z0-9_]{3,255}$")
_KEY_PATTERN = re.compile(r"\b([sr]k_(?:live|test)_)[A-Za-z0-9]+")


def redact(text: str) -> str:
    """Mask anything shaped like a Stripe secret or restricted key."""
    return _KEY_PATTERN.sub(r"\1****", text or "")


def make_client(api_key: str, config: StripeConfig) -> stripe.StripeClient:
    base = {"api": config.api_base.rstrip("/")} if config.api_base else None
    return stripe.StripeClient(
        api_key,
        base_addresses=base,
        max_network_retries=config.max_network_retries,
        http_client=stripe.RequestsClient(timeout=config.timeout.total_seconds()),
    )


# Workers per pull when not configured: enough to keep the endpoint's budget busy when a list
# page takes up to this long (Stripe: roughly 0.2-0.8 s with expansion).
_SLOW_PAGE_SECONDS = 0.8
_DEFAULT_WORKERS = 8
_MAX_WORKERS = 32


@dataclass
class RetryPolicy:
    """How a run talks to Stripe: 429 backoff (full jitter, Retry-After honoured), the shared
    request budget, and how many requests one window pull keeps in flight."""

    max_retries: int = 8
    max_total_seconds: float = 300.0
    base_seconds: float = 0.5
    cap_seconds: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)
    budget: Budget | None = None  # None: no client-side limit (tests, stand-ins)
    concurrency: int | None = None  # workers per window pull; None: derived from the budget
    abort: threading.Event = field(default_factory=threading.Event)  # set: pulls stop early

    @classmethod
    def from_config(cls, config: StripeConfig) -> "RetryPolicy":
        return cls(
            max_retries=config.rate_limit_retries,
            max_total_seconds=config.max_retry_time.total_seconds(),
            budget=Budget(config.requests_per_second, config.account_requests_per_second),
            concurrency=config.concurrency,
        )

    def workers(self) -> int:
        if self.concurrency:
            return self.concurrency
        rate = self.budget.per_endpoint if self.budget else None
        if rate is None:
            return _DEFAULT_WORKERS
        return max(2, min(_MAX_WORKERS, math.ceil(rate * _SLOW_PAGE_SECONDS)))

    def delay(self, attempt: int, retry_after: float | None) -> float:
        backoff = self.rng.uniform(0, min(self.cap_seconds, self.base_seconds * 2**attempt))
        return max(backoff, retry_after or 0.0)


def _retry_after(error: stripe.StripeError) -> float | None:
    for name, value in (error.headers or {}).items():
        if name.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except (TypeError, ValueError):
                return None
    return None


def request(client: stripe.StripeClient, path: str, params: dict[str, Any], policy: RetryPolicy) -> dict[str, Any]:
    """One GET, with 429s retried under the policy; Stripe's errors become the job's own."""
    started = time.monotonic()
    attempt = 0
    endpoint = endpoint_of(path)
    while True:
        granted = policy.budget.acquire(endpoint) if policy.budget else 0.0
        try:
            return client.raw_request("get", path, **params).data
        except stripe.RateLimitError as exc:
            if policy.budget:
                policy.budget.throttled(endpoint, granted)
            waited = time.monotonic() - started
            if attempt >= policy.max_retries or waited >= policy.max_total_seconds:
                raise StripeUnavailable(
                    f"Stripe kept rate-limiting {path} ({attempt + 1} attempts over {waited:.0f}s); "
                    "the run stopped without treating partial data as complete"
                ) from None
            pause = min(policy.delay(attempt, _retry_after(exc)), max(0.0, policy.max_total_seconds - waited))
            log.warning("stripe.rate_limited", extra={"path": path, "attempt": attempt + 1, "sleep_s": round(pause, 3)})
            policy.sleep(pause)
            attempt += 1
        except stripe.AuthenticationError as exc:
            raise StripeAuthError(f"Stripe rejected the API key: {redact(exc.user_message or '')}") from None
        except stripe.PermissionError as exc:
            raise StripeAuthError(f"the Stripe key lacks a permission for {path}: {redact(exc.user_message or '')}") from None
        except stripe.InvalidRequestError as exc:
            raise StripeRequestError(f"Stripe rejected the request to {path}: {redact(exc.user_message or '')}") from None
        except (stripe.APIConnectionError, stripe.APIError) as exc:
            raise StripeUnavailable(
                f"Stripe unavailable at {path} after retries: {type(exc).__name__}: {redact(exc.user_message or '')}"
            ) from None
        except stripe.StripeError as exc:
            raise StripeUnavailable(f"Stripe error at {path}: {redact(exc.user_message or '')}") from None


def iter_pages(
    client: stripe.StripeClient, path: str, params: dict[str, Any], policy: RetryPolicy
) -> Iterator[list[dict[str, Any]]]:
    """Every page of a list endpoint by one cursor walk (the sequential reference; windows use fetch_window)."""
    cursor: str | None = None
    seen_cursors: set[str] = set()
    while True:
        page_params = dict(params, limit=PAGE_SIZE)
        if cursor:
            page_params["starting_after"] = cursor
        page = request(client, path, page_params, policy)
        data = page.get("data") or []
        if data:
            yield data
        if not page.get("has_more") or not data:
            return
        cursor = data[-1]["id"]
        if cursor in seen_cursors:
            raise StripeRequestError(f"Stripe returned cursor {cursor} twice while listing {path}; stopping")
        seen_cursors.add(cursor)


def created_filter(since: datetime, until: datetime) -> dict[str, int]:
    return {"gte": to_unix(since), "lt": to_unix(until)}


def _id_of(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("id")
    return value or None


def clean_order_ref(value: Any) -> str | None:
    """A metadata order id as a plain string value; blank means none."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value or None


def charge_row(charge: dict[str, Any], metadata_key: str) -> dict[str, Any]:
    """The fields of a charge the job uses (no card data)."""
    bt = charge.get("balance_transaction")
    bt = bt if isinstance(bt, dict) else {}
    billing = charge.get("billing_details") or {}
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
        "payment_intent": _id_of(charge.get("payment_intent")),
        "description": charge.get("description"),
        "email": billing.get("email") or charge.get("receipt_email"),
        "livemode": bool(charge.get("livemode")),
        "failure_code": charge.get("failure_code"),
        "settlement_currency": (bt.get("currency") or "").lower() or None,
        "settlement_amount": bt.get("amount"),
        "exchange_rate": bt.get("exchange_rate"),
    }


def balance_row(txn: dict[str, Any]) -> dict[str, Any]:
    return {
        "txn_id": txn["id"],
        "created": int(txn["created"]),
        "type": txn.get("type"),
        "reporting_category": txn.get("reporting_category") or txn.get("type"),
        "currency": (txn.get("currency") or "").lower(),
        "amount": int(txn.get("amount") or 0),
        "fee": int(txn.get("fee") or 0),
        "net": int(txn.get("net") or 0),
        "source": _id_of(txn.get("source")),
    }


RowFn = Callable[[dict[str, Any]], dict[str, Any]]
CHARGE_PARAMS: dict[str, Any] = {"expand": ["data.balance_transaction"]}


def _pull(
    client: stripe.StripeClient, path: str, since: datetime, until: datetime,
    on_page: Callable[[list[dict[str, Any]]], Any], policy: RetryPolicy, params: dict[str, Any] | None,
) -> list[Any]:
    """``on_page`` of every page created in [since, until), in list order (see pull_plan)."""
    base = dict(params or {})

    def fetch(page_params: dict[str, Any]) -> dict[str, Any]:
        return request(client, path, {**base, **page_params}, policy)

    started = time.monotonic()
    pages, stats = pull_plan.pull_window(
        fetch, to_unix(since), to_unix(until), on_page, workers=policy.workers(), abort=policy.abort, label=path,
    )
    log.info("pull.page_set", extra={
        "path": path, "count": stats.objects, "requests": stats.requests, "slices": stats.slices,
        "seconds": round(time.monotonic() - started, 3),
    })
    return pages


def fetch_window(
    client: stripe.StripeClient, path: str, since: datetime, until: datetime, row: RowFn,
    policy: RetryPolicy, params: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Every object of a list endpoint created in [since, until), each reduced to its row of fields.

    The one entry point for window pulls: the window is cut into time slices pulled side by side
    under the policy's budget (reconcile/pull_plan.py). Rows come back in Stripe's list order,
    exactly as a sequential pull would give them. Callable from several threads at once.
    """
    pages = _pull(client, path, since, until, lambda objs: [row(obj) for obj in objs], policy, params)
    return [r for page in pages for r in page]


def fetch_window_columns(
    client: stripe.StripeClient, path: str, since: datetime, until: datetime, row: RowFn,
    policy: RetryPolicy, params: dict[str, Any] | None = None,
) -> columns.Columns:
    """As fetch_window, packed into columns page by page: for big windows (~3x less memory)."""
    pages = _pull(client, path, since, until, lambda objs: columns.pack(row(obj) for obj in objs), policy, params)
    return columns.concat(pages)


def fetch_charges(
    client: stripe.StripeClient, since: datetime, until: datetime, metadata_key: str, policy: RetryPolicy
) -> list[dict[str, Any]]:
    return fetch_window(client, "/v1/charges", since, until, lambda c: charge_row(c, metadata_key), policy, CHARGE_PARAMS)


def fetch_balance_transactions(
    client: stripe.StripeClient, since: datetime, until: datetime, policy: RetryPolicy
) -> list[dict[str, Any]]:
    return fetch_window(client, "/v1/balance_transactions", since, until, balance_row, policy)


def fetch_charge_columns(
    client: stripe.StripeClient, since: datetime, until: datetime, metadata_key: str, policy: RetryPolicy
) -> columns.Columns:
    return fetch_window_columns(
        client, "/v1/charges", since, until, lambda c: charge_row(c, metadata_key), policy, CHARGE_PARAMS
    )


def fetch_balance_columns(
    client: stripe.StripeClient, since: datetime, until: datetime, policy: RetryPolicy
) -> columns.Columns:
    return fetch_window_columns(client, "/v1/balance_transactions", since, until, balance_row, policy)


def retrieve_charges(
    client: stripe.StripeClient, charge_ids: list[str], metadata_key: str, policy: RetryPolicy
) -> list[dict[str, Any]]:
    """Charges by id (stored on orders whose charge fell outside the window); a missing id is skipped."""
    rows = []
    for charge_id in charge_ids:
        if not _SAFE_ID.match(charge_id):  # ids come from order documents: never let one shape the URL
            log.warning("pull.stored_charge_id_invalid", extra={"charge_id": charge_id[:40]})
            continue
        try:
            charge = request(client, f"/v1/charges/{charge_id}", {"expand": ["balance_transaction"]}, policy)
        except StripeRequestError:
            log.warning("pull.stored_charge_missing", extra={"charge_id": charge_id})
            continue
        rows.append(charge_row(charge, metadata_key))
    return rows
