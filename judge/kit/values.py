"""Comparing values the way a records clerk would: one notation-free form, placeholders, sentinel dates."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from typing import Any

__all__ = ["PLACEHOLDERS", "as_date", "as_datetime", "is_blank", "is_placeholder", "normalise", "readings"]

# Null flavours (HL7), "to be" markers and dummy text that systems and people put where a value is missing.
PLACEHOLDERS = frozenset({
    "n/a", "na", "n.a.", "nan", "none", "null", "nil", "unk", "unknown", "ni", "asku", "nask", "msk", "oth",
    "tbd", "tbc", "tba", "to be determined", "to be confirmed", "pending", "placeholder", "dummy", "test", "xxx",
    "x", "-", "--", "—", "?", "??", "0", "00/00/0000", "0000-00-00", "lorem ipsum", "not available", "missing",
})  # fmt: skip
_DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%m/%d/%Y", "%Y%m%d", "%d.%m.%Y", "%Y/%m/%d", "%d %B %Y", "%B %d, %Y",
                 "%d %b %Y", "%b %d, %Y")  # fmt: skip
_HAS_DIGIT = re.compile(r"\d")
_ISO_PREFIX = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ]\d{2}:\d{2}")


def is_blank(value: Any) -> bool:
    return value is None or value == [] or value == {} or (isinstance(value, str) and not value.strip())


def as_date(value: Any) -> date | None:
    """The calendar date a value spells in any common notation (a date-time names its day), else None."""
    if not isinstance(value, str) or not _HAS_DIGIT.search(value) or len(value) > 40:
        return None
    text = value.strip()
    if iso := _ISO_PREFIX.match(text):
        text = iso.group(1)
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


def as_datetime(value: Any) -> datetime | None:
    """The moment an ISO date-time spells (with a time of day), naive, in UTC when it names an offset; else None."""
    if not isinstance(value, str) or len(value) > 40 or not _ISO_PREFIX.match(value.strip()):
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo is not None else moment


def normalise(value: Any) -> Any:
    """A canonical form: None for blanks, ISO for dates and date-times, floats for numbers, folded text, sorted
    lists. A date-time keeps its time of day (moving an event by hours is a change; midnight reads as the day)."""
    if is_blank(value):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list):
        return tuple(sorted((normalise(v) for v in value), key=repr))
    if isinstance(value, dict):
        return tuple(sorted((str(k), normalise(v)) for k, v in value.items()))
    text = str(value)
    if (moment := as_datetime(text)) is not None:
        return moment.date().isoformat() if moment.time() == time() else moment.isoformat()
    if (day := as_date(text)) is not None:
        return day.isoformat()
    return " ".join(text.split()).casefold()


def readings(value: Any) -> set[Any]:
    """The normalised forms a value may stand for: itself, and for a date-time also its day (a record that keeps
    the day of a timestamped event holds the same fact; a different time of day does not)."""
    form = normalise(value)
    return {form, form[:10]} if isinstance(form, str) and as_datetime(form) is not None else {form}


def is_placeholder(value: Any, extra: frozenset[str] = frozenset()) -> bool:
    """A stand-in for a missing value: a null flavour or dummy text, or a sentinel date (1900-01-01, 9999-12-31)."""
    if isinstance(value, str):
        text = " ".join(value.split()).casefold()
        if text in PLACEHOLDERS or text in extra:
            return True
        day = as_date(value)
        return day is not None and (day.year <= 1901 or day.year >= 2099)
    return False
