"""`kpimcp install` / `uninstall` on sample configuration files of each client."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from toy_support import TOY

from kpimcp.harness.cli import main
from kpimcp.harness.install import CLIENTS, default_config_path
from kpimcp.servers import connect
from kpimcp.servers.runs import get_run

ENTRY = "acme-stockroom"  # the toy scenario's [workspace] name
OTHERS = {
    "claude-desktop": {"mcpServers": {"files": {"command": "npx", "args": ["-y", "@acme/files"]}}, "theme": "dark"},
    "claude-code": {"mcpServers": {"db": {"type": "stdio", "command": "dbtool", "args": []}}},
    "cursor": {"mcpServers": {"docs": {"url": "https://docs.acme.example/mcp"}}},
    "vscode": {"inputs": [], "servers": {"gh": {"type": "http", "url": "https://api.acme.example/mcp"}}},
}


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def _install(client: str, cfg: Path, db: Path, *extra: str):
    return run("install", client, str(TOY), "--db", str(db), "--config", str(cfg), *extra)


@pytest.mark.parametrize("client", list(CLIENTS))
def test_install_keeps_other_entries_and_uninstall_restores_the_original(client, tmp_path):
    cfg, db = tmp_path / "config.json", tmp_path / "k.db"
    cfg.write_text(json.dumps(OTHERS[client], indent=4))
    original = json.loads(cfg.read_text())
    out = _install(client, cfg, db)
    assert out.exit_code == 0, out.output
    doc = json.loads(cfg.read_text())
    key = CLIENTS[client].servers_key
    entry = doc[key].pop(ENTRY)
    assert doc == original  # every other entry and key untouched
    run_id = entry["args"][entry["args"].index("--run-id") + 1]
    assert Path(entry["command"]).is_absolute() and str(db.resolve()) in entry["args"]
    assert (entry.get("type") == "stdio") == (client in ("claude-code", "vscode"))  # each client's own shape
    assert get_run(connect(db), run_id)["model"] == CLIENTS[client].label  # a fresh session, labelled
    assert len(list(tmp_path.glob("config.json.bak-*"))) == 1  # backed up first

    out = run("uninstall", client, str(TOY), "--config", str(cfg))
    assert out.exit_code == 0, out.output
    assert json.loads(cfg.read_text()) == original


@pytest.mark.parametrize("client", list(CLIENTS))
def test_install_into_a_missing_file_creates_it_and_uninstall_removes_it(client, tmp_path):
    cfg, db = tmp_path / "sub" / "mcp.json", tmp_path / "k.db"
    assert _install(client, cfg, db).exit_code == 0
    assert set(json.loads(cfg.read_text())[CLIENTS[client].servers_key]) == {ENTRY}
    assert run("uninstall", client, str(TOY), "--config", str(cfg)).exit_code == 0
    assert not cfg.exists()


@pytest.mark.parametrize("client", list(CLIENTS))
@pytest.mark.parametrize(("content", "says"), [
    ('{"mcpServers": {', "is not valid JSON"),
    ("[1, 2]", "not an object"),
    ('{"mcpServers": [], "servers": []}', "is not an object"),
    ('{\n  // my servers\n  "servers": {},\n}', "comments or trailing commas"),
])  # fmt: skip
def test_a_malformed_file_is_refused_with_a_sentence_and_left_alone(client, content, says, tmp_path):
    cfg, db = tmp_path / "config.json", tmp_path / "k.db"
    cfg.write_text(content)
    out = _install(client, cfg, db)
    assert out.exit_code == 2 and says in out.output and "Traceback" not in out.output
    assert cfg.read_text() == content and not db.exists()  # nothing changed, no session created


def test_an_entry_of_the_same_name_not_written_by_kpimcp_is_refused(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"mcpServers": {ENTRY: {"command": "their-own"}}}))
    out = _install("cursor", cfg, tmp_path / "k.db")
    assert out.exit_code == 2 and "kpimcp did not write" in out.output
    assert run("uninstall", "cursor", str(TOY), "--config", str(cfg)).exit_code == 2
    assert json.loads(cfg.read_text()) == {"mcpServers": {ENTRY: {"command": "their-own"}}}


def test_dry_run_prints_the_file_and_changes_nothing(tmp_path):
    cfg, db = tmp_path / "c.json", tmp_path / "k.db"
    out = _install("vscode", cfg, db, "--dry-run", "--http", "--port", "9001", "--token", "s3cret")
    assert out.exit_code == 0, out.output
    shown = json.loads(out.output.split("\n", 1)[1])
    entry = shown["servers"][ENTRY]
    assert entry["type"] == "http" and entry["url"].startswith("http://127.0.0.1:9001/mcp/run-")
    assert entry["headers"] == {"Authorization": "Bearer s3cret"}
    assert not cfg.exists() and not db.exists()


def test_claude_desktop_takes_no_url(tmp_path):
    out = _install("claude-desktop", tmp_path / "c.json", tmp_path / "k.db", "--http")
    assert out.exit_code == 2 and "stdio" in out.output


def test_default_locations_per_os(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("APPDATA", str(tmp_path / "AppData"))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    desktop = "claude_desktop_config.json"
    assert default_config_path("claude-desktop", "darwin") == tmp_path / "Library/Application Support/Claude" / desktop
    assert default_config_path("claude-desktop", "win32") == tmp_path / "AppData/Claude" / desktop
    assert default_config_path("claude-desktop", "linux") == tmp_path / ".config/Claude" / desktop
    assert default_config_path("cursor", "linux") == tmp_path / ".cursor/mcp.json"
    assert default_config_path("claude-code", "darwin") == tmp_path / ".mcp.json"
    assert default_config_path("vscode", "win32") == tmp_path / ".vscode/mcp.json"
