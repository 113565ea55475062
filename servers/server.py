"""`build_server`: a scenario and variant become an MCP server over per-run virtual worlds, audited call by call.

Auditing is one middleware around `tools/call`. It finds the request's run, serialises that run's calls,
and commits the call's world changes and its audit row in one transaction before the reply leaves, so a reply
the client sees always has its row, and a call whose row cannot be written changes nothing and says so.
"""

from __future__ import annotations

import contextvars
import inspect
import json
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mcp.server.lowlevel import NotificationOptions
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.subscriptions import InMemorySubscriptionBus
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS, CallToolResult, TextContent
from pydantic import ValidationError

from kpimcp.scenarios import Scenario, check_variant
from kpimcp.scenarios import load as load_scenario
from kpimcp.scenarios.errors import ToolError as ScenarioToolError

from . import audit, plain_errors, review
from .runs import RunRefused, RunRegistry, RunSlot, requested_run_id
from .store import now_iso, transaction
from .tools import SHARED_TOOLS
from .world import World

__all__ = ["TASK_PROMPT", "build_server", "current_world", "prompt_text", "record_refusal", "resource_uri",
           "storable", "unstorable_reason", "workspace_name", "workspace_title"]

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
        except ScenarioToolError as exc:  # the scenario kit's refusal, raised as the protocol's tool error
            state.error = str(exc)
            raise ToolError(str(exc)) from None
        except Exception as exc:
            state.crashed, state.error = True, f"{type(exc).__name__}: {exc}"
            log.exception("tool %s crashed", fn.__name__)
            raise
        return state.value

    tool.__name__, tool.__qualname__, tool.__doc__ = fn.__name__, fn.__name__, inspect.getdoc(fn)
    tool.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    tool.__annotations__ = {p.name: p.annotation for p in params} | {"return": sig.return_annotation}
    return tool


def _label(value: Any) -> str | None:
    """A client-supplied label as storable text (at most 200 characters), or None if it is not a string."""
    return storable(value[:200]) if isinstance(value, str) else None


def _client_info(ctx: Any) -> dict[str, str | None]:
    # Client info comes from the client: anything but short strings is dropped, never allowed to fail the audit.
    name = version = None
    params = getattr(ctx.session, "client_params", None)
    info = getattr(params, "client_info", None)
    if info is not None:
        name, version = getattr(info, "name", None), getattr(info, "version", None)
    elif isinstance(ctx.meta, dict):
        meta_info = ctx.meta.get("io.modelcontextprotocol/clientInfo")
        if isinstance(meta_info, dict):
            name, version = meta_info.get("name"), meta_info.get("version")
    return {"name": _label(name), "version": _label(version), "protocol_version": _label(ctx.protocol_version)}


def storable(value: Any) -> Any:
    """`value` with every string made storable as UTF-8: lone surrogates become their `\\udXXX` escape text."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {storable(str(k)): storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    return value


def unstorable_reason(arguments: Any) -> str | None:
    """Why `arguments` cannot be stored in the audit as sent (None = they can): the refusal's sentence."""
    return _arguments_json(arguments)[1]


def _arguments_json(arguments: Any) -> tuple[str | None, str | None]:
    """(the JSON the audit stores, None), or (None, why the arguments cannot be stored, as the refusal's sentence).

    The audit's own serializer answers for nearly every call (it refuses lone surrogates itself); only what it
    rejects is examined further, so the check costs nothing beyond the write the audit makes anyway.
    """
    try:
        return audit.dump_json(arguments), None
    except (ValueError, TypeError, RecursionError):  # ValueError includes pydantic-core's serialization error
        pass
    try:
        text = json.dumps(arguments, ensure_ascii=False)
        text.encode("utf-8")
    except UnicodeEncodeError:
        return None, ("The call was refused and nothing changed: its arguments contain text that is not valid "
                      "Unicode (a lone surrogate such as \\ud800). Send valid text.")  # fmt: skip
    except RecursionError:
        return None, "The call was refused and nothing changed: its arguments are nested too deeply."
    except (TypeError, ValueError):
        return None, "The call was refused and nothing changed: its arguments cannot be written as JSON."
    return text, None


def _result_text(result: Any) -> str | None:
    content = result.get("content") if isinstance(result, dict) else getattr(result, "content", None)
    texts = [c.get("text") if isinstance(c, dict) else getattr(c, "text", None) for c in content or []]
    return "\n".join(t for t in texts if t) or None


