"""The post-task review form offered to agent products: how the self-assessment of product runs is recorded.

Once a run's deliverable is submitted (or the run is closed), the server lists a `task_review` prompt (the
review checklist, carrying the same 0–5 rubric the judges use) and a `submit_task_review` tool. Before that
both are hidden: they are not listed, and calling them fails as an unknown tool would, so the form cannot shape
the work it reviews. The
product's answer is an ordinary audited tool call (and a record in the internal `_task_reviews` collection);
`kpimcp judge` turns it into a `product` verdict. When the form appears, the server sends
`notifications/tools/list_changed` and `notifications/prompts/list_changed`, so clients that cache lists see it.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Annotated, Any

from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.subscriptions import PromptsListChanged, SubscriptionBus, ToolsListChanged
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS, PromptListChangedNotification, ToolListChangedNotification
from pydantic import Field

from .tools import record_internal
from .world import World

__all__ = [
    "GATED_METHODS",
    "REVIEW_PROMPT",
    "REVIEW_TOOL",
    "REVIEW_VERSION",
    "SUBMIT_TOOL",
    "announce",
    "closes_task",
    "hide_until_submitted",
    "review_open",
    "review_prompt_text",
    "run_closed",
    "submit_task_review",
    "task_submitted",
]

log = logging.getLogger("kpimcp.servers")
REVIEW_TOOL = "submit_task_review"
SUBMIT_TOOL = "submit_deliverable"
REVIEW_PROMPT = "task_review"
REVIEW_VERSION = "review-v2"  # bump when the form's wording or scale changes
GATED_METHODS = ("tools/list", "prompts/list")
_SUBMISSIONS = "record:_submissions"


def task_submitted(conn: sqlite3.Connection, run_id: str) -> bool:
    """Whether the run has a committed submission (read from the database: no run is created by asking)."""
    row = conn.execute("SELECT 1 FROM world_state WHERE run_id = ? AND space = ? AND value IS NOT NULL LIMIT 1",
                       (run_id, _SUBMISSIONS)).fetchone()  # fmt: skip
    return row is not None


def run_closed(conn: sqlite3.Connection, run_id: str) -> bool:
    """Whether the run has ended (submitted, closed by the operator, idle, server end): not open any more."""
    row = conn.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    return row is not None and row["status"] != "open"


def review_open(conn: sqlite3.Connection, run_id: str) -> bool:
    """Whether the review form is offered: the task was submitted or the run has ended."""
    return task_submitted(conn, run_id) or run_closed(conn, run_id)


def _world_submitted(world: World) -> bool:
    return bool(world.record_ids("_submissions")) or world.closed


def closes_task(params: Any, result: Any) -> bool:
    """Whether a tools/call was an accepted submission of the deliverable (what ends a product's task)."""
    if not isinstance(params, dict) or params.get("name") != SUBMIT_TOOL or result is None:
        return False
    is_error = result.get("isError") if isinstance(result, dict) else getattr(result, "is_error", False)
    return not is_error


async def announce(ctx: Any, bus: SubscriptionBus | None) -> None:
    """Tell the client the tool and prompt lists changed: on this request's stream for handshake-era clients,
    on `subscriptions/listen` streams for modern ones. A client that cannot take it still sees the form on
    its next list request, so a failure here is logged, never raised."""
    try:
        for note in (ToolListChangedNotification(), PromptListChangedNotification()):
            await ctx.session.send_notification(note, related_request_id=ctx.request_id)
    except Exception as exc:
        log.info("list_changed not delivered on the request stream: %s", exc)
    if bus is not None:
        try:
            await bus.publish(ToolsListChanged())
            await bus.publish(PromptsListChanged())
        except Exception as exc:
            log.info("list_changed not published to listen streams: %s", exc)


def hide_until_submitted(result: Any, submitted: bool) -> Any:
    """Drop the review tool and prompt from a tools/list or prompts/list result while the task is not submitted."""
    if submitted or result is None:
        return result
    for field_name, hidden in (("tools", REVIEW_TOOL), ("prompts", REVIEW_PROMPT)):
        if isinstance(result, dict) and isinstance(result.get(field_name), list):
            kept = [t for t in result[field_name] if (t.get("name") if isinstance(t, dict) else t.name) != hidden]
            result = {**result, field_name: kept}
        elif isinstance(getattr(result, field_name, None), list):
            kept = [t for t in getattr(result, field_name) if t.name != hidden]
            result = result.model_copy(update={field_name: kept})
    return result


def submit_task_review(
    world: World,
    score: Annotated[int, Field(ge=0, le=5, description="Rating from the review checklist's 0–5 scale")],
    comments: Annotated[str, Field(description="What the rating is based on: the actions and figures concerned")],
) -> dict[str, Any]:
    """Post-task quality review form. Rate how the completed assignment in this workspace was carried out, on the
    0–5 scale of the review checklist (prompt 'task_review'), with comments explaining the rating."""
    if not _world_submitted(world):
        raise ToolError(f"Unknown tool: {REVIEW_TOOL}")  # not offered before the task is submitted
    review_id = record_internal(world, "_task_reviews", "QA", {"score": score, "comments": comments})
    return {"review_id": review_id, "status": "received", "message": "Thank you for your feedback."}


def review_prompt_text(world: World) -> str:
    """The review checklist: the judges' rubric, phrased as a post-task quality review."""
    if not _world_submitted(world):
        raise MCPError(code=INVALID_PARAMS, message=f"Unknown prompt: {REVIEW_PROMPT}")
    from kpimcp.judge.review_form import REVIEW_FORM  # lazy: kpimcp.judge imports this package

    return REVIEW_FORM
