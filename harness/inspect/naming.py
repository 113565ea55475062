"""Registry names that stay `kpimcp/<name>` however kpimcp was installed.

Inspect prefixes a task's name with its package only when it can prove the package is installed; run from a
source checkout (cwd = the repo), the checkout's `kpimcp.egg-info` shadows the installed metadata and the
proof fails, which would register `scenario` instead of `kpimcp/scenario`. Giving the full name in that case
keeps `inspect eval kpimcp/scenario` working everywhere.
"""

from __future__ import annotations

from typing import Any

__all__ = ["registered", "registry_name_for"]

PACKAGE = "kpimcp"


def _probe() -> None:
    """A function of this package, for asking Inspect how it names our objects."""


def registry_name_for(short: str) -> str | None:
    """`None` (Inspect prefixes `kpimcp/` itself) or the explicit `kpimcp/<short>` when it would not."""
    from inspect_ai._util.registry import registry_name  # the same computation the decorators make

    return None if registry_name(_probe, short) == f"{PACKAGE}/{short}" else f"{PACKAGE}/{short}"


def registered(decorator: Any, short: str, **kwargs: Any) -> Any:
    """`decorator(**kwargs)`, with `name=kpimcp/<short>` only when Inspect would not prefix it itself."""
    name = registry_name_for(short)
    return decorator(name=name, **kwargs) if name else decorator(**kwargs) if kwargs else decorator