class _AuditMiddleware:
    def __init__(self, runs: RunRegistry, *, audited: bool = True) -> None:
        self.runs = runs
        # audited=False exists only so benchmarks/ can measure the audit's own cost against the same server.
        self.audited = audited
        self.checker: plain_errors.ArgumentChecker | None = None  # set by build_server once the tools exist
        self.bus: InMemorySubscriptionBus | None = None
        self.prompts: set[str] = set()

    async def __call__(self, ctx: Any, call_next: Any) -> Any:
        try:
            named = requested_run_id(ctx.request, ctx.meta)
            if ctx.method in review.GATED_METHODS:  # self-review form: listed once the task is submitted or closed
                offered = review.review_open(self.runs.conn, named or self.runs.default_run_id)
                return review.hide_until_submitted(await call_next(ctx), offered)
            if ctx.method not in _RUN_METHODS:
                return await call_next(ctx)
            slot = self.runs.slot(named)
        except RunRefused as exc:  # bad run id, run cap, run live in another process: a sentence, not -32603
            raise MCPError(INVALID_PARAMS, str(exc)) from None
        if ctx.method == "prompts/get":
            plain_errors.check_prompt(ctx.params, self.prompts)
        if ctx.method != "tools/call" or not self.audited:
            token = _CALL.set(_CallState(slot.world))
            try:
                # The argument check is the server's, not the audit's: the unaudited benchmark baseline keeps it.
                return await (self._checked_call(ctx, call_next) if ctx.method == "tools/call" else call_next(ctx))
            finally:
                _CALL.reset(token)
        async with slot.lock:
            result = await self._audited_call(ctx, call_next, slot)
        if slot.product and review.closes_task(ctx.params, result):
            await self._close_submitted(ctx, slot)
        return result

    async def _close_submitted(self, ctx: Any, slot: RunSlot) -> None:
        """A product run ends with its submission: mark it closed and tell the client the review is listed."""
        from .sessions import close_run

        try:
            close_run(self.runs.conn, slot.run_id, "submitted")
        except sqlite3.Error as exc:  # the run stays open; the operator can still close it
            log.error("could not close run %s after its submission: %s", slot.run_id, exc)
        slot.world.closed = True
        await review.announce(ctx, self.bus)

    async def _checked_call(self, ctx: Any, call_next: Any) -> Any:
        """Arguments the tool's schema rejects get a plain sentence, before the library words its own error."""
        params = ctx.params if isinstance(ctx.params, dict) else {}
        problem = self.checker.problem(params.get("name"), params.get("arguments")) if self.checker else None
        if problem is not None:
            return CallToolResult(content=[TextContent(type="text", text=problem)], is_error=True)
        return await call_next(ctx)

    async def _audited_call(self, ctx: Any, call_next: Any, slot: RunSlot) -> Any:
        params = ctx.params if isinstance(ctx.params, dict) else {}
        tool, arguments = storable(str(params.get("name", "?"))), params.get("arguments") or {}
        arguments_json, refusal = _arguments_json(arguments)
        if refusal is not None:  # never reaches the tool: what cannot be recorded must not change the world
            return self._refuse(ctx, slot, tool, arguments, refusal)
        state = _CallState(slot.world)
        token = _CALL.set(state)
        if tool == review.REVIEW_TOOL:
            slot.world.closed = review.run_closed(self.runs.conn, slot.run_id)
        started, t0 = now_iso(), time.perf_counter()
        raised: BaseException | None = None
        result: Any = None
        try:
            result = await self._checked_call(ctx, call_next)
        except BaseException as exc:  # recorded, then re-raised unchanged (cancellation included)
            raised = exc
        finally:
            _CALL.reset(token)
        duration = (time.perf_counter() - t0) * 1000
        changes = slot.world.take_changes()
        is_error = bool(result.get("isError")) if isinstance(result, dict) else getattr(result, "is_error", False)
        status = "ok"
        if raised is not None and not state.entered and isinstance(raised, MCPError | ValidationError):
            status = "invalid"  # the request itself was malformed (e.g. its _meta): refused before any tool ran
        elif raised is not None or state.crashed:
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
                    conn, slot.run_id, started_at=started, duration_ms=duration, tool=tool, arguments=arguments,
                    arguments_json=arguments_json, status=status,
                    result=state.value if status == "ok" else None, error=storable(error),
                    changes=[c.as_dict() for c in changes], client=self._client(ctx, slot, conn), head=slot.head,
                )  # fmt: skip
        except Exception as exc:  # whatever fails in the audit path (database, encoding, serialisation, a bug)
            slot.world.revert(changes)
            slot.head, slot.client_recorded = None, False  # the rollback undid both
            log.error("audit write failed for run %s: %s: %s", slot.run_id, type(exc).__name__, exc)
            # An is_error result, not a protocol error: the agent reads it and the run goes on.
            return CallToolResult(content=[TextContent(type="text", text=_UNRECORDED)], is_error=True)
        if raised is not None:
            raise raised
        return result

    def _refuse(self, ctx: Any, slot: RunSlot, tool: str, arguments: Any, sentence: str) -> CallToolResult:
        """Answer a call that is refused before it runs with `sentence`, recorded as an `invalid` row."""
        if not record_refusal(self.runs, slot, tool=tool, arguments=arguments, error=sentence,
                              client=lambda conn: self._client(ctx, slot, conn)):  # fmt: skip
            sentence = _UNRECORDED
        return CallToolResult(content=[TextContent(type="text", text=sentence)], is_error=True)

    def _client(self, ctx: Any, slot: RunSlot, conn: sqlite3.Connection) -> dict[str, str | None]:
        info = _client_info(ctx)
        if not slot.client_recorded and info["name"]:
            conn.execute(
                "UPDATE runs SET client_name = ?, client_version = ?, protocol_version = ? WHERE run_id = ?",
                (info["name"], info["version"], info["protocol_version"], slot.run_id),
            )
            slot.client_recorded = True
        return info


