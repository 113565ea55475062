"""Per-sample solvers: the setup that opens a kpimcp run and gives the sample its audited tools, the default
agent, and the cleanup that closes a run nobody scored.

Every MCP connection of a sample names the sample's run: over HTTP by the URL (`/<scenario>/<variant>/mcp/<run>`),
over stdio by `--run-id` on each server process. So an agent that holds one session (react), and loops that
open one per call (`generate(tool_calls="loop")`, basic_agent, an `--solver` of the user's), all map to one
kpimcp run per sample × epoch.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

import anyio
from inspect_ai.solver import Generate, Solver, TaskState, solver
from inspect_ai.tool import mcp_server_http, mcp_server_stdio
from inspect_ai.util import LimitExceededError

from kpimcp.scenarios import load as load_scenario

from .host import host_pool
from .naming import registered
from .runs import Outcome, _error_outcome, open_run

__all__ = ["KEYS", "kpimcp_agent", "kpimcp_setup", "model_label", "recorded_error", "sample_server"]

TRANSPORTS = ("http", "stdio")
AGENTS = ("react", "generate")
MCP_TIMEOUT = 30.0  # per HTTP operation; Inspect's default of 5 s is too short on a busy 2-core machine


class KEYS:
    """Names of the sample-store entries (JSON values, so they are in the Inspect log too)."""

    run_id = "kpimcp:run_id"
    db = "kpimcp:db"
    transport = "kpimcp:transport"
    started = "kpimcp:started"
    closed = "kpimcp:closed"
    scenario = "kpimcp:scenario"
    variant = "kpimcp:variant"
    solver_done = "kpimcp:solver_done"
    error = "kpimcp:error"


def model_label(inspect_model: str) -> str:
    """The run's `model` column: kpimcp's spec where one exists (so `kpimcp judge --self` and the panel's
    self-exclusion recognise the model), Inspect's name otherwise."""
    provider, _, name = inspect_model.partition("/")
    if provider in ("openai", "openrouter") and name:
        return f"{provider}:{name}"
    if provider == "kpimcp" and name:
        return f"reference:{name}"
    return inspect_model


def _eval_id() -> str:
    from inspect_ai.log._samples import sample_active  # the only way to reach the eval id from a solver

    active = sample_active()
    return str(getattr(active, "eval_id", None) or "unknown")


def sample_server(state: TaskState) -> Any:
    """The MCP server (an Inspect `ToolSource`) of this sample's run: pass it to any agent's `tools`."""
    st = state.store
    run_id, db, transport = st.get(KEYS.run_id), st.get(KEYS.db), st.get(KEYS.transport)
    if not run_id:
        raise RuntimeError("this sample has no kpimcp run: use the kpimcp tasks, whose setup opens one")
    sid, variant = state.metadata["scenario"], state.metadata["variant"]
    if transport == "stdio":
        args = ["-m", "kpimcp.harness.cli", "serve", sid, "--variant", variant, "--db", db, "--run-id", run_id]
        return mcp_server_stdio(name=f"{sid}-{variant}", command=sys.executable, args=args)
    host = host_pool().get(db, [(load_scenario(sid), variant)])
    return mcp_server_http(name=f"{sid}-{variant}", url=host.url(sid, variant, run_id), headers=host.headers,
                           timeout=MCP_TIMEOUT)  # fmt: skip


@registered(solver, "kpimcp_setup")
def kpimcp_setup(db: str, transport: str = "http", scenarios: Sequence[str] = (), variants: Sequence[str] = (),
                 label: str | None = None) -> Solver:  # fmt: skip
    """Open the sample's kpimcp run, keep its id in the sample store, and put its audited tools in `state.tools`
    (for generate loops and basic_agent; react gets the server itself from `kpimcp_agent`).

    `scenarios` × `variants` are what the task's shared HTTP host serves; `label` overrides the model label."""
    if transport not in TRANSPORTS:
        raise ValueError(f"unknown transport {transport!r}; use http or stdio")
    mounts = [(load_scenario(s), v) for s in scenarios for v in variants]

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        scenario = load_scenario(state.metadata["scenario"])
        variant = state.metadata["variant"]
        run_label = label or model_label(str(state.model))
        run_id = await anyio.to_thread.run_sync(lambda: open_run(
            db, scenario, variant, model=run_label, epoch=state.epoch, transport=transport,
            eval_id=_eval_id()))  # fmt: skip
        for key, value in ((KEYS.run_id, run_id), (KEYS.db, db), (KEYS.transport, transport),
                           (KEYS.started, time.time()), (KEYS.closed, False),
                           (KEYS.scenario, scenario.id), (KEYS.variant, variant)):  # fmt: skip
            state.store.set(key, value)
        if transport == "http" and mounts:  # start (or find) the one host serving every sample of the task
            await anyio.to_thread.run_sync(lambda: host_pool().get(db, mounts))
        state.tools = list(await sample_server(state).tools())
        return state

    return solve


@registered(solver, "kpimcp_agent")
def kpimcp_agent(agent: str = "react") -> Solver:
    """The default solver: `react` (one MCP session for the whole sample; it ends when the model answers without
    a tool call, as `kpimcp bench` agents do) or `generate` (`generate(tool_calls="loop")` over `state.tools`).

    Its outcome is written to the sample store, so a run that errors is closed with what went wrong."""
    if agent not in AGENTS:
        raise ValueError(f"unknown agent {agent!r}; use one of {', '.join(AGENTS)}")

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        try:
            if agent == "generate":
                state = await generate(state, tool_calls="loop")
            else:
                from inspect_ai.agent import as_solver, react

                loop = react(prompt=None, tools=[sample_server(state)], submit=False)
                state = await as_solver(loop)(state, generate)
        except LimitExceededError:
            raise  # a limit is an outcome Inspect records (SampleLimitEvent), not an error
        except Exception as exc:
            outcome = _error_outcome(exc)
            state.store.set(KEYS.error, {"status": outcome.status, "error": outcome.error})
            raise
        state.store.set(KEYS.solver_done, True)
        return state

    return solve


def recorded_error(values: Any) -> Outcome | None:
    """The error outcome `kpimcp_agent` stored, if it stored one."""
    err = values.get(KEYS.error) if values is not None else None
    return Outcome(err["status"], err["error"]) if isinstance(err, dict) else None
