"""Ticker symbols: the strict allowlist every ticker passes, and exchange-timezone guesses.

A ticker is a Yahoo Finance symbol such as ``SPY``, ``^GSPC``, ``EURUSD=X``,
``BRK-B``, ``BTC-USD``, ``0700.HK`` or ``ES=F``: ASCII letters and digits, with
'.', '-' and '=' inside and an optional leading '^'. Nothing else passes, so a
ticker can never spell a path ('/', '..', NUL and the like are refused).
"""

from __future__ import annotations

import re

from dataprovider.errors import InvalidRequestError, describe_value

__all__ = ["MAX_TICKER_LENGTH", "TICKER_PATTERN", "guess_timezone", "is_crypto", "validate_ticker"]

MAX_TICKER_LENGTH = 32
#: What a ticker looks like (any case), written so Python and JSON Schema (ECMA-262) read it alike:
#: a '.' or '-' is always followed by a letter, digit or '='.
TICKER_PATTERN = r"\^?[A-Za-z0-9](?:[A-Za-z0-9=]|[.\-][A-Za-z0-9=])*"
_TICKER_RE = re.compile(TICKER_PATTERN, re.ASCII)

_CRYPTO_QUOTES = ("USD", "USDT", "USDC", "EUR", "GBP", "JPY", "BTC", "ETH")

# Yahoo's exchange suffixes and the timezone each exchange keeps.
_SUFFIX_TIMEZONES = {
    "L": "Europe/London",
    "DE": "Europe/Berlin",
    "F": "Europe/Berlin",
    "PA": "Europe/Paris",
    "AS": "Europe/Amsterdam",
    "MI": "Europe/Rome",
    "MC": "Europe/Madrid",
    "SW": "Europe/Zurich",
    "ST": "Europe/Stockholm",
    "HK": "Asia/Hong_Kong",
    "T": "Asia/Tokyo",
    "SS": "Asia/Shanghai",
    "SZ": "Asia/Shanghai",
    "KS": "Asia/Seoul",
    "NS": "Asia/Kolkata",
    "BO": "Asia/Kolkata",
    "AX": "Australia/Sydney",
    "TO": "America/Toronto",
    "V": "America/Toronto",
    "SA": "America/Sao_Paulo",
}


def validate_ticker(value: object, field: str = "ticker") -> str:
    """Return ``value`` as a canonical (upper-case) ticker, or raise INVALID_TICKER.

    Examples
    --------
    >>> validate_ticker("brk-b")
    'BRK-B'
    >>> validate_ticker("../etc/passwd")
    Traceback (most recent call last):
    ...
    dataprovider.errors.InvalidRequestError: INVALID_TICKER: ...
    """
    if not isinstance(value, str):
        missing = f"{field} is missing" if value is None else f"{field} must be a string; got {describe_value(value)}"
        raise InvalidRequestError(
            f"{missing}: send a Yahoo Finance symbol such as 'SPY' or 'BTC-USD'", code="INVALID_TICKER", field=field
        )
    if not value:
        problem = "is empty"
    elif len(value) > MAX_TICKER_LENGTH:
        problem = f"is longer than {MAX_TICKER_LENGTH} characters"
    elif value != value.strip():
        problem = "has leading or trailing whitespace"
    elif not value.isascii():
        problem = "has non-ASCII characters"
    elif not _TICKER_RE.fullmatch(value):
        problem = "has characters a Yahoo symbol cannot have"
    else:
        return value.upper()
    raise InvalidRequestError(
        f"{field} {describe_value(value)} {problem}: use a Yahoo Finance symbol of letters and digits with "
        "'.', '-' or '=' inside and an optional leading '^' (e.g. SPY, ^GSPC, BRK-B, EURUSD=X)",
        code="INVALID_TICKER",
        field=field,
        ticker=value if isinstance(value, str) and len(value) <= 64 else None,
    )


def is_crypto(ticker: str) -> bool:
    """True for a crypto pair such as BTC-USD (traded 24/7, bars in UTC).

    Examples
    --------
    >>> is_crypto("ETH-USD"), is_crypto("BRK-B")
    (True, False)
    """
    base, _, quote = ticker.partition("-")
    return bool(base) and quote in _CRYPTO_QUOTES


def guess_timezone(ticker: str) -> str:
    """The exchange timezone Yahoo would report for ``ticker``, guessed from its form.

    Used only where no source says otherwise (imports of naive CSV files):
    crypto pairs are UTC, FX pairs (``=X``) Europe/London, symbols with an
    exchange suffix take that exchange's timezone, everything else New York.

    Examples
    --------
    >>> guess_timezone("BTC-USD"), guess_timezone("0700.HK"), guess_timezone("SPY")
    ('UTC', 'Asia/Hong_Kong', 'America/New_York')
    """
    if is_crypto(ticker):
        return "UTC"
    if ticker.endswith("=X"):
        return "Europe/London"
    _, dot, suffix = ticker.rpartition(".")
    if dot and suffix in _SUFFIX_TIMEZONES:
        return _SUFFIX_TIMEZONES[suffix]
    return "America/New_York"
