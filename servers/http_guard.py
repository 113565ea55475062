"""What stands between the network and an HTTP host: Host/Origin allow-lists, the bearer token, time limits.

- Host and Origin are checked on every request (health check and 404s included), against the loopback names,
  the bind address, and, for a wildcard bind (`0.0.0.0`, `::`), this machine's names and addresses, plus what
  `--allowed-host` / `--allowed-origin` add (`*` turns a check off). This is DNS-rebinding protection for
  browsers; the bearer token is what keeps other clients out.
- The bearer scheme is case-insensitive (RFC 9110 §11.1); the token is compared in constant time.
- A connection must send a complete request head within `header_timeout` seconds of opening (or of its
  previous response), so slow-header (slowloris) connections are closed; an idle keep-alive connection is
  closed after `idle_timeout` seconds (uvicorn's keep-alive timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = [
    "DEFAULT_HEADER_TIMEOUT",
    "DEFAULT_IDLE_TIMEOUT",
    "HostPolicy",
    "bearer_matches",
    "header_timeout_protocol",
    "host_name",
    "is_wildcard",
    "machine_names",
]

DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_IDLE_TIMEOUT = 30
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_WILDCARDS = ("0.0.0.0", "::", "")


def is_wildcard(host: str) -> bool:
    """True for a bind address meaning "every interface"."""
    return host.strip("[]") in _WILDCARDS


def machine_names() -> set[str]:
    """This machine's host names and addresses (what clients on the network put in `Host`)."""
    names = {socket.gethostname().lower(), socket.getfqdn().lower()}
    for name in list(names):
        with contextlib.suppress(OSError):
            names |= {info[4][0] for info in socket.getaddrinfo(name, None)}
    try:  # the address of the default route's interface; a UDP "connect" sends nothing
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("10.255.255.255", 1))
            names.add(probe.getsockname()[0])
    except OSError:
        pass
    return {n.split("%")[0] for n in names if n}


def host_name(value: str) -> str:
    """The host part of a `Host` header value (`name:port`, `[v6]:port`), lower-cased, brackets removed."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


@dataclass
class HostPolicy:
    """The Host names and Origins an HTTP host answers (`"*"` in either list switches that check off)."""

    hosts: set[str] = field(default_factory=set)
    origins: set[str] = field(default_factory=set)

    @classmethod
    def for_bind(cls, bind: str, extra_hosts: Iterable[str] = (), extra_origins: Iterable[str] = ()) -> HostPolicy:
        hosts = {*_LOOPBACK, host_name(bind) if not bind.startswith("[") else bind.strip("[]").lower()}
        if is_wildcard(bind):
            hosts |= machine_names()
        hosts |= {h if h == "*" else host_name(h) for h in extra_hosts}
        hosts -= set(_WILDCARDS)
        return cls(hosts, {o.rstrip("/").lower() for o in extra_origins})

    def host_allowed(self, header: str | None) -> bool:
        if "*" in self.hosts:
            return True
        return bool(header) and host_name(header) in self.hosts

    def origin_allowed(self, origin: str | None) -> bool:
        """No Origin (not a browser) passes; a browser's must be an allowed host or listed exactly."""
        if not origin or "*" in self.origins or origin.rstrip("/").lower() in self.origins:
            return True
        try:
            parts = urlsplit(origin)
        except ValueError:
            return False
        return parts.scheme in ("http", "https") and (parts.hostname or "") in (self.hosts - {"*"})


def bearer_matches(header: str | None, token: str) -> bool:
    """True if an `Authorization` header carries `token` with the Bearer scheme (any case)."""
    scheme, _, given = (header or "").strip().partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def header_timeout_protocol(header_timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol, closing connections that do not finish a request head in `header_timeout` s."""

    class HeaderTimeoutProtocol(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            self._disarm()
            self._head_timer = self.loop.call_later(header_timeout, self._head_timed_out)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            if not self.transport.is_closing() and self.conn.their_state in (h11.IDLE,):
                self.transport.close()

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:  # the request head is complete
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()

    return HeaderTimeoutProtocol
