"""Values keyed by model: the lookup that latency profiles and prices share.

A key is an exact model id or an fnmatch glob (case-sensitive). A model is
looked up by exact id, then by the globs in the order given, then both again
without a dated snapshot suffix (``gpt-4o-2024-08-06`` → ``gpt-4o``,
``claude-sonnet-4-5-20250929`` → ``claude-sonnet-4-5``), as the providers name
their snapshots. Answers, misses included, are memoised per table up to
:data:`CACHE_LIMIT` names, since clients choose model names; past it they are
still answered, just not remembered.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from fnmatch import translate
from typing import Final, Generic, TypeVar

T = TypeVar("T")

CACHE_LIMIT: Final = 4096
_GLOB_CHARS: Final = frozenset("*?[")
_SNAPSHOT_SUFFIX: Final = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8})\Z")


class ModelTable(Generic[T]):
    __slots__ = ("_exact", "_globs", "_memo")

    def __init__(self, entries: Iterable[tuple[str, T]]) -> None:
        exact: dict[str, T] = {}
        globs: list[tuple[re.Pattern[str], T]] = []
        for key, value in entries:
            if _GLOB_CHARS.isdisjoint(key):
                exact.setdefault(key, value)  # the first entry wins, as it does among globs
            else:
                globs.append((re.compile(translate(key)), value))
        self._exact = exact
        self._globs = tuple(globs)
        self._memo: dict[str, T | None] = {}

    @property
    def has_entries(self) -> bool:
        return bool(self._exact or self._globs)

    def get(self, model: str) -> T | None:
        """The value for ``model`` (see the module's docstring), or None if no key names it."""
        try:
            return self._memo[model]
        except KeyError:
            pass
        value = self._match(model)
        if value is None:
            family, dated = _SNAPSHOT_SUFFIX.subn("", model)
            if dated:
                value = self._match(family)
        if len(self._memo) < CACHE_LIMIT:
            self._memo[model] = value
        return value

    def _match(self, model: str) -> T | None:
        value = self._exact.get(model)
        if value is not None:
            return value
        for pattern, candidate in self._globs:
            if pattern.match(model):
                return candidate
        return None
