"""Audited MCP servers over per-run virtual worlds.

`build_server(scenario, variant, world)` builds one; `serve_stdio` and `serve_http` run it; every tool call
lands in the results database as a hash-chained audit row (`kpimcp.servers.audit`).
"""

# Imported on first use (PEP 562): `kpimcp.servers.world`, `.audit` and `.store` are light, and the judge
# reads runs through them without loading the MCP server stack that `.server` and `.transport` need.
_EXPORTS = {
    "AuditRow": "audit",
    "BindError": "transport",
    "ChainProblem": "audit",
    "Change": "world",
    "HostApp": "transport",
    "InsecureBindError": "transport",
    "RUN_HEADER": "runs",
    "RUN_META_KEY": "runs",
    "RunRefused": "runs",
    "RunRegistry": "runs",
    "TASK_PROMPT": "server",
    "World": "world",
    "build_server": "server",
    "connect": "store",
    "create_run": "runs",
    "current_world": "server",
    "default_db_path": "store",
    "is_loopback": "transport",
    "new_run_id": "runs",
    "prompt_text": "server",
    "read_rows": "audit",
    "resource_uri": "server",
    "serve_http": "transport",
    "serve_stdio": "transport",
    "transaction": "store",
    "verify": "audit",
}

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


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kpimcp.servers' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f".{module}", __name__), name)
