"""`build_server`: a scenario and variant become an MCP server over per-run virtual worlds, audited call by call.

Auditing is one middleware around `tools/call`. It finds the request's run, serialises that run's calls,
and commits the call's world changes and its audit row in one transaction before the reply leaves, so a reply
the client sees always has its row, and a call whose row cannot be written changes nothing and says so.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent

from kpimcp.scenarios import Scenario, check_variant
from kpimcp.scenarios import load as load_scenario

from . import audit, review
from .runs import RunRegistry, RunSlot, requested_run_id
from .store import now_iso, transaction
from .tools import SHARED_TOOLS
from .world import World

__all__ = ["TASK_PROMPT", "build_server", "current_world", "prompt_text", "resource_uri"]

log = logging.getLogger("kpimcp.servers")
TASK_PROMPT = "task"
_UNRECORDED = (
    "The call could not be recorded in the audit log and was not applied; nothing changed. "
    "Retry shortly; if it persists, report an audit-store outage."
)
_RUN_METHODS = {"tools/call", "resources/read", "prompts/get"}


@dataclass
class _CallState:
    world: World
    entered: bool = False
    value: Any = None
    error: str | None = None
    crashed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


_CALL: contextvars.ContextVar[_CallState] = contextvars.ContextVar("kpimcp_call")


def current_world() -> World:
    """The world of the run whose request is being handled (for tools, prompts and resources)."""
    return _CALL.get().world


def _bind(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn `fn(world, **args)` into an MCP tool taking `**args`, recording its outcome for the audit."""
    # eval_str: tool modules use `from __future__ import annotations`, and pydantic would otherwise try to
    # resolve those strings in this module's namespace.
    sig = inspect.signature(fn, eval_str=True)
    params = list(sig.parameters.values())[1:]

    async def tool(**kwargs: Any) -> Any:
        state = _CALL.get()
        state.entered = True
        try:
            state.value = fn(state.world, **kwargs)
        except ToolError as exc:
            state.error = str(exc)
            raise
        except Exception as exc:
            state.crashed, state.error = True, f"{type(exc).__name__}: {exc}"
            log.exception("tool %s crashed", fn.__name__)
            raise
        return state.value

    tool.__name__, tool.__qualname__, tool.__doc__ = fn.__name__, fn.__name__, inspect.getdoc(fn)
    tool.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    tool.__annotations__ = {p.name: p.annotation for p in params} | {"return": sig.return_annotation}
    return tool


def _client_info(ctx: Any) -> dict[str, str | None]:
    name = version = None
    params = getattr(ctx.session, "client_params", None)
    info = getattr(params, "client_info", None)
    if info is not None:
        name, version = info.name, info.version
    elif isinstance(ctx.meta, dict):
        meta_info = ctx.meta.get("io.modelcontextprotocol/clientInfo") or {}
        name, version = meta_info.get("name"), meta_info.get("version")
    return {"name": name, "version": version, "protocol_version": ctx.protocol_version}


def _result_text(result: Any) -> str | None:
    content = result.get("content") if isinstance(result, dict) else getattr(result, "content", None)
    texts = [c.get("text") if isinstance(c, dict) else getattr(c, "text", None) for c in content or []]
    return "\n".join(t for t in texts if t) or None


