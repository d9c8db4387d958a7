"""Exact money: amounts are integer minor units; display uses each currency's exponent."""

from __future__ import annotations

from decimal import Decimal
from numbers import Integral

# Stripe's zero-decimal currencies (amounts are whole units) and three-decimal ones.
ZERO_DECIMAL = frozenset("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split())
THREE_DECIMAL = frozenset("bhd jod kwd omr tnd".split())


def exponent(currency: str) -> int:
    code = (currency or "").lower()
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    return 2


def format_amount(minor: int | None, currency: str) -> str:
    """1999, 'usd' -> '19.99 USD'; 1999, 'jpy' -> '1,999 JPY'. Integer arithmetic only."""
    if minor is None:
        return ""
    minor = int(minor)
    places = exponent(currency)
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), 10**places)
    text = f"{whole:,}" + (f".{frac:0{places}d}" if places else "")
    return f"{sign}{text} {(currency or '').upper()}".strip()


def to_decimal_text(minor: int | None, currency: str) -> str:
    """1999, 'usd' -> '19.99' (no grouping, for CSV cells a spreadsheet reads as a number)."""
    if minor is None:
        return ""
    return format_amount(minor, currency).replace(",", "").split(" ")[0]


def minor_units(value: object) -> int | None:
    """An amount as machine output carries it: an exact integer of minor units, None when it is not one
    (missing, text, a fraction). Never a float in JSON; an integral float (a pandas cell) becomes its int."""
    if isinstance(value, bool):
        return None
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def currency_code(currency: str | None) -> str | None:
    """The currency code as machine output carries it: ISO 4217 in lower case, as Stripe writes it
    (an order may store `JPY`); None when unknown."""
    code = (currency or "").strip().lower()
    return code or None


def decimal_to_minor(value: Decimal, currency: str) -> int:
    """An exact decimal amount in minor units of its currency: Decimal('12.50'), 'eur' -> 1250. ValueError
    for a value that is not finite or has more decimals than the currency has (12.505 EUR, 1.5 JPY)."""
    if not value.is_finite():
        raise ValueError(f"{value} is not an amount")
    scaled = value.scaleb(exponent(currency))
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{value} has more decimals than {(currency or '').upper()} has ({exponent(currency)})")
    return int(scaled)
