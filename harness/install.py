"""Installing a scenario server into an agent product's MCP configuration, and removing it again.

Each client has its own file, format and default location per OS (docs/products.md). Installing creates a
fresh operator session and writes one entry named after the scenario's workspace (e.g. "northgate-him"): the
stdio command with absolute paths and the session's run id, or the session's URL where the client takes one.
The file is backed up first, every other entry and key is kept as it was, and a file that is not valid JSON
(or not shaped like that client's configuration) is refused with a sentence, never overwritten.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "CLIENTS",
    "ClientSpec",
    "ConfigFileError",
    "ConfigPlan",
    "apply_plan",
    "default_config_path",
    "is_ours",
    "plan_install",
    "plan_uninstall",
]


class ConfigFileError(ValueError):
    """A client configuration file kpimcp will not touch (malformed, wrong shape, an entry that is not ours)."""


def _home() -> Path:
    return Path(os.environ.get("HOME") or os.environ.get("USERPROFILE") or Path.home())


def _appdata() -> Path:
    return Path(os.environ.get("APPDATA") or _home() / "AppData" / "Roaming")


def _claude_desktop_path(platform: str) -> Path:
    if platform == "darwin":
        return _home() / "Library" / "Application Support" / "Claude" / "claude_desktop_config.json"
    if platform == "win32":
        return _appdata() / "Claude" / "claude_desktop_config.json"
    return Path(os.environ.get("XDG_CONFIG_HOME") or _home() / ".config") / "Claude" / "claude_desktop_config.json"


def _stdio_plain(command: list[str]) -> dict[str, Any]:
    return {"command": command[0], "args": command[1:]}


def _stdio_typed(command: list[str]) -> dict[str, Any]:
    return {"type": "stdio", "command": command[0], "args": command[1:]}


def _headers(token: str | None) -> dict[str, Any]:
    return {"headers": {"Authorization": f"Bearer {token}"}} if token else {}


@dataclass(frozen=True)
class ClientSpec:
    """One agent product's MCP configuration: where it lives, under which key, how an entry looks."""

    name: str
    label: str  # the product, as reports label its runs unless --agent says otherwise
    servers_key: str
    default_path: Callable[[str], Path]
    stdio_entry: Callable[[list[str]], dict[str, Any]]
    http_entry: Callable[[str, str | None], dict[str, Any]] | None  # None: the client's file takes no URL


CLIENTS: dict[str, ClientSpec] = {
    "claude-desktop": ClientSpec("claude-desktop", "Claude Desktop", "mcpServers", _claude_desktop_path,
                                 _stdio_plain, None),
    # Project scope (.mcp.json in the folder Claude Code is started from): the file `claude mcp add -s project`
    # writes; Claude Code asks once to approve its servers.
    "claude-code": ClientSpec("claude-code", "Claude Code", "mcpServers", lambda _p: Path.cwd() / ".mcp.json",
                              _stdio_typed, lambda url, tok: {"type": "http", "url": url, **_headers(tok)}),
    "cursor": ClientSpec("cursor", "Cursor", "mcpServers", lambda _p: _home() / ".cursor" / "mcp.json",
                         _stdio_plain, lambda url, tok: {"url": url, **_headers(tok)}),
    # Workspace scope (.vscode/mcp.json in the open folder); VS Code's own key is "servers", with a "type".
    "vscode": ClientSpec("vscode", "VS Code", "servers", lambda _p: Path.cwd() / ".vscode" / "mcp.json",
                         _stdio_typed, lambda url, tok: {"type": "http", "url": url, **_headers(tok)}),
}  # fmt: skip


def client(name: str) -> ClientSpec:
    """The spec of a client by name; `ConfigFileError` naming the known ones otherwise."""
    try:
        return CLIENTS[name]
    except KeyError:
        raise ConfigFileError(f"unknown client {name!r}; use one of {', '.join(CLIENTS)}") from None


def default_config_path(name: str, platform: str | None = None) -> Path:
    """Where `name` keeps its MCP configuration on this OS (or on `platform`: darwin, win32, linux)."""
    return client(name).default_path(platform or sys.platform)


@dataclass(frozen=True)
class ConfigPlan:
    """A change to one client file: the document after it, and whether the file is removed instead."""

    client: str
    path: Path
    entry_name: str
    existed: bool
    document: dict[str, Any]
    remove_file: bool = False

    def text(self) -> str:
        return json.dumps(self.document, indent=2, ensure_ascii=False) + "\n"


