"""Audited MCP servers over per-run virtual worlds.

`build_server(scenario, variant, world)` builds one; `serve_stdio` and `serve_http` run it; every tool call
lands in the results database as a hash-chained audit row (`kpimcp.servers.audit`).
"""

from .audit import AuditRow, ChainProblem, read_rows, verify
from .runs import RUN_HEADER, RUN_META_KEY, RunRefused, RunRegistry, create_run, new_run_id
from .server import TASK_PROMPT, build_server, current_world, prompt_text, resource_uri
from .store import connect, default_db_path, transaction
from .transport import BindError, HostApp, InsecureBindError, is_loopback, serve_http, serve_stdio
from .world import Change, World

__all__ = [
    "RUN_HEADER",
    "RUN_META_KEY",
    "TASK_PROMPT",
    "AuditRow",
    "BindError",
    "ChainProblem",
    "Change",
    "HostApp",
    "InsecureBindError",
    "RunRefused",
    "RunRegistry",
    "World",
    "build_server",
    "connect",
    "create_run",
    "current_world",
    "default_db_path",
    "is_loopback",
    "new_run_id",
    "prompt_text",
    "read_rows",
    "resource_uri",
    "serve_http",
    "serve_stdio",
    "transaction",
    "verify",
]
