"""The TOML config, read once into a validated, frozen object.

Every problem is reported at once, naming the key; secrets come only from the environment.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from dataclasses import MISSING, dataclass, field, fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from stripe._api_version import _ApiVersion

from reconcile.errors import ConfigError
from reconcile.runtime.redact import remember
from reconcile.timeutil import parse_duration

# The Stripe API version the job speaks: the one the installed stripe-python pins (16.x:
# 2026-10-28.endive). Rules that depend on it say so ("API version:" comments); see docs/stripe-api-version.md.
PINNED_API_VERSION = _ApiVersion.CURRENT

# How orders are linked to Stripe (matching.link_by; decide/match.py follows them), strongest first.
CHARGE_METADATA = "charge_metadata"
PAYMENT_INTENT_METADATA = "payment_intent_metadata"
CHECKOUT_SESSION = "checkout_session"
ORDER_FIELDS = "order_fields"
LINK_KINDS = (CHARGE_METADATA, PAYMENT_INTENT_METADATA, CHECKOUT_SESSION, ORDER_FIELDS)
DEFAULT_LINK_BY = (CHARGE_METADATA, ORDER_FIELDS)

_DAY = 86400

# Stripe's PaymentMethod types (stripe-python 16, API version 2026-10-28.endive: PaymentMethod.type;
# tests/test_deadlines.py checks the list against the installed SDK). `orders.settle_within` keys
# must be one of them: a misspelt method would otherwise silently fall back to the grace period.
PAYMENT_METHOD_TYPES = (
    "acss_debit", "affirm", "afterpay_clearpay", "alipay", "alma", "amazon_pay", "au_becs_debit", "bacs_debit",
    "bancontact", "billie", "bizum", "blik", "boleto", "card", "card_present", "cashapp", "crypto", "custom",
    "customer_balance", "eps", "fpx", "giropay", "grabpay", "ideal", "interac_present", "kakao_pay", "klarna",
    "konbini", "kr_card", "link", "mb_way", "mobilepay", "multibanco", "naver_pay", "nz_bank_account", "oxxo",
    "p24", "pay_by_bank", "payco", "paynow", "paypal", "paypay", "payto", "pix", "promptpay", "revolut_pay",
    "samsung_pay", "satispay", "scalapay", "sepa_debit", "sequra", "sofort", "sunbit", "swish", "twint", "upi",
    "us_bank_account", "wechat_pay", "zip",
)  # fmt: skip

# How long a delayed-notification payment may stay `processing` before the job asks why
# (`orders.settle_within`; docs/deadlines.md). Stripe gives business days; these are calendar time:
# the business days, plus a weekend for every five of them started, plus one bank holiday.
# A type not listed (cards among them) falls back to `orders.grace_period`.
SettleWithin = tuple[tuple[str, timedelta], ...]
DEFAULT_SETTLE_WITHIN: SettleWithin = (
    # https://docs.stripe.com/payments/sepa-debit: "up to 14 business days" -> 14 + 3 weekends + 1
    ("sepa_debit", timedelta(days=21)),
    # https://docs.stripe.com/payments/ach-direct-debit: "up to 4 business days" -> 4 + 1 weekend + 1
    ("us_bank_account", timedelta(days=7)),
    # https://docs.stripe.com/payments/bacs-debit: 4 business days, 7 with a new mandate -> 7 + 2 weekends + 1
    ("bacs_debit", timedelta(days=12)),
    # https://docs.stripe.com/payments/au-becs-debit: "up to three business days" -> 3 + 1 weekend + 1
    ("au_becs_debit", timedelta(days=6)),
    # https://docs.stripe.com/payments/acss-debit: "up to 5 business days" -> 5 + 1 weekend + 1
    ("acss_debit", timedelta(days=8)),
    # https://docs.stripe.com/payments/nz-bank-account: "up to two business days" -> 2 + 1 weekend + 1
    ("nz_bank_account", timedelta(days=5)),
)


@dataclass(frozen=True)
class Threshold:
    """An item is at `level` from `amount` major units of its currency at stake, or `age_seconds` old."""

    level: str
    amount: int
    age_seconds: int


# The [severity] levels, most severe first, and their defaults (decide/items.severity applies them).
LEVELS = ("critical", "high", "medium", "low")
DEFAULT_SEVERITY = (
    Threshold("critical", 1000, 5 * _DAY),
    Threshold("high", 100, 3 * _DAY),
    Threshold("medium", 10, 1 * _DAY),
)


@dataclass(frozen=True)
class StripeConfig:
    api_key_env: str = "STRIPE_API_KEY"
    api_base: str | None = None
    # Sent as Stripe-Version on every request, whatever the account's default version is.
    api_version: str = PINNED_API_VERSION
    order_id_metadata_key: str = "order_id"
    dashboard_url: str = "https://dashboard.stripe.com"
    max_network_retries: int = 3
    timeout: timedelta = timedelta(seconds=30)
    rate_limit_retries: int = 8
    max_retry_time: timedelta = timedelta(minutes=5)
    # The run's request budget (all pulls together). Defaults: half of Stripe's published limits
    # (25/s per endpoint; 100/s per live account, 25/s per sandbox account), leaving the rest to
    # the shop's live checkout. Unset account rate: 50 with a live key, 12.5 with a test-mode key.
    requests_per_second: float = 12.5
    account_requests_per_second: float | None = None
    # Requests one window pull keeps in flight; unset: enough for the budget at ~0.8 s a page.
    concurrency: int | None = None
    # First pause of the jittered exponential backoff for 429s and dropped responses (doubles each try).
    retry_backoff: timedelta = timedelta(milliseconds=500)


# Half of Stripe's published account limits (100/s live, 25/s sandbox): the shop's checkout shares them.
LIVE_ACCOUNT_RATE = 50.0
TEST_ACCOUNT_RATE = 12.5


def is_test_key(api_key: str) -> bool:
    """A sandbox (test-mode) secret or restricted key."""
    return api_key.startswith(("sk_test_", "rk_test_"))


def account_rate(config: StripeConfig, test_mode: bool) -> float:
    """The account bucket's rate: as configured, else by the key's mode."""
    if config.account_requests_per_second is not None:
        return config.account_requests_per_second
    return TEST_ACCOUNT_RATE if test_mode else LIVE_ACCOUNT_RATE


@dataclass(frozen=True)
class MongoConfig:
    database: str
    uri_env: str = "MONGODB_URI"
    orders_collection: str = "orders"
    audit_collection: str = "reconcile_audit"
    # The job's own state: run history, watermark + lease, open items (see docs/operations.md).
    runs_collection: str = "reconcile_runs"
    state_collection: str = "reconcile_state"
    items_collection: str = "reconcile_items"
    # What people decided about items (reconcile items): one record per decision, never deleted.
    decisions_collection: str = "reconcile_decisions"
    server_selection_timeout: timedelta = timedelta(seconds=10)
    # How long the server may take to answer the window's order queries (the socket timeout of their
    # own connection). MongoDB answers the one for string-dated orders from the created_at index; a
    # server that cannot (or a collection without that index) reads the whole collection before its
    # first answer, longer than the usual socket timeout (max(6 x server_selection_timeout, 60s)).
    scan_timeout: timedelta = timedelta(minutes=10)
    # Orders per bulk compare-and-set write (each batch is followed by its audit records).
    repair_batch_size: int = 500


@dataclass(frozen=True)
class OrdersConfig:
    status_field: str = "status"
    amount_field: str = "amount"
    currency_field: str = "currency"
    created_at_field: str = "created_at"
    charge_id_field: str = "charge_id"
    email_field: str | None = None
    pending_status: str = "created"
    paid_status: str = "accepted"
    failed_status: str = "failed"
    # Statuses an order moves to after being paid (shipped, delivered...): checked like paid.
    other_paid_statuses: tuple[str, ...] = ()
    grace_period: timedelta = timedelta(minutes=15)
    amount_tolerance: int = 0
    # A pending order within the tolerance of its charge is repaired only when this is set.
    repair_within_tolerance: bool = False
    # Ids a checkout may store on the order besides the charge id (linking by `order_fields`).
    payment_intent_id_field: str | None = None
    checkout_session_id_field: str | None = None
    # Minor units the shop has refunded on this order: the expected net is amount minus this.
    refunded_amount_field: str | None = None
    # When the shop expects the order's payment to have settled (a date it writes when it starts the
    # payment): the order's own deadline, before the one its payment method gives (docs/deadlines.md).
    expected_end_field: str | None = None
    # [orders.settle_within]: per Stripe payment method type, how long its payment may take; the
    # table given is laid over the defaults (DEFAULT_SETTLE_WITHIN).
    settle_within: SettleWithin = DEFAULT_SETTLE_WITHIN

    def settle_seconds(self) -> dict[str, int]:
        """`settle_within` in seconds, by payment method type."""
        return {method: int(span.total_seconds()) for method, span in self.settle_within}


@dataclass(frozen=True)
class WindowConfig:
    lookback: timedelta = timedelta(hours=24)
    # How far past the window's edges to look for the charge of an order that seems to have none.
    edge_slack: timedelta = timedelta(minutes=30)
    # Without --since: start at the last completed run's end minus this, so late data is seen twice.
    overlap: timedelta = timedelta(hours=1)
    # A longer window (a catch-up after days, a long backfill) runs as sub-windows of at most this.
    max_span: timedelta = timedelta(hours=24)


@dataclass(frozen=True)
class ReportConfig:
    dir: str = "reports"
    keep_days: int = 90  # reports older than this are pruned; 0 keeps them forever
    trend_days: int = 14  # days shown in the report's trend chart
    recheck_limit: int = 200  # open items from earlier windows (and watched slow payments) re-checked per run
    # The order in the shop's admin, e.g. "https://admin.example.com/orders/{order_id}"; None: no link.
    order_url: str | None = None


@dataclass(frozen=True)
class LeaseConfig:
    ttl: timedelta = timedelta(minutes=2)  # a killed run's lease is taken over after this
    wait: timedelta = timedelta(0)  # how long a second run waits for the lease before exit 4


EMAIL_SEND = ("always", "on_discrepancy", "never")
EMAIL_SECURITY = ("starttls", "tls", "none")
# Keys whose value is one of a fixed set, or (True) a list from it: every error lists the allowed values.
ENUMERATED: dict[tuple[str, str], tuple[tuple[str, ...], bool]] = {
    ("email", "send"): (EMAIL_SEND, False),
    ("email", "security"): (EMAIL_SECURITY, False),
    ("matching", "link_by"): (LINK_KINDS, True),
}


@dataclass(frozen=True)
class EmailConfig:
    send: str = "never"
    host: str | None = None
    port: int = 587
    security: str = "starttls"
    user: str | None = None
    password_env: str = "RECONCILE_SMTP_PASSWORD"
    from_addr: str | None = None
    to: tuple[str, ...] = ()
    subject_prefix: str = "[reconcile]"
    timeout: timedelta = timedelta(seconds=30)
    ca_file: str | None = None  # a private CA for the SMTP server's certificate; default: the system's


@dataclass(frozen=True)
class MatchingConfig:
    # How orders are linked to Stripe, strongest first; the default is a Charges API shop.
    link_by: tuple[str, ...] = DEFAULT_LINK_BY
    # Propose probable pairs of unreferenced charges and unpaid orders, for a person to confirm.
    probable_matches: bool = True
    probable_match_drift: timedelta = timedelta(minutes=30)


@dataclass(frozen=True)
class ItemsConfig:
    # Severity of an open item from its money at stake (major units of its currency) or its age:
    # the first level reached, most severe first; below them all, low.
    severity: tuple[Threshold, ...] = DEFAULT_SEVERITY


@dataclass(frozen=True)
class BankConfig:
    """[bank]: statements matched to payouts (docs/bank.md). The CSV keys say how to read a CSV statement."""

    statements: str | None = None  # a glob of statement files, e.g. "bank/*.csv"; --bank-statement adds files
    match_days: int = 3  # business days after a payout's arrival date its deposit may be booked
    description_pattern: str = "(?i)stripe"  # a deposit whose description matches this must be a payout
    date_column: str = "Date"
    amount_column: str = "Amount"  # signed: money in positive; unused when credit_column is set
    credit_column: str | None = None  # money in and out in two columns (with debit_column)
    debit_column: str | None = None
    currency_column: str | None = None  # each line's currency; `currency` fills its empty cells
    currency: str | None = None  # the account's currency, when the file has no currency column
    description_column: str = "Description"
    reference_column: str | None = None
    date_format: str = "%Y-%m-%d"
    decimal_separator: str = "."
    delimiter: str = ","  # one character, or "tab"


@dataclass(frozen=True)
class PayoutsConfig:
    enabled: bool = True  # list, re-check and itemize payouts each run (docs/payouts.md)
    # A paid payout is re-checked this long after its arrival date (Stripe: it can still turn failed).
    watch_paid_for: timedelta = timedelta(days=10)
    # A payout not paid this long after its arrival date is an item (payout_overdue).
    overdue_after: timedelta = timedelta(days=3)
    # The payouts runs saw, kept to re-check those not final yet.
    collection: str = "reconcile_payouts"


@dataclass(frozen=True)
class Config:
    stripe: StripeConfig
    mongodb: MongoConfig
    orders: OrdersConfig
    window: WindowConfig
    report: ReportConfig
    lease: LeaseConfig = field(default_factory=LeaseConfig)
    email: EmailConfig = field(default_factory=EmailConfig)
    matching: MatchingConfig = field(default_factory=MatchingConfig)
    items: ItemsConfig = field(default_factory=ItemsConfig)
    bank: BankConfig = field(default_factory=BankConfig)
    payouts: PayoutsConfig = field(default_factory=PayoutsConfig)

    def stripe_api_key(self) -> str:
        return _secret(self.stripe.api_key_env, "the Stripe API key")

    def test_mode_key(self) -> bool:
        """Whether the configured Stripe key is a sandbox key (no error when it is not set)."""
        return is_test_key(os.environ.get(self.stripe.api_key_env, "").strip())

    def mongodb_uri(self) -> str:
        return _secret(self.mongodb.uri_env, "the MongoDB connection string")

    def smtp_password(self) -> str | None:
        """The SMTP password, only when an SMTP user is configured."""
        return _secret(self.email.password_env, "the SMTP password") if self.email.user else None


SECTIONS: dict[str, type] = {
    "stripe": StripeConfig,
    "mongodb": MongoConfig,
    "orders": OrdersConfig,
    "window": WindowConfig,
    "report": ReportConfig,
    "lease": LeaseConfig,
    "email": EmailConfig,
    "matching": MatchingConfig,
    "items": ItemsConfig,
    "bank": BankConfig,
    "payouts": PayoutsConfig,
}


def _secret(env_name: str, what: str) -> str:
    value = os.environ.get(env_name, "").strip()
    if not value:
        raise ConfigError(f"environment variable {env_name} is not set: it must hold {what}")
    remember(value)
    return value


def _suggest(name: str, choices: list[str]) -> str:
    match = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _convert(key: str, value: Any, annotation: str) -> Any:
    """Check one value against its field's declared type; raise ValueError naming the problem."""
    if "Threshold" in annotation:
        return _thresholds(key, value)
    if "SettleWithin" in annotation:
        return _settle_within(key, value)
    if "timedelta" in annotation:
        if not isinstance(value, str):
            raise ValueError(f'{key} must be a duration string like "15m", got {value!r}')
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None
    if "tuple" in annotation:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{key} must be a list of strings, got {value!r}")
        return tuple(value)
    if annotation == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"{key} must be true or false, got {value!r}")
        return value
    if annotation.startswith("float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{key} must be a number, got {value!r}")
        return float(value)
    if annotation.startswith("int"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{key} must be an integer, got {value!r}")
        return value
    if annotation.startswith("str"):
        if not isinstance(value, str) or (not value.strip() and "None" not in annotation):
            raise ValueError(f"{key} must be a non-empty string, got {value!r}")
        return value
    return value


def _enum_problem(key: str, value: Any, choices: tuple[str, ...], many: bool) -> str | None:
    """The error for a value outside its allowed set (None: fine), listing the allowed values."""
    known = ", ".join(choices)
    if many:
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            return f"{key} must be a list of strings from: {known}; got {value!r}"
        wrong = next((v for v in value if v not in choices), None)
        if wrong is None:
            return None
        return f"{key}: unknown link kind {wrong!r}{_suggest(wrong, list(choices))}; known: {known}"
    if isinstance(value, str) and value in choices:
        return None
    hint = _suggest(value, list(choices)) if isinstance(value, str) else ""
    return f"{key} must be one of {known}, got {value!r}{hint}"


def _thresholds(key: str, value: Any) -> tuple[Threshold, ...]:
    """`{ critical = [1000, "5d"], high = [100, "3d"], medium = [10, "1d"] }` -> thresholds, most severe first."""
    shape = f'{key} must be a table like {{ critical = [1000, "5d"], high = [100, "3d"], medium = [10, "1d"] }}'
    if not isinstance(value, dict) or not value:
        raise ValueError(shape)
    out = []
    for level in LEVELS[:-1]:
        if level not in value:
            continue
        pair = value[level]
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or isinstance(pair[0], bool)
            or not isinstance(pair[0], int)
            or pair[0] < 0
            or not isinstance(pair[1], str)
        ):
            raise ValueError(f'{key}.{level} must be [amount in major units, age like "5d"], got {pair!r}')
        try:
            age = parse_duration(pair[1])
        except ValueError as exc:
            raise ValueError(f"{key}.{level}: {exc}") from None
        out.append(Threshold(level, pair[0], int(age.total_seconds())))
    unknown = [k for k in value if k not in LEVELS[:-1]]
    if unknown:
        raise ValueError(f"{key}: unknown level {unknown[0]!r}; levels are {', '.join(LEVELS[:-1])} (low is the rest)")
    return tuple(out)


