"""Find, parse and validate scenario folders.

A scenario is a folder `scenarios/<id>/` holding `scenario.toml` (validated by `ScenarioSpec`), an optional
`files/` tree (the run's virtual documents), `logic.py` (runner tools, seed generator, judge rules) and
`reference/*.toml` (scripted runs the tests replay). Nothing outside the folder has to change to add one.
"""

from __future__ import annotations

import builtins
import difflib
import hashlib
import importlib.util
import json
import os
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import ValidationError

from .lock import Lock, folder_digest, read_lock
from .model import VARIANTS, ReferenceRun, ScenarioSpec

__all__ = [
    "Scenario",
    "ScenarioError",
    "SeedData",
    "UnknownScenarioError",
    "all",
    "check_variant",
    "ids",
    "load",
    "load_path",
    "root",
]

_ROOT = Path(__file__).resolve().parent


class ScenarioError(Exception):
    """A scenario folder is broken; the message names the file and the field."""


class UnknownScenarioError(ScenarioError, KeyError):
    """No scenario has this id; the message suggests the closest ids."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass
class SeedData:
    """The initial virtual world of a run: records per collection, files, configuration."""

    records: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)


def root() -> Path:
    """The folder holding the installed scenario folders."""
    return _ROOT


PATH_ENV = "KPIMCP_SCENARIOS_PATH"


def _folders() -> dict[str, Path]:
    """Scenario id -> folder: the installed scenarios, then those under the folders named by
    $KPIMCP_SCENARIOS_PATH (os.pathsep-separated), which win on the same id (authoring your own)."""
    out: dict[str, Path] = {}
    extra = [Path(p) for p in os.environ.get(PATH_ENV, "").split(os.pathsep) if p]
    for base in [_ROOT, *extra]:
        if base.is_dir():
            out.update({p.name: p for p in base.iterdir() if (p / "scenario.toml").is_file()})
    return out


def _format_validation(path: Path, err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        parts.append(f"{loc}: {e['msg']}")
    return f"{path}: " + "; ".join(parts)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScenarioError(f"{path}: file is missing") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: invalid TOML ({exc})") from None


def _import_logic(scenario_id: str, path: Path) -> ModuleType:
    # Keyed by folder too: a copy of a scenario under authoring must not reuse the installed one's module.
    tag = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]
    name = f"kpimcp.scenarios._logic_{scenario_id}_{tag}"
    if name in sys.modules:
        return sys.modules[name]
    if not path.is_file():
        raise ScenarioError(f"{path}: file is missing")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ScenarioError(f"{path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise ScenarioError(f"{path}: failed to import ({type(exc).__name__}: {exc})") from exc
    if not callable(getattr(module, "kpi", None)):
        raise ScenarioError(f"{path}: must define kpi(world), the KPI as the scenario's runner computes it")
    return module


def _read_runs(folder: Path) -> tuple[ReferenceRun, ...]:
    runs = []
    for path in sorted(folder.glob("*.toml")):
        try:
            runs.append(ReferenceRun.model_validate(_read_toml(path)))
        except ValidationError as exc:
            raise ScenarioError(_format_validation(path, exc)) from None
    return tuple(runs)


@dataclass(frozen=True)
class Scenario:
    """A loaded, validated scenario: its declaration now; its code, seed and scripted runs when first used.

    Listing, showing and prompting read only `scenario.toml`, so they stay fast however many scenarios exist.
    """

    spec: ScenarioSpec
    folder: Path

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def version(self) -> int:
        return self.spec.version

    @property
    def domain(self) -> str:
        return self.spec.domain

    @property
    def title(self) -> str:
        return self.spec.title

    @property
    def variants(self) -> tuple[str, ...]:
        return VARIANTS

    @cached_property
    def logic(self) -> ModuleType:
        """The scenario's `logic.py`: runner tools, `kpi(world)`, seed generator and extra rules."""
        return _import_logic(self.spec.id, self.folder / "logic.py")

    @cached_property
    def references(self) -> tuple[ReferenceRun, ...]:
        """The reference runs (`reference/*.toml`): the offline agents replay them; tests pin their verdicts."""
        return _read_runs(self.folder / "reference")

    @cached_property
    def cases(self) -> tuple[ReferenceRun, ...]:
        """Off-script judging cases (`cases/*.toml`): scripted like reference runs, only replayed by tests."""
        return _read_runs(self.folder / "cases")

    @property
    def tools(self) -> list[Callable[..., Any]]:
        """The scenario's own runner tools; each takes the run's `World` first."""
        return list(getattr(self.logic, "TOOLS", []))

    def task(self, variant: str) -> str:
        """The user's task for a variant, with its KPI sentence filled in."""
        check_variant(variant)
        return self.spec.task.replace("{kpi}", self.spec.variants[variant].kpi_sentence).strip()

    def prompt_text(self, variant: str) -> str:
        """The task as a user pastes it into a chat client: the role and constraint first, then the task."""
        return f"{self.spec.system_prompt.strip()}\n\n{self.task(variant)}"

    @cached_property
    def seed(self) -> SeedData:
        """The initial world. Built once per process and never mutated (worlds overlay their changes)."""
        seed = _build_seed(self)
        missing = sorted(r.path for r in self.spec.resources if r.path not in seed.files)
        if missing:
            raise ScenarioError(f"{self.folder / 'scenario.toml'}: resources name files that do not exist: {missing}")
        return seed

    @cached_property
    def digest(self) -> str:
        """sha256 of the folder's content (every file but the lock and caches): what a version stands for."""
        return folder_digest(self.folder)

    def validate(self) -> Scenario:
        """Load everything that is loaded lazily (code, seed, scripted runs), raising `ScenarioError` on a fault."""
        _ = self.logic, self.seed, self.references, self.cases
        return self

    def lock(self) -> Lock | None:
        """The version and digest last recorded with `kpimcp scenarios lock` (None if never locked)."""
        return read_lock(self.folder)


