"""Scenario definitions: one folder per scenario, loaded and validated here.

`load(id)` and `all()` are the entry points; see docs/authoring.md for the folder format.
"""

from .loader import Scenario, ScenarioError, SeedData, UnknownScenarioError, all, check_variant, ids, load, load_path
from .model import DOMAINS, VARIANTS, ReferenceRun, ReferenceStep, ScenarioSpec

__all__ = [
    "DOMAINS",
    "VARIANTS",
    "ReferenceRun",
    "ReferenceStep",
    "Scenario",
    "ScenarioError",
    "ScenarioSpec",
    "SeedData",
    "UnknownScenarioError",
    "all",
    "check_variant",
    "ids",
    "load",
    "load_path",
]