class _AuditMiddleware:
    def __init__(self, runs: RunRegistry, *, audited: bool = True) -> None:
        self.runs = runs
        # audited=False exists only so benchmarks/ can measure the audit's own cost against the same server.
        self.audited = audited

    async def __call__(self, ctx: Any, call_next: Any) -> Any:
        if ctx.method in review.GATED_METHODS:  # self-review form: listed only once the task is submitted
            run_id = requested_run_id(ctx.request, ctx.meta) or self.runs.default_run_id
            return review.hide_until_submitted(await call_next(ctx), review.task_submitted(self.runs.conn, run_id))
        if ctx.method not in _RUN_METHODS:
            return await call_next(ctx)
        slot = self.runs.slot(requested_run_id(ctx.request, ctx.meta))
        if ctx.method != "tools/call" or not self.audited:
            token = _CALL.set(_CallState(slot.world))
            try:
                return await call_next(ctx)
            finally:
                _CALL.reset(token)
        async with slot.lock:
            return await self._audited_call(ctx, call_next, slot)

    async def _audited_call(self, ctx: Any, call_next: Any, slot: RunSlot) -> Any:
        params = ctx.params or {}
        state = _CallState(slot.world)
        token = _CALL.set(state)
        started, t0 = now_iso(), time.perf_counter()
        raised: BaseException | None = None
        result: Any = None
        try:
            result = await call_next(ctx)
        except BaseException as exc:  # recorded, then re-raised unchanged (cancellation included)
            raised = exc
        finally:
            _CALL.reset(token)
        duration = (time.perf_counter() - t0) * 1000
        changes = slot.world.take_changes()
        is_error = bool(result.get("isError")) if isinstance(result, dict) else getattr(result, "is_error", False)
        status = "ok"
        if raised is not None or state.crashed:
            status = "crashed"
        elif is_error or state.error:
            status = "error" if state.entered else "invalid"
        if status != "ok":
            slot.world.revert(changes)
            changes = []
        error = state.error or (None if status == "ok" else _result_text(result) or repr(raised))
        try:
            with transaction(self.runs.conn) as conn:
                slot.world.persist(conn, changes)
                slot.head = audit.append(
                    conn, slot.run_id, started_at=started, duration_ms=duration, tool=str(params.get("name", "?")),
                    arguments=params.get("arguments") or {}, status=status,
                    result=state.value if status == "ok" else None, error=error,
                    changes=[c.as_dict() for c in changes], client=self._client(ctx, slot, conn), head=slot.head,
                )  # fmt: skip
        except sqlite3.Error as exc:
            slot.world.revert(changes)
            slot.head = None
            log.error("audit write failed for run %s: %s", slot.run_id, exc)
            # An is_error result, not a protocol error: the agent reads it and the run goes on.
            return CallToolResult(content=[TextContent(type="text", text=_UNRECORDED)], is_error=True)
        if raised is not None:
            raise raised
        return result

    def _client(self, ctx: Any, slot: RunSlot, conn: sqlite3.Connection) -> dict[str, str | None]:
        info = _client_info(ctx)
        if not slot.client_recorded and info["name"]:
            conn.execute(
                "UPDATE runs SET client_name = ?, client_version = ?, protocol_version = ? WHERE run_id = ?",
                (info["name"], info["version"], info["protocol_version"], slot.run_id),
            )
            slot.client_recorded = True
        return info


def prompt_text(scenario: Scenario, variant: str) -> str:
    """The task as a user pastes it into a chat client: the role and constraint first, then the task."""
    return f"{scenario.spec.system_prompt.strip()}\n\n{scenario.task(variant)}"


def resource_uri(scenario: Scenario, path: str) -> str:
    """The MCP resource URI of a workspace document."""
    return f"kpimcp://{scenario.id}/files/{path}"


def _file_reader(path: str) -> Callable[[], str]:
    def read() -> str:
        return current_world().read_file(path) or ""

    return read


def _add_resources(server: MCPServer, scenario: Scenario) -> None:
    for res in scenario.spec.resources:
        register = server.resource(resource_uri(scenario, res.path), name=res.path, title=res.title,
                                   description=res.description or res.title, mime_type="text/markdown")  # fmt: skip
        register(_file_reader(res.path))


def build_server(
    scenario: Scenario | str,
    variant: str,
    world: World | RunRegistry,
    *,
    db: sqlite3.Connection | None = None,
    _audited: bool = True,
) -> MCPServer:
    """Build the audited MCP server of one scenario variant.

    `world` is either one run's `World` (stdio, tests; `db` must then be the results database it audits into)
    or a `RunRegistry` that gives each request its run's world (HTTP hosting many runs).
    """
    scenario = load_scenario(scenario) if isinstance(scenario, str) else scenario
    check_variant(variant)
    if isinstance(world, World):
        if db is None:
            raise ValueError("build_server(..., world=World) needs db=<results database connection>")
        runs = RunRegistry(db, scenario, variant, default_run_id=world.run_id)
        runs.slot(world.run_id).world = world
    else:
        runs = world
    server = MCPServer(
        name=f"kpimcp-{scenario.id}",
        title=scenario.title,
        instructions=scenario.spec.system_prompt.strip(),
        version=f"{scenario.version}",
        log_level="WARNING",
        middleware=[_AuditMiddleware(runs, audited=_audited)],
    )
    for fn in [*SHARED_TOOLS, *scenario.tools]:
        server.add_tool(_bind(fn))
    # Post-task self-review for agent products (servers/review.py); hidden until the deliverable is submitted.
    server.add_tool(_bind(review.submit_task_review))
    server.prompt(name=review.REVIEW_PROMPT, title="Post-task quality review",
                  description="Review checklist for the submitted assignment.")(
        lambda: review.review_prompt_text(current_world()))  # fmt: skip
    task = prompt_text(scenario, variant)
    server.prompt(name=TASK_PROMPT, title=scenario.title,
                  description="The assignment for this workspace, as it was handed over.")(lambda: task)  # fmt: skip
    _add_resources(server, scenario)
    server.kpimcp_runs = runs  # type: ignore[attr-defined]
    return server
