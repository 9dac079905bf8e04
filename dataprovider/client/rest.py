"""The client's REST transport: plain HTTP calls to the server's /api endpoints."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import requests

from dataprovider import protocol
from dataprovider.errors import ConnectionFailedError, DataProviderError, RequestTimeoutError, error_from_payload

__all__ = ["RestTransport"]


class RestTransport:
    """HTTP calls to one server, errors turned into :class:`DataProviderError` subclasses.

    Parameters
    ----------
    url : str
        The server's base URL.
    timeout : float
        Seconds to wait for each answer.
    token : str, optional
        The server's token, sent as ``Authorization: Bearer <token>``.
    """

    def __init__(self, url: str, timeout: float, token: str | None = None) -> None:
        self.url = url
        self.timeout = timeout
        self._session = requests.Session()
        if token is not None:
            self._session.headers["Authorization"] = f"Bearer {token}"

    def data(self, ticker: str, params: dict[str, Any]) -> tuple[pd.DataFrame, dict[str, Any]]:
        """``GET /api/data/<ticker>`` as Arrow: the frame and the result's summary."""
        response = self.call("GET", f"/api/data/{ticker}", ticker, params={**params, "format": "arrow"})
        summary = json.loads(response.headers.get("X-Dataprovider-Summary", "{}"))
        return protocol.frame_from_arrow(response.content), summary

    def batch(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /api/batch`` (frames as JSON): the ``batch_response`` payload."""
        return self.call("POST", "/api/batch", None, json={**body, "format": "json"}).json()

    def call(self, method: str, path: str, ticker: str | None, **kwargs: Any) -> requests.Response:
        """One HTTP request; a transport failure or an error body raises.

        Raises
        ------
        ConnectionFailedError, RequestTimeoutError
            If the server cannot be reached or does not answer in time.
        DataProviderError
            The server's error, rebuilt from its JSON body.
        """
        try:
            response = self._session.request(method, self.url + path, timeout=self.timeout, **kwargs)
        except requests.Timeout as exc:
            raise RequestTimeoutError(
                f"Request timeout: no reply from {self.url} for {ticker or path} within {self.timeout:g} s",
                ticker=ticker,
            ) from exc
        except requests.RequestException as exc:
            raise ConnectionFailedError(
                f"Failed to connect to the server at {self.url}: {exc}. Is it running (`python -m server`)?",
                details={"url": self.url},
            ) from exc
        if response.status_code >= 400:
            try:
                error = error_from_payload(response.json()["error"])
            except (ValueError, KeyError, TypeError):
                error = DataProviderError(f"HTTP {response.status_code} from {path}: {response.text[:200]}")
            error.ticker = error.ticker or ticker
            raise error
        return response
