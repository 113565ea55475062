"""Options of `kpimcp serve` that bound what clients can make a server do (sizes, timeouts, runs, allowed names)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

__all__ = ["serve_limit_options"]

# Mirrors kpimcp.servers defaults without importing mcp at CLI start-up (`kpimcp --help` stays instant).
_MAX_REQUEST_BYTES = 4 * 1024 * 1024
_MAX_RUNS = 1000
_HEADER_TIMEOUT = 10.0
_IDLE_TIMEOUT = 30


def serve_limit_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add the limit and allow-list options; they reach the command as keyword arguments."""
    options = [
        click.option("--max-request-bytes", type=click.IntRange(1024), default=_MAX_REQUEST_BYTES, show_default=True,
                     help="Largest request accepted (a stdio line or an HTTP body); bigger ones are refused."),
        click.option("--max-runs", type=click.IntRange(1), default=_MAX_RUNS, show_default=True,
                     help="Most runs one HTTP server serves; requests naming more runs are refused."),
        click.option("--header-timeout", type=click.FloatRange(0.1), default=_HEADER_TIMEOUT, show_default=True,
                     help="Seconds an HTTP connection has to send a complete request head (slowloris guard)."),
        click.option("--idle-timeout", type=click.IntRange(1), default=_IDLE_TIMEOUT, show_default=True,
                     help="Seconds an idle HTTP keep-alive connection stays open."),
        click.option("--allowed-host", "allowed_hosts", multiple=True, metavar="NAME",
                     help="Also answer this Host name (repeatable; '*' = any). Loopback names, the bind address "
                          "and, for 0.0.0.0, this machine's names and addresses are always allowed."),
        click.option("--allowed-origin", "allowed_origins", multiple=True, metavar="URL",
                     help="Also accept browser requests from this Origin (repeatable; '*' = any)."),
    ]  # fmt: skip
    for option in reversed(options):
        fn = option(fn)
    return fn
