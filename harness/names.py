"""Names an agent reads must name things that exist: files, records, tools, fields, settings, people.

The paper's release had prompts naming files that did not exist; an agent that goes looking for them learns it is
not in a real workplace. This reads everything a scenario tells the agent in words (the system prompt, the task in
every variant, every seeded document, the scenario's own tool descriptions) and checks each name that looks like
a path, an identifier, a record id or an email address against the world: the seed, the world the compliant
reference run leaves (records and files the tools create), the server's tools and their parameters, and the
scenario's `outside_world` list (things that live elsewhere: a regulation, a form filed with an agency).
"""

from __future__ import annotations

import contextlib
import csv
import fnmatch
import inspect
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from kpimcp.scenarios import VARIANTS, Scenario

__all__ = ["KnownNames", "name_problems", "names_in", "world_names_problems"]

_EXT = r"(?:md|csv|json|jsonl|txt|pdf|xlsx?|toml|ya?ml|py|sql|log|html?|docx?|xml)"
PATH = re.compile(rf"(?<![\w/@.-])((?:[\w-]+/)*[\w.-]*\w\.{_EXT})(?![\w/-])")
IDENT = re.compile(r"`([a-z][a-z0-9]*(?:[._][a-z0-9]+)+)`|\b([a-z][a-z0-9]*(?:_[a-z0-9]+)+)\(")
RECORD_ID = re.compile(r"(?<![\w-])([A-Z]{2,}[A-Z0-9]*(?:-[A-Z0-9]+)*-\d[A-Z0-9]*)(?![\w-])")
EMAIL = re.compile(r"(?<![\w.+-])([\w.+-]+@[\w-]+(?:\.[\w-]+)+)")


@dataclass
class KnownNames:
    """Everything a name in the text may refer to."""

    files: set[str] = field(default_factory=set)
    file_globs: set[str] = field(default_factory=set)
    identifiers: set[str] = field(default_factory=set)
    values: list[str] = field(default_factory=list)  # record ids and string values, where ids and emails may occur
    outside: list[str] = field(default_factory=list)
    exact: set[str] = field(default_factory=set)  # the same values, whole (an enum value named in backticks)

    def has_file(self, name: str) -> bool:
        if name in self.files or any(f.endswith("/" + name) for f in self.files):
            return True
        return any(fnmatch.fnmatch(name, g) for g in self.file_globs)

    def has_identifier(self, name: str) -> bool:
        parts = name.split(".")
        return name in self.identifiers or name in self.exact or all(p in self.identifiers for p in parts if p)

    def has_value(self, token: str) -> bool:
        return any(token in v for v in self.values)

    def is_outside(self, token: str) -> bool:
        return any(token in o or o in token for o in self.outside)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


def _keys(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _keys(v)
    elif isinstance(value, list):
        for v in value:
            yield from _keys(v)


def _tools(scenario: Scenario) -> list[Any]:
    from kpimcp.servers.tools import SHARED_TOOLS

    return [*SHARED_TOOLS, *scenario.tools]


def known_names(scenario: Scenario, end_records: dict[str, dict[str, Any]], end_files: Iterable[str]) -> KnownNames:
    """What exists: the seed, the compliant run's end world, the tools, their parameters, the declared metrics."""
    seed, spec = scenario.seed, scenario.spec
    known = KnownNames(files={*seed.files, *end_files}, outside=list(spec.outside_world))
    known.file_globs = {d.attachment for d in spec.judge.deliverables}
    ids = known.identifiers
    for tool in _tools(scenario):
        ids.add(tool.__name__)
        ids.update(p for p in inspect.signature(tool).parameters if p != "world")
    ids.update(c.name for c in spec.collections)
    ids.update(c.id_field for c in spec.collections)
    for key in seed.config:
        ids.add(key)
        ids.update(key.split("."))
    ids.update(_keys(list(seed.config.values())))
    for records in [*seed.records.values(), *end_records.values()]:
        for rid, record in records.items():
            ids.update(_keys(record))
            known.values.append(str(rid))
            known.values.extend(_strings(record))
    known.values.extend(_strings(list(seed.config.values())))
    known.values.extend(r.title for r in spec.resources)
    for path, content in seed.files.items():  # structured documents define what they hold (a ruleset's rule ids)
        if path.endswith(".json"):
            with contextlib.suppress(ValueError):
                known.values.extend(_strings(json.loads(content)))
        elif path.endswith(".csv"):
            known.values.extend(cell for row in csv.reader(io.StringIO(content)) for cell in row)
    known.exact = set(known.values)
    claim = spec.judge.claim
    ids.update([claim.key, *claim.aliases, *claim.count_keys])
    for run in [*scenario.references, *scenario.cases]:
        for step in run.steps:
            if step.tool == "submit_deliverable":
                ids.update(step.arguments.get("reported_metrics", {}))
    return known


def names_in(text: str) -> dict[str, list[str]]:
    """The names a text uses, by kind (paths, identifiers, record ids, emails)."""
    return {
        "path": PATH.findall(text),
        "identifier": [a or b for a, b in IDENT.findall(text)],
        "record id": RECORD_ID.findall(text),
        "email": EMAIL.findall(text),
    }


def _texts(scenario: Scenario) -> Iterator[tuple[str, str]]:
    spec = scenario.spec
    yield "system prompt", spec.system_prompt
    for v in VARIANTS:
        yield f"task ({v})", scenario.task(v)
    yield from sorted(scenario.seed.files.items())
    for tool in scenario.tools:
        yield f"tool {tool.__name__}", inspect.getdoc(tool) or ""


def name_problems(scenario: Scenario, known: KnownNames) -> list[str]:
    """Each name in what the agent reads that refers to nothing in the world, as a sentence."""
    seed_text = [*scenario.seed.files.values()]
    problems = []
    for where, text in _texts(scenario):
        found = names_in(EMAIL.sub(" ", text))
        found["email"] = EMAIL.findall(text)
        for kind, tokens in found.items():
            for token in dict.fromkeys(tokens):
                if known.is_outside(token):
                    continue
                if kind == "path":
                    ok = known.has_file(token)
                elif kind == "identifier":
                    ok = known.has_identifier(token)
                elif kind == "record id":
                    ok = known.has_value(token)
                else:
                    ok = known.has_value(token) or any(token in t for t in seed_text)
                if not ok:
                    problems.append(f"{where} names the {kind} {token!r}, which is nowhere in the world "
                                    "(add it to the world, or to outside_world if it lives elsewhere)")  # fmt: skip
    return problems


async def world_names_problems(scenario: Scenario) -> list[str]:
    """Replay the compliant reference run, then check every name the agent reads against that world."""
    from kpimcp.judge import run_view
    from kpimcp.judge.kit import END
    from kpimcp.judge.kit.probes import compliant_reference
    from kpimcp.servers import connect

    from .replay import replay

    conn = connect(":memory:")
    try:
        rep = await replay(scenario, compliant_reference(scenario), conn)
        world = run_view(conn, rep.run_id, scenario).world_at(END)
        records = {c: {r: world.get_record(c, r) for r in world.record_ids(c)} for c in world.collection_names()}
        known = known_names(scenario, records, world.file_paths())
    finally:
        conn.close()
    return name_problems(scenario, known)
