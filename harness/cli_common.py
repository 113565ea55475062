"""What every command module shares: one-sentence errors, the --db option, opening the database, JSON output.

Its own module so command modules (`cli_audit`, ...) import it without importing `cli` (which registers them).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import click

from kpimcp.scenarios import ScenarioError, UnknownScenarioError

__all__ = ["DB_OPTION_HELP", "UsageFailure", "db_option", "emit_json", "existing_db", "friendly_errors", "writable"]

DB_OPTION_HELP = "Results database (default ./kpimcp.db, or $KPIMCP_DB)."


class UsageFailure(click.ClickException):
    """An error that is the user's input: exit code 2, one sentence."""

    exit_code = 2


def friendly_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library errors into one-sentence messages instead of tracebacks."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UnknownScenarioError as exc:
            raise UsageFailure(str(exc)) from None
        except ScenarioError as exc:
            raise click.ClickException(f"broken scenario: {exc}") from None
        except (KeyError, IndexError):
            raise  # a bug, not the user's input: keep the traceback
        except sqlite3.DatabaseError as exc:
            if type(exc) is not sqlite3.DatabaseError:  # locked, busy, constraint: not the file's fault
                raise
            raise UsageFailure(f"the results database is damaged: {exc}") from None
        except LookupError as exc:  # the library's "no such run/database" errors
            raise UsageFailure(str(exc.args[0] if exc.args else exc)) from None

    return wrapper


def db_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--db", "db", envvar="KPIMCP_DB", default="kpimcp.db", show_default=True,
                        type=click.Path(dir_okay=False, path_type=Path), help=DB_OPTION_HELP)(fn)  # fmt: skip


def existing_db(path: Path, *, write: bool = False, prefer_write: bool = False) -> Any:
    """Open a results database that must already exist: read-only (changing nothing) unless `write`, which
    also upgrades an older schema, or `prefer_write` and the file can be written. Never creates one."""
    from kpimcp.servers.store import open_readonly, upgrade

    if write or (prefer_write and writable(path)):
        from kpimcp.servers import connect

        upgrade(path)  # refuses (one sentence) a missing or foreign file instead of creating one
        return connect(path)
    return open_readonly(path)


def writable(path: Path) -> bool:
    """Whether the database file and its directory (WAL and -shm files live beside it) can be written."""
    import os

    return os.access(path, os.W_OK) and os.access(path.resolve().parent, os.W_OK)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))