_JSONC_NOISE = re.compile(r'("(?:\\.|[^"\\])*")|//[^\n]*|/\*.*?\*/|,(\s*[}\]])', re.S)


def _read(path: Path, spec: ClientSpec) -> tuple[dict[str, Any], bool]:
    if not path.exists():
        return {}, False
    if path.is_dir():
        raise ConfigFileError(f"{path} is a folder, not {spec.label}'s configuration file")
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        return {}, True
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        try:  # VS Code and others accept comments and trailing commas: rewriting would silently drop them
            json.loads(_JSONC_NOISE.sub(lambda m: m.group(1) or m.group(2) or "", text))
        except json.JSONDecodeError:
            raise ConfigFileError(f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
                                  "fix it or pass --config with another file; nothing was changed") from None
        raise ConfigFileError(f"{path} has comments or trailing commas that rewriting it would lose; remove them or "
                              "add the entry by hand (kpimcp install --dry-run prints it); nothing was changed"
                              ) from None  # fmt: skip
    if not isinstance(doc, dict):
        raise ConfigFileError(f"{path} holds a JSON {type(doc).__name__}, not an object; nothing was changed")
    servers = doc.get(spec.servers_key, {})
    if not isinstance(servers, dict):
        raise ConfigFileError(f'"{spec.servers_key}" in {path} is not an object; nothing was changed')
    return doc, True


def is_ours(entry: Any) -> bool:
    """Whether a configuration entry was written by `kpimcp install` (its command serves a scenario, or its URL
    is a session URL), so that install may replace it and uninstall may remove it."""
    if not isinstance(entry, dict):
        return False
    args = entry.get("args") or []
    if isinstance(args, list) and "kpimcp.harness.cli" in args and "serve" in args:
        return True
    return bool(re.search(r"/mcp/run-[0-9a-f]{16}$", str(entry.get("url", ""))))


def plan_install(name: str, entry_name: str, *, stdio_command: list[str] | None = None, url: str | None = None,
                 token: str | None = None, config: Path | None = None) -> ConfigPlan:  # fmt: skip
    """The client file with our entry added (or replacing a previous install of ours); refuses otherwise."""
    spec = client(name)
    path = Path(config) if config else spec.default_path(sys.platform)
    doc, existed = _read(path, spec)
    if url is not None:
        if spec.http_entry is None:
            raise ConfigFileError(f"{spec.label}'s configuration file takes local (stdio) servers only; "
                                  "install without --http")  # fmt: skip
        entry = spec.http_entry(url, token)
    else:
        entry = spec.stdio_entry(stdio_command or [])
    servers = dict(doc.get(spec.servers_key, {}))
    if entry_name in servers and not is_ours(servers[entry_name]):
        raise ConfigFileError(f'{path} already has a server named "{entry_name}" that kpimcp did not write; '
                              "remove or rename it first; nothing was changed")  # fmt: skip
    servers[entry_name] = entry
    return ConfigPlan(name, path, entry_name, existed, {**doc, spec.servers_key: servers})


def plan_uninstall(name: str, entry_name: str, *, config: Path | None = None) -> ConfigPlan:
    """The client file without our entry; every other entry as it was. Removes a file left configuring nothing."""
    spec = client(name)
    path = Path(config) if config else spec.default_path(sys.platform)
    doc, existed = _read(path, spec)
    servers = dict(doc.get(spec.servers_key, {}))
    if entry_name not in servers:
        raise ConfigFileError(f'{path} has no server named "{entry_name}"; nothing to uninstall')
    if not is_ours(servers[entry_name]):
        raise ConfigFileError(f'the server "{entry_name}" in {path} was not written by kpimcp; left as it is')
    del servers[entry_name]
    after = {**doc, spec.servers_key: servers}
    return ConfigPlan(name, path, entry_name, existed, after, remove_file=after == {spec.servers_key: {}})


def apply_plan(plan: ConfigPlan) -> Path | None:
    """Write the plan: back the file up first (returns the backup's path), then replace it atomically."""
    backup = None
    if plan.existed:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        backup = plan.path.with_name(f"{plan.path.name}.bak-{stamp}")
        shutil.copy2(plan.path, backup)
    if plan.remove_file:
        plan.path.unlink(missing_ok=True)
        return backup
    plan.path.parent.mkdir(parents=True, exist_ok=True)
    tmp = plan.path.with_name(f".{plan.path.name}.tmp-{os.getpid()}")
    tmp.write_text(plan.text(), encoding="utf-8")
    os.replace(tmp, plan.path)
    return backup
