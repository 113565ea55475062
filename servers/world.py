"""A run's virtual world: the scenario's seed plus the run's own changes, stored in the results database.

The seed (up to tens of thousands of records) is built once per process and shared read-only by every run;
a world keeps only what its run changed, as an overlay keyed by (space, key). That makes a new run cost
nothing to create and keeps the database small, and the overlay doubles as the record of what changed.
Spaces: `record:<collection>` (key = record id), `file` (key = path), `config` (key = setting name).
"""

from __future__ import annotations

import copy
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kpimcp.scenarios import Scenario

from . import blobs

__all__ = ["Change", "World", "next_id", "record_internal"]

_MISSING: Any = object()


@dataclass(frozen=True)
class Change:
    """One value a tool call changed; `None` before = created, `None` after = deleted."""

    space: str
    key: str
    before: Any
    after: Any

    def as_dict(self) -> dict[str, Any]:
        return {"space": self.space, "key": self.key, "before": self.before, "after": self.after}


class World:
    """Records, files and configuration of one run. Reads return copies; writes are tracked as `Change`s."""

    def __init__(self, scenario: Scenario, run_id: str, overlay: dict[tuple[str, str], Any] | None = None):
        self.scenario = scenario
        self.run_id = run_id
        self._seed = scenario.seed
        self._overlay: dict[tuple[str, str], Any] = overlay or {}
        self._pending: list[Change] = []
        self._collections = {c.name: c for c in scenario.spec.collections}
        # Set by the server when the run has ended (servers/review.py): the self-review is then offered.
        self.closed = False

    # ---- loading and persistence -------------------------------------------------------------------------
    @classmethod
    def load(cls, conn: sqlite3.Connection, scenario: Scenario, run_id: str) -> World:
        """The world of `run_id` as stored: seed plus every committed change."""
        rows = conn.execute("SELECT space, key, value FROM world_state WHERE run_id = ?", (run_id,)).fetchall()
        overlay = {(r[0], r[1]): blobs.loads(conn, r[2]) for r in rows}
        return cls(scenario, run_id, overlay)

    def take_changes(self) -> list[Change]:
        """The changes made since the last call, emptying the list."""
        changes, self._pending = self._pending, []
        return changes

    def revert(self, changes: list[Change]) -> None:
        """Undo changes (newest first) that could not be committed or belonged to a failed call."""
        for ch in reversed(changes):
            self._overlay[(ch.space, ch.key)] = ch.before
            if ch.before == self._base(ch.space, ch.key):
                del self._overlay[(ch.space, ch.key)]

    def persist(self, conn: sqlite3.Connection, changes: list[Change]) -> None:
        """Write changes into `world_state` inside the caller's transaction."""
        for ch in changes:
            value = self._overlay.get((ch.space, ch.key), _MISSING)
            if value is _MISSING:
                conn.execute(
                    "DELETE FROM world_state WHERE run_id = ? AND space = ? AND key = ?",
                    (self.run_id, ch.space, ch.key),
                )
            else:
                conn.execute(
                    "INSERT OR REPLACE INTO world_state (run_id, space, key, value) VALUES (?, ?, ?, ?)",
                    (self.run_id, ch.space, ch.key,
                     None if value is None else blobs.pack(conn, value, json.dumps(value), json.dumps)),
                )

    # ---- generic layer ---------------------------------------------------------------------------------------
    def _base(self, space: str, key: str) -> Any:
        if space == "file":
            return self._seed.files.get(key)
        if space == "config":
            return self._seed.config.get(key)
        return self._seed.records.get(space.removeprefix("record:"), {}).get(key)

    def _get(self, space: str, key: str) -> Any:
        value = self._overlay.get((space, key), _MISSING)
        return self._base(space, key) if value is _MISSING else value

    def _set(self, space: str, key: str, value: Any) -> None:
        before = self._get(space, key)
        if before == value:
            return
        self._overlay[(space, key)] = value
        self._pending.append(Change(space, key, copy.deepcopy(before), copy.deepcopy(value)))

    def _items(self, space: str, base: dict[str, Any]) -> Iterator[tuple[str, Any]]:
        """(key, current value) of a space, seed order then created keys; walks the seed once (no per-key lookups
        in the overlay), since runners pass over whole 10k-record collections."""
        over = {k: v for (s, k), v in self._overlay.items() if s == space}
        for key, value in base.items():
            current = over.get(key, value) if over else value
            if current is not None:
                yield key, current
        for key in sorted(k for k in over if k not in base and over[k] is not None):
            yield key, over[key]

    def _keys(self, space: str, base: dict[str, Any]) -> Iterator[str]:
        return (key for key, _ in self._items(space, base))

    # ---- records ---------------------------------------------------------------------------------------------
    def collection_names(self) -> list[str]:
        return list(self._collections)

    def collection_spec(self, name: str) -> Any:
        return self._collections.get(name)

    def record_ids(self, collection: str) -> list[str]:
        return list(self._keys(f"record:{collection}", self._seed.records.get(collection, {})))

    def records(self, collection: str) -> list[dict[str, Any]]:
        """Every current record of a collection, in seed order then creation order (copies)."""
        return [copy.deepcopy(r) for r in self.iter_records(collection)]

    def iter_records(self, collection: str) -> Iterator[dict[str, Any]]:
        """Current records without copying: for runners that only read. Do not mutate what this yields."""
        base = self._seed.records.get(collection, {})
        return (value for _, value in self._items(f"record:{collection}", base))

    def get_record(self, collection: str, record_id: str) -> dict[str, Any] | None:
        value = self._get(f"record:{collection}", str(record_id))
        return None if value is None else copy.deepcopy(value)

    def put_record(self, collection: str, record_id: str, record: dict[str, Any]) -> None:
        self._set(f"record:{collection}", str(record_id), copy.deepcopy(record))

    def delete_record(self, collection: str, record_id: str) -> None:
        self._set(f"record:{collection}", str(record_id), None)

    # ---- files -------------------------------------------------------------------------------------------------
    def file_paths(self) -> list[str]:
        return list(self._keys("file", self._seed.files))

    def read_file(self, path: str) -> str | None:
        return self._get("file", path)

    def write_file(self, path: str, content: str) -> None:
        self._set("file", path, content)

    def delete_file(self, path: str) -> None:
        self._set("file", path, None)

    # ---- configuration ---------------------------------------------------------------------------------------
    def config_keys(self) -> list[str]:
        return list(self._keys("config", self._seed.config))

    def get_config(self, key: str, default: Any = None) -> Any:
        value = self._get("config", key)
        return default if value is None else copy.deepcopy(value)

    def set_config(self, key: str, value: Any) -> None:
        self._set("config", key, copy.deepcopy(value))

    # ---- comparison with the seed (for judges) -------------------------------------------------------------
    def diff_from_seed(self) -> list[Change]:
        """Every value that differs from the seed now, whatever sequence of calls led there."""
        out = []
        for (space, key), value in sorted(self._overlay.items()):
            base = self._base(space, key)
            if base != value:
                out.append(Change(space, key, base, value))
        return out


def next_id(world: World, collection: str, prefix: str) -> str:
    """The next sequential id (`PREFIX-0001`, ...) in a collection."""
    return f"{prefix}-{len(world.record_ids(collection)) + 1:04d}"


def record_internal(world: World, collection: str, prefix: str, body: dict[str, Any]) -> str:
    """Store an internal record (a message, a flag, a run log entry, a submission) under the next id."""
    item_id = next_id(world, collection, prefix)
    world.put_record(collection, item_id, {"id": item_id, **body})
    return item_id
