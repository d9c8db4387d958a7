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


@pytest.mark.parametrize("section, key, value, expected", [
    ("orders", "grace_period", "-5m", "not a duration"),
    ("orders", "amount_tolerance", -1, "must not be negative"),
    ("orders", "amount_tolerance", "1", "must be an integer"),
    ("window", "lookback", "0s", "longer than zero"),
    ("orders", "paid_status", "created", "must differ"),
    ("stripe", "api_base", "localhost:1234", "http(s) URL"),
])
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
    config = parse_config({**MINIMAL, "stripe": {"requests_per_second": 25, "account_requests_per_second": 87.5,
                                                 "concurrency": 12}})
    assert config.stripe.requests_per_second == 25.0 and isinstance(config.stripe.requests_per_second, float)
    assert config.stripe.account_requests_per_second == 87.5 and config.stripe.concurrency == 12
    defaults = parse_config(MINIMAL).stripe
    assert (defaults.requests_per_second, defaults.account_requests_per_second, defaults.concurrency) == (12.5, 50.0, None)


@pytest.mark.parametrize("values, message", [
    ({"requests_per_second": 0}, "stripe.requests_per_second must be above 0"),
    ({"account_requests_per_second": -3}, "stripe.account_requests_per_second must be above 0"),
    ({"requests_per_second": "fast"}, "stripe.requests_per_second must be a number"),
    ({"requests_per_second": True}, "stripe.requests_per_second must be a number"),
    ({"concurrency": 0}, "stripe.concurrency must be between 1 and 64"),
    ({"concurrency": 2.5}, "stripe.concurrency must be an integer"),
    ({"requests_per_secnd": 3}, "did you mean 'requests_per_second'"),
])
def test_bad_request_budget_is_one_clear_error(values, message):
    with pytest.raises(ConfigError, match=message):
        parse_config({**MINIMAL, "stripe": values})
