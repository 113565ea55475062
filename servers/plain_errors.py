"""Plain error sentences for what clients get wrong: bad tool arguments, unknown prompts.

The MCP library words argument errors as pydantic does ("1 validation error for list_recordsArguments ...
For further information visit https://errors.pydantic.dev/..."): library names and URLs an agent reads as a
sign of a test harness. The server checks the arguments itself first, with the very validator the library
would use, and answers with one sentence per problem, as a real workspace's API would.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS
from pydantic import ValidationError

__all__ = ["ArgumentChecker", "check_prompt", "describe_errors"]

# pydantic error types worded for a person; anything else keeps pydantic's message (it is a plain sentence
# once the type tag and URL are gone).
_WORDING = {
    "missing": "is required",
    "extra_forbidden": "is not a parameter of this operation",
    "string_type": "must be text",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "dict_type": "must be an object of named fields",
    "list_type": "must be a list",
}


def _where(loc: Iterable[Any]) -> str:
    parts = [str(p) for p in loc]
    return ".".join(parts) or "the arguments"


def _sentence(err: Mapping[str, Any]) -> str:
    kind = str(err.get("type", ""))
    what = _WORDING.get(kind)
    if what is None:
        msg = str(err.get("msg") or "Input is not valid").rstrip(".")
        what = "must be " + msg[len("Input should be "):] if msg.startswith("Input should be ") else \
            msg[0].lower() + msg[1:]
    return f"'{_where(err.get('loc', ()))}' {what}"


def describe_errors(tool: str, errors: list[Mapping[str, Any]]) -> str:
    """One plain sentence naming each rejected argument, e.g. "Invalid arguments for get_record: 'record_id' is
    required." Union alternatives (one error per allowed type) collapse into one problem per argument."""
    seen: dict[str, str] = {}
    for err in errors:
        loc = list(err.get("loc", ()))
        # a union reports one error per member type, the member's name last in loc ("a.str", "a.int", ...)
        if len(loc) > 1 and str(loc[-1]) in {"str", "int", "float", "bool", "list", "dict", "none"}:
            seen.setdefault(_where(loc[:-1]), f"'{_where(loc[:-1])}' has a type that is not accepted here")
            continue
        seen.setdefault(_where(loc), _sentence(err))
    return f"Invalid arguments for {tool}: " + "; ".join(seen.values()) + "."


class ArgumentChecker:
    """Validates a tool call's arguments exactly as the server's tools would, without running the tool."""

    def __init__(self, server: MCPServer) -> None:
        # The tool manager holds each tool's argument model (mcp 2.3; pinned to the minor line in pyproject).
        self._tools = server._tool_manager

    def problem(self, name: Any, arguments: Any) -> str | None:
        """The sentence to answer with, or None when the arguments are fine (or the tool is unknown: the
        library's "Unknown tool: X" is already plain)."""
        tool = self._tools.get_tool(name) if isinstance(name, str) else None
        if tool is None:
            return None
        if arguments is not None and not isinstance(arguments, dict):
            return f"Invalid arguments for {name}: the arguments must be an object of named fields."
        try:
            tool.fn_metadata.validate_arguments(arguments or {})
        except ValidationError as exc:
            return describe_errors(name, exc.errors(include_url=False))
        except Exception:  # a validator that crashes is the tool's business: let the library report it
            return None
        return None


def check_prompt(params: Any, known: set[str]) -> None:
    """Refuse an unknown prompt name with a sentence (the library answers "Internal server error")."""
    name = (params or {}).get("name") if isinstance(params, Mapping) else None
    if name not in known:
        raise MCPError(code=INVALID_PARAMS, message=f"Unknown prompt: {name}")
