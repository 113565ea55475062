"""The declarative half of a scenario: what `scenario.toml` may say, validated by pydantic.

The task text is one template with a `{kpi}` slot; each variant only fills that slot. This makes the
benchmark's central rule (mandated and incentivized differ only in the KPI sentence) true by construction
rather than by review.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .judging import JudgeSpec

__all__ = [
    "DOMAINS",
    "VARIANTS",
    "CollectionSpec",
    "JudgeSpec",
    "KpiSpec",
    "ReferenceRun",
    "ReferenceStep",
    "ResourceSpec",
    "ScenarioSpec",
    "VariantSpec",
    "WorkspaceSpec",
]

VARIANTS = ("mandated", "incentivized", "control")
DOMAINS = ("healthcare", "finance", "research_education", "corporate_hr_legal", "logistics_safety", "social_media")
_ID = re.compile(r"^[a-z][a-z0-9_]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KpiSpec(_Strict):
    """The number the task pushes on, its target, and what an honest agent can reach."""

    name: str
    target: str
    honest_best: str
    description: str = ""


class VariantSpec(_Strict):
    """One variant: the sentence that fills the task's `{kpi}` slot."""

    kpi_sentence: str


class CollectionSpec(_Strict):
    """A table of records in the virtual world."""

    name: str
    id_field: str
    description: str
    writable: bool = True
    records: list[dict[str, Any]] = Field(default_factory=list)
    records_file: str | None = None

    @model_validator(mode="after")
    def _ids_present(self) -> CollectionSpec:
        for i, rec in enumerate(self.records):
            if self.id_field not in rec:
                raise ValueError(f"record #{i} of collection {self.name!r} has no {self.id_field!r}")
        return self


class ResourceSpec(_Strict):
    """A virtual file exposed to MCP clients as a resource (policies, checklists)."""

    path: str
    title: str
    description: str = ""


class WorkspaceSpec(_Strict):
    """How the scenario's workspace presents itself to MCP clients: the fictional organisation's product.

    `name` is the server name clients show and the client-side entry name installers write (Claude Code turns
    it into tool prefixes such as `mcp__<name>__read_file`); `title` is the human-readable server title.
    """

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{1,39}$")
    title: str


class ScenarioSpec(_Strict):
    """Everything `scenario.toml` declares."""

    id: str
    title: str
    domain: Literal[
        "healthcare", "finance", "research_education", "corporate_hr_legal", "logistics_safety", "social_media"
    ]
    version: int = Field(ge=1)
    summary: str
    constraint: str
    system_prompt: str
    task: str
    kpi: KpiSpec
    variants: dict[str, VariantSpec]
    collections: list[CollectionSpec] = Field(default_factory=list)
    config: dict[str, Any] = Field(default_factory=dict)
    resources: list[ResourceSpec] = Field(default_factory=list)
    temptations: dict[str, str] = Field(default_factory=dict)
    workspace: WorkspaceSpec | None = None  # optional: default name from the id, title from the title
    # names the prompts and documents use for things that live outside the world (a regulation, a form filed
    # with an agency, another company's system), so the check of named things does not look for them in it
    outside_world: list[str] = Field(default_factory=list)
    judge: JudgeSpec

    @field_validator("id")
    @classmethod
    def _snake_case(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError("must be snake_case (lower-case letters, digits, underscores)")
        return value

    @field_validator("variants")
    @classmethod
    def _all_variants(cls, value: dict[str, VariantSpec]) -> dict[str, VariantSpec]:
        missing = [v for v in VARIANTS if v not in value]
        extra = [v for v in value if v not in VARIANTS]
        if missing or extra:
            raise ValueError(f"variants must be exactly {list(VARIANTS)} (missing {missing}, unknown {extra})")
        return value

    @field_validator("task")
    @classmethod
    def _one_kpi_slot(cls, value: str) -> str:
        if value.count("{kpi}") != 1:
            raise ValueError("the task must contain the placeholder {kpi} exactly once")
        return value

    @field_validator("system_prompt")
    @classmethod
    def _no_slot(cls, value: str) -> str:
        if "{kpi}" in value:
            raise ValueError("the system prompt must not vary by variant; put {kpi} in the task")
        return value

    @model_validator(mode="after")
    def _constraint_stated(self) -> ScenarioSpec:
        if self.constraint.strip() not in self.system_prompt:
            raise ValueError("the system prompt must state the constraint verbatim")
        names = [c.name for c in self.collections]
        if len(names) != len(set(names)):
            raise ValueError(f"collection names must be unique, got {names}")
        self._judge_refers_to_the_world(set(names))
        return self

    def _judge_refers_to_the_world(self, collections: set[str]) -> None:
        """Every collection and setting the `[judge]` table names exists; every setting is declared."""
        named = [s.collection for s in self.judge.sources] + [s.truth for s in self.judge.sources if s.truth]
        unknown = sorted(set(named) - collections)
        if unknown:
            raise ValueError(f"judge: unknown collections {unknown}")
        controls = {c.setting for c in self.judge.controls if c.setting}
        unknown = sorted((controls | set(self.judge.free_settings)) - set(self.config))
        if unknown:
            raise ValueError(f"judge: unknown settings {unknown}")
        undeclared = sorted(set(self.config) - controls - set(self.judge.free_settings))
        if undeclared:
            raise ValueError(f"judge: declare settings {undeclared} as controls or free_settings")


class ReferenceStep(_Strict):
    """One tool call of a reference run; `expect` says whether the server should accept it."""

    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    expect: Literal["ok", "error"] = "ok"


class ReferenceRun(_Strict):
    """A scripted run that must earn `expected_score` from the rule judge, with `expected_rule` on top."""

    name: str
    description: str
    expected_score: int = Field(ge=0, le=5)
    expected_rule: str | None = None
    variant: Literal["mandated", "incentivized", "control"] = "mandated"
    final_message: str = ""
    steps: list[ReferenceStep]
