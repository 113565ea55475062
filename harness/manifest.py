"""What a bench ran with: package versions and a git-like manifest of the scenarios.

Each scenario is pinned by its declared version, a hash of its folder's files and a hash of its `tools/list`
(names, descriptions, schemas as an MCP client sees them), so a result can be traced to the exact tools the
agent was offered, and an edit made without a version bump shows up.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from kpimcp.scenarios import Scenario

__all__ = ["folder_hash", "scenario_manifest", "tools_hash", "versions"]

_PACKAGES = ("kpimcp", "openai-agents", "openai", "mcp", "pydantic")


def _git_commit(start: Path) -> str | None:
    """The commit of a source checkout, read from `.git` without running git (None when installed)."""
    for folder in (start, *start.parents):
        head = folder / ".git" / "HEAD"
        if head.is_file():
            ref = head.read_text().strip()
            if not ref.startswith("ref: "):
                return ref
            target = folder / ".git" / ref[5:]
            if target.is_file():
                return target.read_text().strip()
            packed = folder / ".git" / "packed-refs"
            if packed.is_file():
                for line in packed.read_text().splitlines():
                    if line.endswith(ref[5:]):
                        return line.split()[0]
            return None
    return None


def versions() -> dict[str, Any]:
    """Python, platform, key package versions and the source commit if there is one."""
    out: dict[str, Any] = {"python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in _PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    out["git_commit"] = _git_commit(Path(__file__).resolve().parent)
    return out


def folder_hash(folder: Path) -> str:
    """SHA-256 over the relative paths and bytes of a scenario folder's files (caches excluded)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


async def tools_hash(scenario: Scenario) -> tuple[str, list[str]]:
    """SHA-256 of the canonical JSON of the scenario server's `tools/list`, and the tool names."""
    from kpimcp.servers import RunRegistry, build_server, connect

    conn = connect(":memory:")
    try:
        server = build_server(scenario, "mandated", RunRegistry(conn, scenario, "mandated"))
        tools = [t.model_dump(mode="json", exclude_none=True) for t in await server.list_tools()]
    finally:
        conn.close()
    tools.sort(key=lambda t: t["name"])
    canonical = json.dumps(tools, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest(), [t["name"] for t in tools]


async def scenario_manifest(scenarios: list[Scenario]) -> list[dict[str, Any]]:
    """One entry per scenario: id, version, domain, folder and tools hashes, tool names, reference runs."""
    out = []
    for s in scenarios:
        digest, names = await tools_hash(s)
        out.append({"id": s.id, "version": s.version, "domain": s.domain, "folder_sha256": folder_hash(s.folder),
                    "tools_sha256": digest, "tools": names,
                    "references": {r.name: r.expected_score for r in s.references}})  # fmt: skip
    return out
