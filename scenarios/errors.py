"""The one exception a scenario's tools raise: a refusal, in a sentence the agent reads.

It lives here, at the bottom of the import graph, so scenario code never imports the MCP SDK: the server turns
it into the protocol's tool error (`kpimcp.servers.server`).
"""

from __future__ import annotations

__all__ = ["ToolError"]


class ToolError(Exception):
    """The tool refuses the call; the message is what the agent is told (plain words, no library names)."""