def _settle_within(key: str, value: Any) -> SettleWithin:
    """`{ sepa_debit = "21d", card = "15m" }` laid over DEFAULT_SETTLE_WITHIN; every unknown method named."""
    if not isinstance(value, dict):
        raise ValueError(f'[{key}] must be a table like {{ sepa_debit = "21d" }}, got {value!r}')
    problems = []
    table = dict(DEFAULT_SETTLE_WITHIN)
    for method, span in value.items():
        if method not in PAYMENT_METHOD_TYPES:
            problems.append(
                f"{key}: unknown payment method type {method!r}{_suggest(method, list(PAYMENT_METHOD_TYPES))}"
                " (Stripe's PaymentMethod types, e.g. sepa_debit, us_bank_account, card)"
            )
            continue
        try:
            parsed = parse_duration(span) if isinstance(span, str) else None
        except ValueError as exc:
            problems.append(f"{key}.{method}: {exc}")
            continue
        if parsed is None or parsed <= timedelta(0):
            problems.append(f'{key}.{method} must be a duration longer than zero like "21d", got {span!r}')
            continue
        table[method] = parsed
    if problems:
        raise ValueError("; ".join(problems))
    return tuple(table.items())


def _build_section(name: str, cls: type, raw: Any, problems: list[str]) -> Any:
    if not isinstance(raw, dict):
        problems.append(f"[{name}] must be a table")
        return None
    known = {f.name: f for f in fields(cls)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            problems.append(f"unknown key {name}.{key}{_suggest(key, list(known))}")
            continue
        if (name, key) in ENUMERATED:  # a value of the wrong type: said with the allowed values
            choices, many = ENUMERATED[(name, key)]
            strings = isinstance(value, list) and all(isinstance(v, str) for v in value)
            if not (strings if many else isinstance(value, str)):
                problems.append(_enum_problem(f"{name}.{key}", value, choices, many) or "")
                continue
        try:
            values[key] = _convert(f"{name}.{key}", value, str(known[key].type))
        except ValueError as exc:
            problems.append(str(exc))
    missing = [k for k, f in known.items() if k not in raw and f.default is MISSING and f.default_factory is MISSING]
    for key in missing:
        problems.append(f"missing key {name}.{key}")
    if missing or len(values) != len([k for k in raw if k in known]):
        return None
    return cls(**values)


def _check_values(config: Config, problems: list[str]) -> None:
    if config.orders.grace_period < timedelta(0):
        problems.append("orders.grace_period must not be negative")
    if config.orders.amount_tolerance < 0:
        problems.append("orders.amount_tolerance must not be negative")
    if config.window.lookback <= timedelta(0):
        problems.append("window.lookback must be longer than zero")
    if config.stripe.max_network_retries < 0 or config.stripe.rate_limit_retries < 0:
        problems.append("stripe retry counts must not be negative")
    if config.mongodb.repair_batch_size < 1:
        problems.append("mongodb.repair_batch_size must be at least 1")
    if config.stripe.timeout <= timedelta(0):
        problems.append("stripe.timeout must be longer than zero")
    if config.mongodb.server_selection_timeout <= timedelta(0):
        problems.append("mongodb.server_selection_timeout must be longer than zero")
    if config.mongodb.scan_timeout <= timedelta(0):
        problems.append("mongodb.scan_timeout must be longer than zero")
    statuses = [config.orders.pending_status, config.orders.paid_status, config.orders.failed_status]
    if len(set(statuses)) != 3:
        problems.append("orders.pending_status, paid_status and failed_status must differ")
    for name in ("requests_per_second", "account_requests_per_second"):
        rate = getattr(config.stripe, name)
        if rate is not None and not 0 < rate <= 10_000:
            problems.append(f"stripe.{name} must be above 0 and at most 10000, got {rate:g}")
    if config.stripe.concurrency is not None and not 1 <= config.stripe.concurrency <= 64:
        problems.append(f"stripe.concurrency must be between 1 and 64, got {config.stripe.concurrency}")
    _check_operation(config, problems)
    _check_bank(config.bank, problems)
    for (section, key), (choices, many) in ENUMERATED.items():
        problem = _enum_problem(f"{section}.{key}", getattr(getattr(config, section), key), choices, many)
        if problem:
            problems.append(problem)
    link_by = config.matching.link_by
    if not link_by:
        problems.append("matching.link_by must name at least one link kind")
    if len(set(link_by)) != len(link_by):
        problems.append("matching.link_by names a link kind twice")
    for name in ("payment_intent_id_field", "checkout_session_id_field"):
        if getattr(config.orders, name) and "order_fields" not in link_by:
            problems.append(f'orders.{name} is set but matching.link_by does not include "order_fields"')
    if config.payouts.watch_paid_for < timedelta(0) or config.payouts.overdue_after < timedelta(0):
        problems.append("payouts.watch_paid_for and payouts.overdue_after must not be negative")
    if config.matching.probable_match_drift <= timedelta(0):
        problems.append("matching.probable_match_drift must be longer than zero")
    if not _API_VERSION.fullmatch(config.stripe.api_version):
        problems.append(
            f"stripe.api_version must look like {PINNED_API_VERSION!r} (a date, then a release name), "
            f"got {config.stripe.api_version!r}"
        )
    if config.stripe.api_base and not config.stripe.api_base.startswith(("http://", "https://")):
        problems.append(f"stripe.api_base must be an http(s) URL, got {config.stripe.api_base!r}")


_API_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(\.[a-z]+)?")


def _check_operation(config: Config, problems: list[str]) -> None:
    """Watermark, lease, retention and email settings."""
    w, r, e = config.window, config.report, config.email
    if w.overlap < config.orders.grace_period:
        # An order still in flight at the end of one run must fall inside the next run's window.
        problems.append("window.overlap must be at least orders.grace_period, or in-flight orders fall between runs")
    if w.max_span < timedelta(minutes=1):
        problems.append("window.max_span must be at least 1m")
    if config.lease.ttl < timedelta(seconds=1) or config.lease.wait < timedelta(0):
        problems.append("lease.ttl must be at least 1s and lease.wait must not be negative")
    if r.keep_days < 0 or r.recheck_limit < 0 or not 1 <= r.trend_days <= 366:
        problems.append("report.keep_days and report.recheck_limit must not be negative; report.trend_days is 1 to 366")
    if r.order_url is not None and (
        "{order_id}" not in r.order_url or not r.order_url.startswith(("http://", "https://"))
    ):
        problems.append(f"report.order_url must be an http(s) URL with {{order_id}} in it, got {r.order_url[:80]!r}")
    if not 1 <= e.port <= 65535:
        problems.append(f"email.port must be 1 to 65535, got {e.port}")
    for key, value in (("from_addr", e.from_addr), ("subject_prefix", e.subject_prefix), *(("to", t) for t in e.to)):
        if value and any(ch in value for ch in "\r\n"):
            problems.append(f"email.{key} must be one line")  # a newline would inject mail headers
    for key, value in (("from_addr", e.from_addr), *(("to", t) for t in e.to)):
        if value and "@" not in value:
            problems.append(f"email.{key} {value!r} is not an email address")
    if e.send in EMAIL_SEND and e.send != "never":
        missing = [k for k, v in (("host", e.host), ("from_addr", e.from_addr), ("to", e.to)) if not v]
        if missing:
            problems.append(
                f"email.send is {e.send!r} but email.{', email.'.join(missing)} {'is' if len(missing) == 1 else 'are'} not set"
            )


def _check_bank(bank: BankConfig, problems: list[str]) -> None:
    """[bank]: the matching window, the pattern, and how a CSV statement is read."""
    if not 0 <= bank.match_days <= 30:
        problems.append(f"bank.match_days must be 0 to 30 business days, got {bank.match_days}")
    try:
        re.compile(bank.description_pattern)
    except re.error as exc:
        problems.append(f"bank.description_pattern is not a regular expression: {exc}")
    if bank.statements is not None and not bank.statements.strip():
        problems.append('bank.statements must be a file pattern like "bank/*.csv"')
    if (bank.credit_column is None) != (bank.debit_column is None):
        problems.append("bank.credit_column and bank.debit_column go together: set both or neither")
    if bank.decimal_separator not in (".", ","):
        problems.append(f'bank.decimal_separator must be "." or ",", got {bank.decimal_separator!r}')
    if bank.delimiter != "tab" and (len(bank.delimiter) != 1 or bank.delimiter in '"\r\n'):
        problems.append(f'bank.delimiter must be one character other than a quote, or "tab", got {bank.delimiter!r}')
    if bank.currency is not None and not re.fullmatch(r"[A-Za-z]{3}", bank.currency):
        problems.append(f'bank.currency must be a three-letter ISO 4217 code like "EUR", got {bank.currency!r}')
    sample = datetime(2026, 12, 31)
    try:
        readable = datetime.strptime(sample.strftime(bank.date_format), bank.date_format).date() == sample.date()
    except ValueError:
        readable = False
    if not readable:
        problems.append(
            f'bank.date_format must give the day, month and year, like "%d.%m.%Y", got {bank.date_format!r}'
        )


def parse_config(raw: dict[str, Any], source: str = "config") -> Config:
    problems: list[str] = []
    for name in raw:
        if name not in SECTIONS:
            problems.append(f"unknown section [{name}]{_suggest(name, list(SECTIONS))}")
    built: dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        built[name] = _build_section(name, cls, raw.get(name, {}), problems)
    if not problems:
        config = Config(**built)
        _check_values(config, problems)
        if not problems:
            return config
    raise ConfigError(f"{source}: " + "; ".join(problems))


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} not found (pass --config PATH or set RECONCILE_CONFIG; see config.example.toml)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    return parse_config(raw, str(path))
