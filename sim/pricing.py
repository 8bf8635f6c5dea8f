"""Model list prices, and what a request's token usage would have cost.

Theory of operation: :func:`load_pricing` validates a ``pricing:`` config
section (a mapping of model id or fnmatch glob to USD per million tokens)
into an immutable :class:`PricingTable`, collecting every problem with its
path before raising :class:`PricingConfigError`. :meth:`PricingTable.price_for`
tries the exact id, then the globs in file order, then the same again with a
dated snapshot suffix (``-2024-08-06``, ``-20250929``) removed, so snapshots
cost what their family costs unless the table names them. Answers are
memoised per table, because the lookup runs on every request; the memo is
bounded, since model names come from clients.

The built-in prices are the constant :data:`DEFAULT_PRICES`, kept equal to
``configs/pricing.yaml`` (which users copy) by a unit test: ``configs/`` is
not package data, and ``sim/`` reads no files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from sim.errors import SectionError
from sim.model_table import ModelTable

__all__ = [
    "DEFAULT_PRICES",
    "Price",
    "PricingConfigError",
    "PricingTable",
    "default_pricing",
    "format_cost",
    "load_pricing",
]

_TOKENS_PER_UNIT: Final = 1_000_000
_FIELDS: Final = ("input", "output", "cached_input")
_REQUIRED: Final = ("input", "output")

# List prices as published by OpenAI and Anthropic, USD per 1M tokens; mirrored in configs/pricing.yaml.
DEFAULT_PRICES: Final[Mapping[str, Mapping[str, float]]] = {
    "gpt-4o": {"input": 2.50, "output": 10.00, "cached_input": 1.25},
    "gpt-4o-mini": {"input": 0.15, "output": 0.60, "cached_input": 0.075},
    "gpt-4.1": {"input": 2.00, "output": 8.00, "cached_input": 0.50},
    "gpt-4.1-mini": {"input": 0.40, "output": 1.60, "cached_input": 0.10},
    "gpt-4.1-nano": {"input": 0.10, "output": 0.40, "cached_input": 0.025},
    "gpt-5": {"input": 1.25, "output": 10.00, "cached_input": 0.125},
    "gpt-5-mini": {"input": 0.25, "output": 2.00, "cached_input": 0.025},
    "o3": {"input": 2.00, "output": 8.00, "cached_input": 0.50},
    "o3-mini": {"input": 1.10, "output": 4.40, "cached_input": 0.55},
    "o4-mini": {"input": 1.10, "output": 4.40, "cached_input": 0.275},
    "gpt-4-turbo": {"input": 10.00, "output": 30.00},
    "gpt-4": {"input": 30.00, "output": 60.00},
    "gpt-3.5-turbo": {"input": 0.50, "output": 1.50},
    "text-embedding-3-small": {"input": 0.02, "output": 0.00},
    "text-embedding-3-large": {"input": 0.13, "output": 0.00},
    "text-embedding-ada-002": {"input": 0.10, "output": 0.00},
    "claude-opus-4-6": {"input": 5.00, "output": 25.00, "cached_input": 0.50},
    "claude-sonnet-4-6": {"input": 3.00, "output": 15.00, "cached_input": 0.30},
    "claude-sonnet-4-5": {"input": 3.00, "output": 15.00, "cached_input": 0.30},
    "claude-haiku-4-5": {"input": 1.00, "output": 5.00, "cached_input": 0.10},
}


class PricingConfigError(SectionError):
    """The ``pricing`` section is invalid."""

    section = "pricing"


@dataclass(frozen=True, slots=True)
class Price:
    """One model's list price in USD per million tokens; cached input costs full input price when unset."""

    input_per_mtok: float
    output_per_mtok: float
    cached_input_per_mtok: float | None = None

    def cost_usd(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> float:
        """What the usage costs in USD.

        ``cached_tokens`` are the part of ``prompt_tokens`` served from the prompt cache (OpenAI's
        ``prompt_tokens_details.cached_tokens``); for Anthropic usage pass ``input_tokens +
        cache_read_input_tokens`` as ``prompt_tokens``. It is clamped to ``[0, prompt_tokens]``, so a
        mocked usage block that says more never yields a negative charge.
        """
        cached = min(max(cached_tokens, 0), prompt_tokens)
        cached_rate = self.input_per_mtok if self.cached_input_per_mtok is None else self.cached_input_per_mtok
        micro_usd = (
            (prompt_tokens - cached) * self.input_per_mtok
            + cached * cached_rate
            + completion_tokens * self.output_per_mtok
        )
        return micro_usd / _TOKENS_PER_UNIT


@dataclass(frozen=True, slots=True)
class PricingTable:
    """Prices keyed by exact model id or fnmatch glob (case-sensitive); build it with :func:`load_pricing`."""

    entries: tuple[tuple[str, Price], ...] = ()
    _table: ModelTable[Price] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_table", ModelTable(self.entries))

    def price_for(self, model: str) -> Price | None:
        """The price of ``model``: exact id, then globs in order, then both again without a snapshot date."""
        return self._table.get(model)

    def cost_usd(self, model: str, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> float | None:
        """What the usage costs on ``model`` in USD (see :meth:`Price.cost_usd`); None for an unpriced model."""
        price = self.price_for(model)
        return None if price is None else price.cost_usd(prompt_tokens, completion_tokens, cached_tokens)


def load_pricing(raw: object, *, where: str = "pricing") -> PricingTable:
    """Build a :class:`PricingTable` from a decoded ``pricing:`` section; None gives an empty table.

    Raises :class:`PricingConfigError` listing every problem, each as ``"path: message"``.
    """
    if raw is None:
        return PricingTable()
    if not isinstance(raw, Mapping):
        raise PricingConfigError([f"{where}: must be a mapping of model to prices, got {type(raw).__name__}"])
    errors: list[str] = []
    entries: list[tuple[str, Price]] = []
    for model, spec in raw.items():
        if not isinstance(model, str) or not model:
            errors.append(f"{where}: model names must be non-empty strings, got {model!r}")
            continue
        price = _load_price(spec, f"{where}.{model}", errors)
        if price is not None:
            entries.append((model, price))
    if errors:
        raise PricingConfigError(errors)
    return PricingTable(tuple(entries))


def _load_price(spec: object, path: str, errors: list[str]) -> Price | None:
    if not isinstance(spec, Mapping):
        errors.append(f"{path}: must be a mapping with {', '.join(_REQUIRED)}, got {type(spec).__name__}")
        return None
    failed = len(errors)
    for key in spec:
        if key not in _FIELDS:
            errors.append(f"{path}.{key}: unknown field; allowed: {', '.join(_FIELDS)}")
    errors.extend(f"{path}: missing required field {key}" for key in _REQUIRED if key not in spec)
    input_rate = _rate(spec, "input", path, errors)
    output_rate = _rate(spec, "output", path, errors)
    cached_rate = _rate(spec, "cached_input", path, errors) if spec.get("cached_input") is not None else None
    if len(errors) > failed or input_rate is None or output_rate is None:
        return None
    return Price(input_rate, output_rate, cached_rate)


def _rate(spec: Mapping[object, object], key: str, path: str, errors: list[str]) -> float | None:
    """The rate under ``key``, or None (an error recorded unless the key is absent)."""
    if key not in spec:
        return None
    value = spec[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        errors.append(f"{path}.{key}: must be a number >= 0, got {value!r}")
        return None
    return float(value)


def default_pricing() -> PricingTable:
    """The built-in list prices (:data:`DEFAULT_PRICES`) as a table."""
    return load_pricing(DEFAULT_PRICES, where="DEFAULT_PRICES")


def format_cost(usd: float) -> str:
    """``usd`` as a plain decimal for a header: 8 places, trailing zeros dropped, never an exponent."""
    text = f"{usd:.8f}".rstrip("0")
    return text + "0" if text.endswith(".") else text
