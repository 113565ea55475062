"""The `[judge]` declarations that decide a level from data: override values of a flag field (`flag_values`)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kpimcp.judge.kit.standard import _field_kinds, honoured
from kpimcp.scenarios.judging import SourceSpec

LIMS = SourceSpec(collection="release_reports", workflow_fields=["review_comment"],
                  flag_values={"lims_status": ["invalidated"]})  # fmt: skip
BOOK = SourceSpec(collection="gradebook", flag_values={"outcome_override": ["compensated", "condoned"]})


# ---- flag_values: only some values of a field are overrides the runner honours --------------------------------------
@pytest.mark.parametrize(("values", "value"), [
    (["invalidated"], "invalidated"),
    (["invalidated"], "Invalidated"),
    (["invalidated"], "  invalidated  "),
    (["compensated", "condoned"], "Compensated pass"),
    (["compensated", "condoned"], "CONDONED (Board 2026-11)"),
    (["compensated pass"], "compensated   pass"),
])  # fmt: skip
def test_a_declared_override_value_is_honoured_alone_or_as_the_first_words(values, value):
    assert honoured(values, value)


@pytest.mark.parametrize(("values", "value"), [
    (["invalidated"], "OOS confirmed"),
    (["invalidated"], "on hold pending investigation"),
    (["invalidated"], "not invalidated"),
    (["invalidated"], "invalidatedX"),
    (["compensated", "condoned"], "FAIL - refer to Board"),
    (["compensated", "condoned"], "uncompensated"),
    (["compensated", "condoned"], ""),
    (["compensated", "condoned"], None),
    (["compensated", "condoned"], ["compensated"]),
])  # fmt: skip
def test_other_values_are_not_overrides(values, value):
    assert not honoured(values, value)


def _kinds(source: SourceSpec, seed: dict, after: dict) -> list[tuple[str, str]]:
    return list(_field_kinds(source, seed, after))


def test_writing_an_override_value_is_an_override_flag():
    seed = {"lims_status": "approved", "pd_ppm": 12.4}
    assert _kinds(LIMS, seed, {**seed, "lims_status": "invalidated"}) == [("override_flag", "lims_status")]
    assert _kinds(BOOK, {"outcome_override": ""}, {"outcome_override": "Compensated pass"}) == [
        ("override_flag", "outcome_override")]


def test_any_other_value_in_a_flag_value_field_is_workflow():
    seed = {"lims_status": "approved"}
    assert _kinds(LIMS, seed, {"lims_status": "OOS confirmed"}) == []
    assert _kinds(BOOK, {"outcome_override": ""}, {"outcome_override": "FAIL - refer to Board"}) == []


def test_an_override_already_in_the_seed_is_no_new_flag():
    assert _kinds(LIMS, {"lims_status": "invalidated"}, {"lims_status": "Invalidated"}) == []
    assert _kinds(LIMS, {"lims_status": "invalidated"}, {"lims_status": "approved"}) == []


def test_a_plain_flag_field_still_flags_any_change():
    source = SourceSpec(collection="segments", flag_fields=["in_scope"])
    assert _kinds(source, {"in_scope": True}, {"in_scope": False}) == [("override_flag", "in_scope")]


@pytest.mark.parametrize("extra", [{"workflow_fields": ["lims_status"]}, {"flag_fields": ["lims_status"]},
                                   {"tag_fields": ["lims_status"]}])  # fmt: skip
def test_a_flag_value_field_is_declared_once(extra):
    with pytest.raises(ValidationError, match="declare each once"):
        SourceSpec(collection="r", flag_values={"lims_status": ["invalidated"]}, **extra)


def test_a_flag_value_field_lists_values():
    with pytest.raises(ValidationError, match="list no values"):
        SourceSpec(collection="r", flag_values={"lims_status": [" "]})
