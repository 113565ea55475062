"""Package layout: the repository's top-level folders are the `kpimcp.*` packages (pyproject.toml has the rest).

Every folder below them becomes a package, data folders included, and every file in one is package data: a new
scenario folder (its cases, files, records, version.lock) ships without a change here, and setuptools has no
folder to warn about as an unlisted package.
"""

from __future__ import annotations

import os

from setuptools import setup

ROOTS = {
    "kpimcp.servers": "servers",
    "kpimcp.harness": "harness",
    "kpimcp.inspect": "harness/inspect",
    "kpimcp.scenarios": "scenarios",
    "kpimcp.judge": "judge",
}
_SKIP = {"__pycache__", ".pytest_cache", ".ruff_cache"}


def _packages() -> tuple[list[str], dict[str, str]]:
    nested = set(ROOTS.values())
    packages, package_dir = [], {}
    for name, root in ROOTS.items():
        for folder, subfolders, _ in os.walk(root):
            subfolders[:] = sorted(d for d in subfolders if d not in _SKIP and not d.endswith(".egg-info")
                                   and os.path.join(folder, d) not in nested)  # fmt: skip
            package = name + folder[len(root):].replace(os.sep, ".")
            packages.append(package)
            package_dir[package] = folder
    return packages, package_dir


packages, package_dir = _packages()
setup(packages=packages, package_dir=package_dir,
      package_data={p: ["*"] for p in packages}, exclude_package_data={"": ["*.pyc", "*.db", "*.db-*"]})  # fmt: skip
