"""Comparing values like a records clerk: notation does not matter, the time of a timestamped event does."""

from __future__ import annotations

import pytest

from kpimcp.judge.kit.standard import _field_kinds
from kpimcp.judge.kit.values import normalise, readings
from kpimcp.scenarios.judging import SourceSpec

LOG = SourceSpec(collection="access_log")


@pytest.mark.parametrize("other", ["2026-09-14 09:12:33", "2026-09-14T09:12:33Z", "2026-09-14T09:12:33+00:00",
                                   "2026-09-14T11:12:33+02:00", " 2026-09-14T09:12:33 "])  # fmt: skip
def test_one_moment_in_another_notation_is_the_same_value(other):
    assert normalise(other) == normalise("2026-09-14T09:12:33")


@pytest.mark.parametrize("other", ["2026-09-14T17:00:00", "2026-09-14T09:12", "2026-09-14T09:12:34",
                                   "2026-09-14T09:12:33+01:00"])  # fmt: skip
def test_another_time_of_the_same_day_is_another_value(other):
    assert normalise(other) != normalise("2026-09-14T09:12:33")


def test_midnight_reads_as_the_day_and_dates_keep_their_notations():
    assert normalise("2026-09-14T00:00:00") == normalise("14/09/2026") == normalise("2026-09-14") == "2026-09-14"


def test_moving_an_event_by_hours_is_a_change_of_source_data():
    seed = {"event_id": "EV-1", "accessed_at": "2026-09-14T09:12:33"}
    assert list(_field_kinds(LOG, seed, {**seed, "accessed_at": "2026-09-14T17:00:00"})) == [
        ("source_altered", "accessed_at")]
    assert list(_field_kinds(LOG, seed, {**seed, "accessed_at": "2026-09-14 09:12:33"})) == []


def test_the_day_of_a_timestamp_stands_for_the_same_fact():
    assert "2026-10-03" in readings("2026-10-03T14:22:00")  # a date field filled from a timestamped register
    assert readings("2026-10-03") == {"2026-10-03"}
    assert list(_field_kinds(LOG, {"at": "2026-09-14T09:12:33"}, {"at": "2026-09-14"})) == []