def _excerpt(value: Any) -> str:
    try:
        return storable(repr(value)[:500])
    except RecursionError:
        return "(too deep to show)"


def record_refusal(runs: RunRegistry, slot: RunSlot, *, tool: str, arguments: Any, error: str,
                   client: Callable[[sqlite3.Connection], dict[str, str | None]] | None = None) -> bool:  # fmt: skip
    """Audit a request refused before reaching a tool (`invalid`, no changes); False if even that failed.

    Arguments are stored in a form that can be stored (lone surrogates as escape text; too deep = a note).
    Callers hold `slot.lock` or run on the event loop between awaits (no other call of the run is mid-write).
    """
    safe = storable(arguments)
    if unstorable_reason(safe) is not None:
        safe = {"unstorable": "arguments nested too deeply or not JSON", "excerpt": _excerpt(arguments)}
    try:
        with transaction(runs.conn) as conn:
            info = client(conn) if client is not None else {}
            slot.head = audit.append(conn, slot.run_id, started_at=now_iso(), duration_ms=0.0, tool=storable(tool),
                                     arguments=safe, status="invalid", error=error, client=info,
                                     head=slot.head)  # fmt: skip
    except Exception as exc:
        slot.head = None
        log.error("audit write failed for run %s: %s: %s", slot.run_id, type(exc).__name__, exc)
        return False
    return True


def prompt_text(scenario: Scenario, variant: str) -> str:
    """The task as a user pastes it into a chat client: the role and constraint first, then the task."""
    return scenario.prompt_text(variant)


def workspace_name(scenario: Scenario) -> str:
    """The server name clients show (and installers write): the organisation's workspace, never the toolkit's."""
    ws = scenario.spec.workspace
    return ws.name if ws is not None else scenario.id.replace("_", "-")


def workspace_title(scenario: Scenario) -> str:
    """The server's human-readable title: the workspace's title, else the scenario's."""
    ws = scenario.spec.workspace
    return ws.title if ws is not None else scenario.title


def resource_uri(scenario: Scenario, path: str) -> str:
    """The MCP resource URI of a workspace document: a document on the workspace's drive."""
    return f"drive://{workspace_name(scenario)}/{path}"


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
    middleware = _AuditMiddleware(runs, audited=_audited)
    middleware.bus = InMemorySubscriptionBus()  # kept to publish list changes to modern clients' listen streams
    server = MCPServer(
        name=workspace_name(scenario),
        title=workspace_title(scenario),
        instructions=scenario.spec.system_prompt.strip(),
        version=f"{scenario.version}",
        log_level="WARNING",
        middleware=[middleware],
        subscriptions=middleware.bus,
    )
    _declare_list_changes(server)
    for fn in [*SHARED_TOOLS, *scenario.tools]:
        server.add_tool(_bind(fn))
    # Post-task self-review for agent products (servers/review.py); hidden until the deliverable is submitted.
    server.add_tool(_bind(review.submit_task_review))
    server.prompt(name=review.REVIEW_PROMPT, title="Post-task quality review",
                  description="Review checklist for the finished assignment.")(
        lambda: review.review_prompt_text(current_world()))  # fmt: skip
    task = prompt_text(scenario, variant)
    server.prompt(name=TASK_PROMPT, title="Assignment",
                  description="The assignment for this workspace, as it was handed over.")(lambda: task)  # fmt: skip
    _add_resources(server, scenario)
    middleware.checker = plain_errors.ArgumentChecker(server)
    middleware.prompts = {review.REVIEW_PROMPT, TASK_PROMPT}
    server.kpimcp_runs = runs  # type: ignore[attr-defined]
    return server


def _declare_list_changes(server: MCPServer) -> None:
    """Declare `listChanged` for tools and prompts to handshake-era clients (the self-review appears later).

    MCPServer builds its initialize result without notification options; modern clients learn it from
    `subscriptions/listen` being served. The lowlevel server is the only place the flags can be set (mcp 2.3).
    """
    lowlevel = server._lowlevel_server
    create = lowlevel.create_initialization_options
    options = NotificationOptions(prompts_changed=True, tools_changed=True)

    def create_with_list_changes(notification_options: Any = None, *args: Any, **kwargs: Any) -> Any:
        return create(notification_options or options, *args, **kwargs)

    lowlevel.create_initialization_options = create_with_list_changes  # type: ignore[method-assign]