def check_variant(variant: str) -> None:
    """Raise `ScenarioError` for a variant name that does not exist."""
    if variant not in VARIANTS:
        raise ScenarioError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")


def _build_seed(scenario: Scenario) -> SeedData:
    seed = SeedData(config=json.loads(json.dumps(scenario.spec.config)))
    for coll in scenario.spec.collections:
        rows = list(coll.records)
        if coll.records_file:
            rows += _read_records_file(scenario.folder / coll.records_file, coll.id_field)
        seed.records[coll.name] = {str(r[coll.id_field]): dict(r) for r in rows}
    files_dir = scenario.folder / "files"
    if files_dir.is_dir():
        for p in sorted(files_dir.rglob("*")):
            if p.is_file():
                seed.files[p.relative_to(files_dir).as_posix()] = p.read_text(encoding="utf-8")
    extend = getattr(scenario.logic, "extend_seed", None)
    if extend is not None:
        extend(seed)
    return seed


def _read_records_file(path: Path, id_field: str) -> list[dict[str, Any]]:
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScenarioError(f"{path}: records file is missing") from None
    except json.JSONDecodeError as exc:
        raise ScenarioError(f"{path}: invalid JSON ({exc})") from None
    if not isinstance(rows, list) or not builtins.all(isinstance(r, dict) and id_field in r for r in rows):
        raise ScenarioError(f"{path}: must be a JSON array of objects that each have {id_field!r}")
    return rows


def _load_folder(folder: Path) -> Scenario:
    toml_path = folder / "scenario.toml"
    try:
        spec = ScenarioSpec.model_validate(_read_toml(toml_path))
    except ValidationError as exc:
        raise ScenarioError(_format_validation(toml_path, exc)) from None
    if spec.id != folder.name:
        raise ScenarioError(f"{toml_path}: id {spec.id!r} must equal the folder name {folder.name!r}")
    return Scenario(spec=spec, folder=folder)


_CACHE: dict[str, Scenario] = {}


def ids() -> list[str]:
    """Ids of every scenario folder, sorted."""
    return sorted(_folders())


def load(scenario_id: str) -> Scenario:
    """Load and validate one scenario by id.

    Raises `UnknownScenarioError` (with a "did you mean") for an unknown id and `ScenarioError` naming the
    file and field for a broken folder.
    """
    if scenario_id in _CACHE:
        return _CACHE[scenario_id]
    known = ids()
    if scenario_id not in known:
        close = difflib.get_close_matches(scenario_id, known, n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known scenarios: {', '.join(known)}"
        raise UnknownScenarioError(f"unknown scenario {scenario_id!r}{hint}")
    scenario = _load_folder(_folders()[scenario_id])
    _CACHE[scenario_id] = scenario
    return scenario


def load_path(folder: Path) -> Scenario:
    """Load a scenario from any folder (authoring and tests of broken scenarios); not cached."""
    return _load_folder(Path(folder))


def all() -> list[Scenario]:
    """Every scenario, sorted by id."""
    return [load(i) for i in ids()]
