"""The TOML config, read once into a validated, frozen object.

Every problem is reported at once, naming the key; secrets come only from the environment.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from dataclasses import MISSING, dataclass, fields
from datetime import timedelta
from pathlib import Path
from typing import Any

from reconcile.errors import ConfigError
from reconcile.timeutil import parse_duration


@dataclass(frozen=True)
class StripeConfig:
    api_key_env: str = "STRIPE_API_KEY"
    api_base: str | None = None
    order_id_metadata_key: str = "order_id"
    dashboard_url: str = "https://dashboard.stripe.com"
    max_network_retries: int = 3
    timeout: timedelta = timedelta(seconds=30)
    rate_limit_retries: int = 8
    max_retry_time: timedelta = timedelta(minutes=5)
    # The run's request budget (all pulls together). Defaults: half of Stripe's published limits
    # (25/s per endpoint, 100/s per live account), leaving the rest to the shop's live checkout.
    requests_per_second: float = 12.5
    account_requests_per_second: float = 50.0
    # Requests one window pull keeps in flight; unset: enough for the budget at ~0.8 s a page.
    concurrency: int | None = None


@dataclass(frozen=True)
class MongoConfig:
    database: str
    uri_env: str = "MONGODB_URI"
    orders_collection: str = "orders"
    audit_collection: str = "reconcile_audit"
    server_selection_timeout: timedelta = timedelta(seconds=10)


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


@dataclass(frozen=True)
class WindowConfig:
    lookback: timedelta = timedelta(hours=24)
    # How far past the window's edges to look for the charge of an order that seems to have none.
    edge_slack: timedelta = timedelta(minutes=30)
    # Longer windows are reconciled in consecutive pieces of at most this length (oldest first):
    # memory grows with the largest piece. ~2 GB per million charges in a piece.
    sub_window: timedelta = timedelta(hours=24)


@dataclass(frozen=True)
class ReportConfig:
    dir: str = "reports"


@dataclass(frozen=True)
class Config:
    stripe: StripeConfig
    mongodb: MongoConfig
    orders: OrdersConfig
    window: WindowConfig
    report: ReportConfig

    def stripe_api_key(self) -> str:
        return _secret(self.stripe.api_key_env, "the Stripe API key")

    def mongodb_uri(self) -> str:
        return _secret(self.mongodb.uri_env, "the MongoDB connection string")


SECTIONS: dict[str, type] = {
    "stripe": StripeConfig,
    "mongodb": MongoConfig,
    "orders": OrdersConfig,
    "window": WindowConfig,
    "report": ReportConfig,
}


def _secret(env_name: str, what: str) -> str:
    value = os.environ.get(env_name, "").strip()
    if not value:
        raise ConfigError(f"environment variable {env_name} is not set: it must hold {what}")
    return value


def _suggest(name: str, choices: list[str]) -> str:
    match = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _convert(key: str, value: Any, annotation: str) -> Any:
    """Check one value against its field's declared type; raise ValueError naming the problem."""
    if "timedelta" in annotation:
        if not isinstance(value, str):
            raise ValueError(f"{key} must be a duration string like \"15m\", got {value!r}")
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None
    if "tuple" in annotation:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{key} must be a list of strings, got {value!r}")
        return tuple(value)
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
        try:
            values[key] = _convert(f"{name}.{key}", value, str(known[key].type))
        except ValueError as exc:
            problems.append(str(exc))
    missing = [
        k for k, f in known.items()
        if k not in raw and f.default is MISSING and f.default_factory is MISSING
    ]
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
    if config.window.sub_window < timedelta(minutes=1):
        problems.append("window.sub_window must be at least 1m")
    if config.window.lookback <= timedelta(0):
        problems.append("window.lookback must be longer than zero")
    if config.stripe.max_network_retries < 0 or config.stripe.rate_limit_retries < 0:
        problems.append("stripe retry counts must not be negative")
    statuses = [config.orders.pending_status, config.orders.paid_status, config.orders.failed_status]
    if len(set(statuses)) != 3:
        problems.append("orders.pending_status, paid_status and failed_status must differ")
    for name in ("requests_per_second", "account_requests_per_second"):
        rate = getattr(config.stripe, name)
        if not 0 < rate <= 10_000:
            problems.append(f"stripe.{name} must be above 0 and at most 10000, got {rate:g}")
    if config.stripe.concurrency is not None and not 1 <= config.stripe.concurrency <= 64:
        problems.append(f"stripe.concurrency must be between 1 and 64, got {config.stripe.concurrency}")
    if config.stripe.api_base and not config.stripe.api_base.startswith(("http://", "https://")):
        problems.append(f"stripe.api_base must be an http(s) URL, got {config.stripe.api_base!r}")


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
        raise ConfigError(f"config file {path} not found (pass --config PATH; see config.example.toml)") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    return parse_config(raw, str(path))
