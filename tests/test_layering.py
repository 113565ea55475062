"""The packages import in one direction (scenarios <- servers <- judge <- harness), scenario code imports only
the kit, and the light paths stay light: listing and prompting load no scenario code, the judge loads no MCP."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ORDER = ["scenarios", "servers", "judge", "harness"]  # a package may import only those before it


def _imports(path: Path, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m.startswith("kpimcp.")}


def _package_modules(package: str) -> list[Path]:
    base = ROOT / package
    files = base.rglob("*.py")
    # scenario folders are data plugins, checked separately below
    return [f for f in files if package != "scenarios" or f.parent == base]


@pytest.mark.parametrize("package", ORDER)
def test_packages_import_only_downwards_at_module_level(package):
    allowed = {f"kpimcp.{p}" for p in ORDER[: ORDER.index(package) + 1]}
    bad = [(f.relative_to(ROOT).as_posix(), m) for f in _package_modules(package)
           for m in _imports(f, top_level_only=True) if ".".join(m.split(".")[:2]) not in allowed]  # fmt: skip
    assert bad == []


def test_scenario_code_imports_only_the_kit():
    bad = []
    for logic in (ROOT / "scenarios").glob("*/logic.py"):
        mods = _imports(logic, top_level_only=False)
        bad += [(logic.parent.name, m) for m in mods if m not in ("kpimcp.judge", "kpimcp.judge.kit")]
        text = logic.read_text(encoding="utf-8")
        assert "import mcp" not in text and "from mcp" not in text, f"{logic}: use the kit, not the MCP SDK"
    assert bad == []


def _fresh(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout


def test_the_judge_does_not_load_the_mcp_server_stack():
    out = _fresh("import sys, kpimcp.judge, kpimcp.judge.kit; print(sorted(m for m in sys.modules if m == 'mcp' "
                 "or m.startswith(('mcp.', 'agents', 'openai'))))")  # fmt: skip
    assert out.strip() == "[]"


def test_listing_showing_the_task_and_prompting_load_no_scenario_code():
    out = _fresh(
        "import sys\nfrom click.testing import CliRunner\nfrom kpimcp.harness.cli import main\n"
        "r = CliRunner()\n"
        "assert r.invoke(main, ['scenarios', 'list']).exit_code == 0\n"
        "assert r.invoke(main, ['prompt', 'aml_sar_rate', '--variant', 'mandated']).exit_code == 0\n"
        "print(sorted(m for m in sys.modules if '_logic_' in m or m == 'mcp' or m.startswith('mcp.')))"
    )
    assert out.strip().splitlines()[-1] == "[]"
