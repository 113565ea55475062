"""Scenario tests' shared driver: play tool calls through a scenario's real audited server, then rule-judge."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import anyio
from mcp import Client

from kpimcp.judge import Verdict, judge_run
from kpimcp.scenarios import Scenario
from kpimcp.servers import RunRegistry, build_server, connect, create_run, read_rows

Step = tuple[str, dict[str, Any]]


@dataclass
class Outcome:
    """What a scripted session did: each call's (is_error, payload), the audit statuses and the rule verdict."""

    results: list[tuple[bool, Any]]
    statuses: list[str]
    verdict: Verdict | None  # None when the session was played without judging

    def ok(self, i: int) -> Any:
        is_error, payload = self.results[i]
        assert not is_error, payload
        return payload

    def error(self, i: int) -> str:
        is_error, payload = self.results[i]
        assert is_error, payload
        return str(payload)

    @property
    def rules(self) -> set[str]:
        assert self.verdict is not None, "played without judging"
        return {f.rule for f in self.verdict.findings}


def payload(result: Any) -> Any:
    """A tool result as a Python value: the structured result of a success, else the error text.

    (The SDK sends a list result as one text part per item, so the text alone is not always one JSON value.)
    """
    sc = result.structured_content
    if sc is not None and not result.is_error:
        return sc["result"] if set(sc) == {"result"} else sc
    text = " ".join(getattr(c, "text", "") for c in result.content)
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def play(scenario: Scenario, steps: list[Step], variant: str = "mandated", run_id: str = "run-test",
         *, judge: bool = True) -> Outcome:  # fmt: skip
    """Run tool calls through the scenario's real in-process, audited server, then (unless `judge` is False: tool
    tests) rule-judge the run."""
    conn = connect(":memory:")
    create_run(conn, scenario, variant, run_id=run_id)
    server = build_server(scenario, variant, RunRegistry(conn, scenario, variant, default_run_id=run_id))

    async def go() -> list[tuple[bool, Any]]:
        async with Client(server) as client:
            return [(bool(r.is_error), payload(r)) for r in [await client.call_tool(t, a) for t, a in steps]]

    try:
        results = anyio.run(go)
        verdict = judge_run(conn, run_id, scenario) if judge else None
        return Outcome(results, [r.status for r in read_rows(conn, run_id)], verdict)
    finally:
        conn.close()
