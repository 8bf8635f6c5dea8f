"""Placeholder: replaced by the JSON Schema value generator (work in progress)."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from sim.errors import UnderstudyError


class SchemaError(UnderstudyError):
    """A JSON Schema that no value can be generated for; ``path`` points at the bad part."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


def value_for(schema: Mapping[str, Any], rand: random.Random) -> Any:
    """A JSON value that validates against ``schema``; deterministic for a given ``rand`` state."""
    return {}
