"""Numbers for JSON Schema ``number`` and ``integer`` values.

Theory of operation: the allowed values form a grid: the multiples of
``multipleOf`` read as the decimal its author wrote (``0.1`` is 1/10, not the
nearest binary float), of 1 for integers, and of 1/100 for other numbers, so
prices look like prices (bounds too tight for that grid get a finer one). All
arithmetic is on exact fractions, so huge or tiny bounds lose nothing. A grid
point is drawn within the bounds and, where that leaves room, within a default
range the property's name suggests (ages, years, latitudes; else 0 to 100).
Each draw is checked as ``jsonschema`` checks it, ``multipleOf`` by float
division: 0.07 is not a multiple of 0.01 to it, so another point is drawn.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from sim.schema_check import SchemaError, join, number_bounds
from sim.schema_strings import name_words

DEFAULT_RANGE = (0, 100)
_DRAWS = 12
_SWEEP = 100
_EXACT_FLOAT = 2**53
_INT64 = 2**63
_HINTS: tuple[tuple[frozenset[str], int, int], ...] = tuple(
    (frozenset(words.split()), low, high)
    for words, low, high in (
        ("age", 18, 90),
        ("year", 1990, 2030),
        ("month", 1, 12),
        ("day", 1, 28),
        ("hour", 0, 23),
        ("minute second", 0, 59),
        ("lat latitude", -90, 90),
        ("lon lng long longitude", -180, 180),
        ("price amount cost total salary balance fee", 1, 500),
        ("rating stars", 1, 5),
        ("temperature temp", -10, 40),
        ("count quantity qty limit page size top k n result", 1, 20),
    )
)


def number_value(
    schema: Mapping[str, Any], path: str, *, integer: bool, name: str | None, rand: random.Random
) -> int | float:
    """A number within ``schema``'s bounds and ``multipleOf``; an ``int`` where ``integer``."""
    low, low_strict, high, high_strict = number_bounds(schema)
    multiple = schema.get("multipleOf")
    if multiple is not None:
        step = Fraction(repr(multiple)) if isinstance(multiple, float) else Fraction(multiple)
        # The integral multiples of p/q (in lowest terms) are the multiples of p.
        grids = [Fraction(step.numerator) if integer else step]
    else:
        grids = [Fraction(1)] if integer else [Fraction(1, 100), Fraction(1, 10**6)]
    words = name_words(name)
    hint_low, hint_high = next(((lo, hi) for keys, lo, hi in _HINTS if keys & words), DEFAULT_RANGE)
    for grid in grids:
        first = _index(low, grid, up=True, strict=low_strict)
        last = _index(high, grid, up=False, strict=high_strict)
        if first is not None and last is not None and first > last:
            continue
        start = math.ceil(hint_low / grid)
        width = max(0, math.floor(hint_high / grid) - start)
        within = (last - first) if first is not None and last is not None else width
        low_end = max(start, first) if first is not None else start
        high_end = min(start + width, last) if last is not None else start + width
        # Use the default range where it leaves a fair share of the allowed one, else one as wide at a bound.
        if high_end - low_end < min(width, within) / 2:
            if first is not None:
                low_end, high_end = first, first + width if last is None else min(last, first + width)
            elif last is not None:
                low_end, high_end = last - width, last
        draws = (rand.randint(low_end, high_end) for _ in range(_DRAWS))
        for index in itertools.chain(draws, range(low_end, min(high_end, low_end + _SWEEP) + 1)):
            value = _json_number(index * grid, integer=integer)
            if value is not None and _allowed(value, low, low_strict, high, high_strict, multiple):
                return value
    if not integer and multiple is None and low is not None and high is not None:
        middle = _json_number((Fraction(low) + Fraction(high)) / 2, integer=False)
        if middle is not None and _allowed(middle, low, low_strict, high, high_strict, None):
            return middle
    kind = "integer" if integer else "number"
    what = f"{kind} that is a multiple of {multiple}" if multiple is not None else kind
    raise SchemaError(
        join(path, "multipleOf" if multiple is not None else "type"),
        f"no {what} lies between {_bound(low, low_strict)} and {_bound(high, high_strict)}",
    )


def _index(bound: Any, grid: Fraction, *, up: bool, strict: bool) -> int | None:
    """The first (``up``) or last grid index within ``bound``; ``None`` when unbounded."""
    if bound is None:
        return None
    ratio = Fraction(bound) / grid
    index = math.ceil(ratio) if up else math.floor(ratio)
    if strict and index == ratio:
        index += 1 if up else -1
    return index


def _json_number(value: Fraction, *, integer: bool) -> int | float | None:
    """``value`` as orjson can write it: an int within 64 bits (and 53 for non-integers), else a float."""
    if value.denominator == 1 and abs(value) < (_INT64 if integer else _EXACT_FLOAT):
        return int(value)
    try:
        return float(value)
    except OverflowError:
        return None


def _allowed(value: int | float, low: Any, low_strict: bool, high: Any, high_strict: bool, multiple: Any) -> bool:
    if low is not None and (value < low or (low_strict and value == low)):
        return False
    if high is not None and (value > high or (high_strict and value == high)):
        return False
    return multiple is None or _divides(multiple, value)


def _divides(multiple: int | float, value: int | float) -> bool:
    """``jsonschema``'s own ``multipleOf`` test, so what passes here passes there."""
    if isinstance(multiple, float):
        try:
            quotient = value / multiple
            return int(quotient) == quotient
        except OverflowError:
            return (Fraction(value) / Fraction(multiple)).denominator == 1
    return not value % multiple


def _bound(bound: Any, strict: bool) -> str:
    if bound is None:
        return "no bound"
    return f"{bound} (excluded)" if strict else str(bound)
