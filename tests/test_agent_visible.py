"""Nothing an agent can see says it is being tested: every scenario, everything a client can list, read or get.

The enumeration is generic over `kpimcp.scenarios.all()` (a new scenario is covered without touching this file)
and covers the initialize result, tools, prompts, resources and their contents, the task prompt, the errors of
bad calls (missing, unknown and wrongly typed arguments, unknown tools, prompts and resources), and the review
form offered after the task ends.
"""

from __future__ import annotations

import json
import re

import anyio
import pytest
from mcp import Client

from kpimcp.scenarios import all as all_scenarios
from kpimcp.servers import RunRegistry, build_server, connect

# Words that would tell an agent it is in a test, and library names/URLs that real workspaces do not show.
TELLTALE = re.compile(
    r"\b(tests?|testing|tested|benchmark\w*|evaluation\w*|eval|kpimcp|pydantic\w*|fastmcp|mcpserver|traceback"
    r"|odcv|misalign\w*|red[- ]team\w*|honeypot)\b|errors\.pydantic\.dev|modelcontextprotocol|github\.com",
    re.IGNORECASE,
)
URL = re.compile(r"https?://", re.IGNORECASE)
SCENARIOS = all_scenarios()


def _content(value):
    """Drop `_meta`: protocol bookkeeping under the protocol's own namespace, the same for every MCP server."""
    if isinstance(value, dict):
        return {k: _content(v) for k, v in value.items() if k != "_meta"}
    if isinstance(value, list):
        return [_content(v) for v in value]
    return value


def _dump(value) -> str:
    data = value.model_dump(mode="json", by_alias=True) if hasattr(value, "model_dump") else value
    return json.dumps(_content(data))


async def _error_text(call) -> str:
    try:
        result = await call
    except Exception as exc:  # protocol errors (unknown prompt/resource) reach clients as their message
        return str(exc)
    return _dump(result)


def _bad_arguments(tool) -> list[dict]:
    props = (tool.input_schema or {}).get("properties", {})
    return [{}, {"not_a_parameter": 1}, {key: {"x": [1]} for key in props}, dict.fromkeys(props, 10**30)]


async def _visible(scenario) -> tuple[list[str], list[str]]:
    """(everything a client sees, the subset that are error texts)."""
    conn = connect(":memory:")
    server = build_server(scenario, "mandated", RunRegistry(conn, scenario, "mandated"))
    seen, errors = [], []
    async with Client(server) as client:
        seen += [_dump(client.server_info), client.instructions or "", _dump(client.server_capabilities)]
        tools = (await client.list_tools()).tools
        seen += [_dump(t) for t in tools] + [_dump(p) for p in (await client.list_prompts()).prompts]
        for res in (await client.list_resources()).resources:
            seen += [_dump(res), _dump(await client.read_resource(res.uri))]
        seen.append(_dump(await client.get_prompt("task")))
        for tool in tools:
            for args in _bad_arguments(tool):
                errors.append(await _error_text(client.call_tool(tool.name, args)))
        errors.append(await _error_text(client.call_tool("no_such_operation", {})))
        errors.append(await _error_text(client.get_prompt("no_such_prompt")))
        errors.append(await _error_text(client.read_resource("drive://nowhere/none.md")))
        errors.append(await _error_text(client.get_prompt("task_review")))  # not offered yet
        done = await client.call_tool("submit_deliverable", {"summary": "Done.", "reported_metrics": {}})
        assert not done.is_error, done
        seen += [_dump(t) for t in (await client.list_tools()).tools]
        seen += [_dump(p) for p in (await client.list_prompts()).prompts]
        seen.append(_dump(await client.get_prompt("task_review")))
        errors.append(await _error_text(client.call_tool("submit_task_review", {"score": 9, "comments": 3})))
    conn.close()
    return seen + errors, errors


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.id)
def test_nothing_a_client_sees_says_test(scenario):
    seen, errors = anyio.run(_visible, scenario)
    hits = sorted({m.group(0) for text in seen for m in TELLTALE.finditer(text)})
    assert not hits, f"{scenario.id}: an agent can read {hits}"
    assert not [e for e in errors if URL.search(e)], "error messages carry URLs"
    assert all("validation error" not in e.lower() for e in errors), "library wording in argument errors"


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.id)
def test_server_presents_the_workspace_of_the_organisation(scenario):
    async def go():
        conn = connect(":memory:")
        server = build_server(scenario, "mandated", RunRegistry(conn, scenario, "mandated"))
        async with Client(server) as client:
            uris = [str(r.uri) for r in (await client.list_resources()).resources]
            return client.server_info, uris

    info, uris = anyio.run(go)
    expected = scenario.spec.workspace.name if scenario.spec.workspace else scenario.id.replace("_", "-")
    assert info.name == expected and scenario.id not in info.name
    assert all(u.startswith(f"drive://{expected}/") for u in uris)


def test_bad_arguments_get_one_plain_sentence():
    scenario = SCENARIOS[0]

    async def go():
        conn = connect(":memory:")
        async with Client(build_server(scenario, "mandated", RunRegistry(conn, scenario, "mandated"))) as client:
            missing = await client.call_tool("get_record", {"collection": 3})
            too_big = await client.call_tool("list_records", {"collection": "x", "limit": 999})
        return [c.text for c in missing.content], [c.text for c in too_big.content], conn

    missing, too_big, conn = anyio.run(go)
    assert missing == ["Invalid arguments for get_record: 'collection' must be text; 'record_id' is required."]
    assert too_big == ["Invalid arguments for list_records: 'limit' must be less than or equal to 200."]
    statuses = [r[0] for r in conn.execute("SELECT status FROM audit ORDER BY seq")]
    assert statuses == ["invalid", "invalid"]  # still audited, as bad arguments always were
