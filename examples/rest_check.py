"""Is the server up? Its health and one request over REST: ``python examples/rest_check.py [TICKER]``.

The client talks to ``$DATAPROVIDER_URL``, else http://127.0.0.1:5001, and asks for one year of
daily bars of TICKER (default SPY) from the cache alone (``local_only=True``, the default). It exits
1, saying why, if the server does not answer or the request fails.
"""

from __future__ import annotations

import sys

from dataprovider import DataProviderError, DataProviderLocal


def main(argv: list[str]) -> int:
    ticker = argv[0] if argv else "SPY"
    provider = DataProviderLocal(raise_errors=True)
    try:
        health = provider.health()
        print(
            f"health: {health['status']} at {provider.url} (server {health['server_version']}, "
            f"protocol {health['protocol_version']}, {health['cached_instruments']} cached datasets, "
            f"upstream {health['upstream']})"
        )
        df = provider.get_data(ticker, "1d", "1y", local_only=True)
    except DataProviderError as error:
        print(f"error {error.code}: {error.message}", file=sys.stderr)
        return 1
    print(f"GET /api/data/{ticker}: {len(df)} rows, {df.index[0]} -> {df.index[-1]}")
    print(df.tail().to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
