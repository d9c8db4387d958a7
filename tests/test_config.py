from __future__ import annotations

from datetime import timedelta

import pytest

from reconcile.config import load_config, parse_config
from reconcile.errors import ConfigError

MINIMAL = {"mongodb": {"database": "shop"}}


def test_defaults_fill_everything_but_the_database():
    config = parse_config(MINIMAL)
    assert config.orders.pending_status == "created"
    assert config.orders.grace_period == timedelta(minutes=15)
    assert config.window.lookback == timedelta(hours=24)
    assert config.stripe.api_key_env == "STRIPE_API_KEY"


def test_example_config_is_valid():
    config = load_config("config.example.toml")
    assert config.mongodb.database == "shop"


def test_missing_file_names_it(tmp_path):
    with pytest.raises(ConfigError, match="nope.toml not found"):
        load_config(tmp_path / "nope.toml")


def test_toml_syntax_error(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[stripe\napi_key_env = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


def test_every_problem_reported_at_once_with_suggestions():
    raw = {"mongodb": {"databse": "shop"}, "orders": {"grace_period": 15, "pending_stauts": "x"}, "windw": {}}
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    message = str(caught.value)
    assert "unknown key mongodb.databse (did you mean 'database'?)" in message
    assert "missing key mongodb.database" in message
    assert "orders.grace_period must be a duration string" in message
    assert "did you mean 'pending_status'?" in message
    assert "unknown section [windw] (did you mean 'window'?)" in message


@pytest.mark.parametrize(
    "section, key, value, expected",
    [
        ("orders", "grace_period", "-5m", "is negative"),
        ("orders", "amount_tolerance", -1, "must not be negative"),
        ("orders", "amount_tolerance", "1", "must be an integer"),
        ("window", "lookback", "0s", "longer than zero"),
        ("orders", "paid_status", "created", "must differ"),
        ("stripe", "api_base", "localhost:1234", "http(s) URL"),
        (
            "report",
            "order_url",
            "https://admin.example/orders/",
            "report.order_url must be an http(s) URL with {order_id}",
        ),
        ("report", "order_url", "admin/orders/{order_id}", "report.order_url must be an http(s) URL"),
    ],
)
def test_impossible_values(section, key, value, expected):
    raw = {"mongodb": {"database": "shop"}, section: {key: value}}
    raw.setdefault(section, {})[key] = value
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        parse_config(raw)


def test_secrets_come_from_the_environment(monkeypatch):
    config = parse_config(MINIMAL)
    monkeypatch.delenv("STRIPE_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="STRIPE_API_KEY is not set"):
        config.stripe_api_key()
    monkeypatch.setenv("STRIPE_API_KEY", "sk_test_x")
    assert config.stripe_api_key() == "sk_test_x"


def test_request_budget_keys():
    config = parse_config(
        {**MINIMAL, "stripe": {"requests_per_second": 25, "account_requests_per_second": 87.5, "concurrency": 12}}
    )
    assert config.stripe.requests_per_second == 25.0 and isinstance(config.stripe.requests_per_second, float)
    assert config.stripe.account_requests_per_second == 87.5 and config.stripe.concurrency == 12
    defaults = parse_config(MINIMAL).stripe
    # The account rate follows the key's mode when unset (test_budget.py).
    assert (defaults.requests_per_second, defaults.account_requests_per_second, defaults.concurrency) == (
        12.5,
        None,
        None,
    )


def test_api_version_defaults_to_the_sdks_pinned_one_and_is_checked():
    import stripe  # the SDK's public pin (stripe.api_version), no private module read

    assert parse_config(MINIMAL).stripe.api_version == stripe.api_version == "2026-10-28.endive"
    assert parse_config({**MINIMAL, "stripe": {"api_version": "2025-03-31.basil"}}).stripe.api_version == (
        "2025-03-31.basil"
    )
    with pytest.raises(ConfigError, match="stripe.api_version must look like"):
        parse_config({**MINIMAL, "stripe": {"api_version": "endive"}})


@pytest.mark.parametrize(
    "values, message",
    [
        ({"requests_per_second": 0}, "stripe.requests_per_second must be above 0"),
        ({"account_requests_per_second": -3}, "stripe.account_requests_per_second must be above 0"),
        ({"requests_per_second": "fast"}, "stripe.requests_per_second must be a number"),
        ({"requests_per_second": True}, "stripe.requests_per_second must be a number"),
        ({"concurrency": 0}, "stripe.concurrency must be between 1 and 64"),
        ({"concurrency": 2.5}, "stripe.concurrency must be an integer"),
        ({"requests_per_secnd": 3}, "did you mean 'requests_per_second'"),
    ],
)
def test_bad_request_budget_is_one_clear_error(values, message):
    with pytest.raises(ConfigError, match=message):
        parse_config({**MINIMAL, "stripe": values})


def test_every_commented_key_in_the_example_is_a_real_key(tmp_path, monkeypatch):
    lines = []
    for line in open("config.example.toml", encoding="utf-8"):
        stripped = line.lstrip()
        if stripped.startswith("# ") and "=" in stripped.split("#")[1]:
            line = stripped[2:]  # "# key = value  # why" -> "key = value  # why"
        lines.append(line)
    path = tmp_path / "all.toml"
    path.write_text("".join(lines))
    config = load_config(path)
    assert config.email.to == ("finance@example.com", "payments-oncall@example.com")
    assert config.window.overlap == timedelta(hours=1) and config.lease.ttl == timedelta(minutes=2)


def test_operation_settings_are_checked():
    with pytest.raises(ConfigError) as caught:
        parse_config(
            MINIMAL
            | {
                "email": {"send": "sometimes", "security": "ssl", "port": 70000, "to": ["finance"]},
                "lease": {"ttl": "0s"},
                "window": {"max_span": "30s", "overlap": "10m"},
                "report": {"keep_days": -1},
            }
        )
    message = str(caught.value)
    for part in (
        "email.send must be one of always, on_discrepancy, never",
        "email.security must be one of",
        "email.port must be 1 to 65535",
        "email.to 'finance' is not an email address",
        "lease.ttl must be at least 1s",
        "window.max_span must be at least 1m",
        "report.keep_days",
        "window.overlap must be at least orders.grace_period",
    ):
        assert part in message
    with pytest.raises(ConfigError, match="email.send is 'always' but email.host, email.from_addr are not set"):
        parse_config(MINIMAL | {"email": {"send": "always", "to": ["f@example.com"]}})


def test_link_kinds_default_and_unknown_ones_are_refused_by_name():
    """Config holds the link kinds decide/match follows (tests/test_match_rules.py has a row for each)."""
    from reconcile import config

    assert parse_config(MINIMAL).matching.link_by == config.DEFAULT_LINK_BY
    assert set(config.DEFAULT_LINK_BY) <= set(config.LINK_KINDS)
    with pytest.raises(ConfigError) as refused:
        parse_config(MINIMAL | {"matching": {"link_by": ["charge_metadata", "by_magic"]}})
    assert "by_magic" in str(refused.value) and all(kind in str(refused.value) for kind in config.LINK_KINDS)


def test_order_url_is_optional():
    assert parse_config(MINIMAL).report.order_url is None
    raw = {"mongodb": {"database": "shop"}, "report": {"order_url": "https://admin.example/orders/{order_id}"}}
    assert parse_config(raw).report.order_url == "https://admin.example/orders/{order_id}"
