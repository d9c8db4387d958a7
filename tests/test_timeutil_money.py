from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reconcile.money import format_amount, to_decimal_text
from reconcile.timeutil import parse_duration, parse_when

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("90m", timedelta(minutes=90)),
        ("6h", timedelta(hours=6)),
        ("3d", timedelta(days=3)),
        ("1h30m", timedelta(minutes=90)),
        ("45s", timedelta(seconds=45)),
    ],
)
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "5", "h", "-1h", "1y", "soon"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("6h", NOW - timedelta(hours=6)),
        ("2026-11-18T09:00", datetime(2026, 11, 18, 9, 0, tzinfo=UTC)),  # naive means UTC
        ("2026-11-18T10:00+01:00", datetime(2026, 11, 18, 9, 0, tzinfo=UTC)),
        ("2026-11-18", datetime(2026, 11, 18, tzinfo=UTC)),
    ],
)
def test_parse_when(text, expected):
    assert parse_when(text, NOW) == expected


def test_parse_when_rejects_garbage():
    with pytest.raises(ValueError, match="neither an ISO-8601 time"):
        parse_when("yesterday-ish", NOW)


@pytest.mark.parametrize(
    "minor, currency, text",
    [
        (1999, "usd", "19.99 USD"),
        (-1999, "eur", "-19.99 EUR"),
        (5, "usd", "0.05 USD"),
        (4980, "jpy", "4,980 JPY"),
        (1000, "krw", "1,000 KRW"),
        (12345, "kwd", "12.345 KWD"),
        (123456789, "usd", "1,234,567.89 USD"),
    ],
)
def test_format_amount_uses_currency_exponent(minor, currency, text):
    assert format_amount(minor, currency) == text


def test_decimal_text_has_no_grouping():
    assert to_decimal_text(123456789, "usd") == "1234567.89"
    assert to_decimal_text(4980, "JPY") == "4980"
