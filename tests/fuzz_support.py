"""Hypothesis strategies for fuzzing tool calls: arguments drawn from each tool's input schema, steered to the
scenario's real names (collections, record ids, files, settings) so writes happen, mixed with hostile input:
lone surrogates, deep nesting, 5,000-digit integers, wrong types, unknown tools and extra arguments."""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import strategies as st

from kpimcp.scenarios import Scenario

HUGE = "__huge_integer__"  # json.dumps cannot write a 5,000-digit int; `wire_body` splices the digits in
SURROGATES = ["\ud800", "a\udfffb", "\udbff\udc00x\ud800", "ok\ud83d"]
_HUGE_JSON = re.compile(r'"__huge_integer__"')


def text(max_size: int) -> st.SearchStrategy[str]:
    """Ordinary text (valid Unicode): surrogates come only from `hostile()`, at a known rate."""
    return st.text(st.characters(blacklist_categories=("Cs",)), max_size=max_size)


def vocabulary(scenario: Scenario) -> list[str]:
    """Names a well-aimed call would use: collections, some record ids, files, settings."""
    words = [c.name for c in scenario.spec.collections]
    for records in scenario.seed.records.values():
        words += list(records)[:4]
    words += list(scenario.seed.files)[:6] + list(scenario.seed.config)[:8] + ["notes.md", "2026-10", "new-1"]
    return words


def deep(depth: int) -> Any:
    value: Any = "bottom"
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


def hostile() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(SURROGATES),
        st.builds(deep, st.sampled_from([50, 150, 199, 250])),
        st.sampled_from([HUGE, 10**30, -(10**18)]),
        st.sampled_from(["", "\x00", "é" * 300, "'; DROP TABLE audit; --", "../../etc/passwd", "a" * 5000]),
        st.sampled_from([-(2**63), 2**63, 1e308, -0.0, True]),
    )


def json_values(words: list[str]) -> st.SearchStrategy[Any]:
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-1000, 10**9),
                        st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(words), text(12))
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(words) | text(6), inner, max_size=3), max_leaves=6)  # fmt: skip


def from_schema(schema: dict[str, Any], words: list[str]) -> st.SearchStrategy[Any]:
    """Values matching a JSON schema (the subset pydantic emits for tool arguments), now and then hostile."""
    typed = _typed(schema, words)
    return typed if schema.get("type") == "object" else st.one_of(typed, typed, typed, typed, typed, typed, hostile())


def _typed(schema: dict[str, Any], words: list[str]) -> st.SearchStrategy[Any]:
    if "anyOf" in schema or "oneOf" in schema:
        return st.one_of([_typed(s, words) for s in schema.get("anyOf") or schema["oneOf"]])
    kind = schema.get("type")
    if kind == "string":
        return st.sampled_from(words) | text(30)
    if kind == "integer":
        return st.integers(schema.get("minimum", -5), schema.get("maximum", 10**6))
    if kind == "number":
        return st.floats(allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        return st.lists(from_schema(schema.get("items", {}), words), max_size=4)
    if kind == "object":
        props = schema.get("properties") or {}
        if not props:
            return st.dictionaries(st.sampled_from(words) | text(8), from_schema({}, words), max_size=4)
        required = set(schema.get("required", []))
        return st.fixed_dictionaries({k: from_schema(v, words) for k, v in props.items() if k in required},
                                     optional={k: from_schema(v, words) for k, v in props.items()
                                               if k not in required})  # fmt: skip
    return st.one_of(json_values(words), json_values(words), json_values(words), hostile())


def tool_calls(tools: list[dict[str, Any]], words: list[str]) -> st.SearchStrategy[tuple[str, Any]]:
    """(tool name, arguments): mostly schema-shaped, sometimes a wrong shape, extra keys or an unknown tool."""
    names = [t["name"] for t in tools]
    shaped = st.one_of([st.tuples(st.just(t["name"]), from_schema(t["inputSchema"], words)) for t in tools])
    wrong = st.tuples(st.sampled_from(names) | st.sampled_from(["no_such_tool", "x\ud800"]),
                      json_values(words) | hostile() | st.dictionaries(text(5), hostile(), max_size=2))
    return st.one_of(shaped, shaped, shaped, wrong)


def wire_body(message: dict[str, Any]) -> bytes:
    """The request as bytes, with 5,000-digit integers where `HUGE` stands."""
    text = json.dumps(message)
    return _HUGE_JSON.sub("9" * 5000, text).encode()
