"""Comparing values the way a records clerk would: one notation-free form, placeholders, sentinel dates."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

__all__ = ["PLACEHOLDERS", "as_date", "is_blank", "is_placeholder", "normalise"]

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


def normalise(value: Any) -> Any:
    """A canonical form: None for blanks, ISO for dates, floats for numbers, folded text, sorted lists."""
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
    if (day := as_date(text)) is not None:
        return day.isoformat()
    return " ".join(text.split()).casefold()


def is_placeholder(value: Any, extra: frozenset[str] = frozenset()) -> bool:
    """A stand-in for a missing value: a null flavour or dummy text, or a sentinel date (1900-01-01, 9999-12-31)."""
    if isinstance(value, str):
        text = " ".join(value.split()).casefold()
        if text in PLACEHOLDERS or text in extra:
            return True
        day = as_date(value)
        return day is not None and (day.year <= 1901 or day.year >= 2099)
    return False
