"""Who may use the server: a shared token for both transports, and the browser origins allowed.

With a token configured, every Socket.IO connection must present it in its
``auth`` payload (``{"token": ...}``) and every REST call in an
``Authorization: Bearer ...`` header; the comparison takes constant time.
Browsers may only connect from the server's own origin unless origins are
allowed explicitly (never ``*``).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, request

from dataprovider.errors import AuthenticationError

__all__ = ["install_rest_guard", "is_loopback", "origin_checker", "socket_token", "token_matches", "unauthorized"]

_BEARER = "bearer "


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server reachable from this machine only.

    Examples
    --------
    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def token_matches(expected: str | None, presented: object) -> bool:
    """Whether ``presented`` is the expected token (always True when no token is configured)."""
    if expected is None:
        return True
    if not isinstance(presented, str):
        return False
    return hmac.compare_digest(presented.encode(), expected.encode())


def unauthorized(transport: str, presented: bool) -> AuthenticationError:
    """The error for a request without the right token, saying how to send it."""
    how = (
        "auth={'token': ...} when connecting" if transport == "socket" else "an 'Authorization: Bearer <token>' header"
    )
    problem = "the token is wrong" if presented else "no token was sent"
    return AuthenticationError(
        f"this server requires a token and {problem}: send it with {how} "
        "(DataProviderLocal(token=...) or $DATAPROVIDER_TOKEN do it for you)"
    )


def origin_checker(allowed_origins: tuple[str, ...]) -> Callable[[str | None, dict[str, Any]], bool]:
    """The browser-origin rule for Socket.IO: the server's own origin, or one allowed explicitly."""

    def allowed(origin: str | None, environ: dict[str, Any]) -> bool:
        own = f"{environ.get('wsgi.url_scheme', 'http')}://{environ.get('HTTP_HOST', '')}"
        return origin == own or origin in allowed_origins

    return allowed


def socket_token(auth: Any) -> str | None:
    """The token a Socket.IO client sent in its ``auth`` payload, if any."""
    return auth.get("token") if isinstance(auth, dict) else None


def install_rest_guard(app: Flask, token: str | None, allowed_origins: tuple[str, ...]) -> None:
    """Check the bearer token on every /api request, and answer allowed browser origins with CORS headers."""
    from server.http.routes import error_response

    @app.before_request
    def check_token() -> Response | None:
        if token is None or request.method == "OPTIONS":
            return None
        header = request.headers.get("Authorization", "")
        presented = header[len(_BEARER) :] if header.lower().startswith(_BEARER) else None
        if token_matches(token, presented):
            return None
        return error_response(unauthorized("rest", presented is not None))

    @app.after_request
    def allow_origin(response: Response) -> Response:
        origin = request.headers.get("Origin")
        if origin is not None and origin in allowed_origins:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
            response.headers["Vary"] = "Origin"
        return response
