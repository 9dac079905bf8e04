"""A guard that makes any attempt to reach the internet fail a test loudly.

:func:`no_network` refuses DNS lookups of, and socket connections to, anything but
loopback (so integration tests can still talk to a server on 127.0.0.1) and Unix
sockets. libcurl (curl_cffi, yfinance's default HTTP backend) opens its sockets in C,
out of this guard's reach, so the guard also points yfinance's process-wide session
at one that refuses every request, and makes yfinance's ``new_session`` (which a
``YahooSource`` without a session calls) return such a session; tests that want Yahoo
install a ``YahooReplay`` session instead.

Examples
--------
In ``tests/conftest.py``::

    @pytest.fixture(autouse=True)
    def _offline():
        with no_network():
            yield
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import requests
import requests_mock
import yfinance.data

__all__ = ["NetworkAccessError", "no_network", "refusing_session"]

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


class NetworkAccessError(AssertionError):
    """A test tried to reach a host other than loopback."""


def _is_loopback(host: object) -> bool:
    if host is None or host in ("", b""):
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def refusing_session() -> requests.Session:
    """A ``requests.Session`` whose every request raises :class:`NetworkAccessError`."""

    def refuse(request, context):
        raise NetworkAccessError(f"test tried to reach the network: {request.method} {request.url}")

    adapter = requests_mock.Adapter()
    adapter.register_uri(requests_mock.ANY, requests_mock.ANY, text=refuse)
    session = requests.Session()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


@contextmanager
def no_network() -> Iterator[None]:
    """Within the block, non-loopback DNS lookups and connections raise NetworkAccessError.

    On entry yfinance's process-wide session is replaced by :func:`refusing_session`
    (it is not restored: later tests install their own replay session when they need one).
    """
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def getaddrinfo(host, *args, **kwargs):
        if not _is_loopback(host):
            raise NetworkAccessError(f"test tried to resolve {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    def check(sock: socket.socket, address: object) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
            raise NetworkAccessError(f"test tried to connect to {address!r}")

    def connect(sock, address):
        check(sock, address)
        return real_connect(sock, address)

    def connect_ex(sock, address):
        check(sock, address)
        return real_connect_ex(sock, address)

    yfinance.data.YfData(session=refusing_session())
    real_new_session = yfinance.data.new_session
    yfinance.data.new_session = refusing_session

    socket.getaddrinfo = getaddrinfo
    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    try:
        yield
    finally:
        yfinance.data.new_session = real_new_session
        socket.getaddrinfo = real_getaddrinfo
        socket.socket.connect = real_connect
        socket.socket.connect_ex = real_connect_ex
