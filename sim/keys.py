"""API keys: the ``keys:`` list, each key with behaviours of its own, and the ``keys`` auth plugin.

Theory of operation. When ``keys:`` lists any key, an API request must bring
one of them (``Authorization: Bearer KEY`` or Anthropic's ``x-api-key``), else
it gets 401 in the provider's words, as the real APIs answer a wrong key. Each
entry may override, for its key alone, the rate limits (buckets of its own, on
top of the cluster's and the model's), the faults (a ``faults`` section: rate,
mix and per-model rates) and the latency (a ``latency_profiles`` section). The
plugins that apply those behaviours look the key up here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sim.errors import SectionError
from sim.faults import FaultsConfig, FaultsConfigError, load_faults
from sim.latency import LatencyConfig, LatencyConfigError, load_latency
from sim.limits_plugin import api_key
from sim.pipeline import BasePlugin, Context, PluginError, PluginRequest, ShortCircuit
from sim.ratelimit import Limit, load_limit

KEY_FIELDS = ("key", "name", "limits", "faults", "latency")


class KeysConfigError(SectionError):
    """The ``keys`` list is invalid."""

    section = "keys"


@dataclass(frozen=True, slots=True)
class KeyConfig:
    key: str
    name: str
    limits: Limit = field(default_factory=Limit)
    faults: FaultsConfig | None = None
    latency: LatencyConfig | None = None


@dataclass(frozen=True, slots=True)
class KeysConfig:
    by_key: Mapping[str, KeyConfig] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return bool(self.by_key)

    def limits(self) -> dict[str, Limit]:
        return {key: entry.limits for key, entry in self.by_key.items() if entry.limits}

    def faults(self) -> dict[str, FaultsConfig]:
        return {key: entry.faults for key, entry in self.by_key.items() if entry.faults is not None}

    def latency(self) -> dict[str, LatencyConfig]:
        return {key: entry.latency for key, entry in self.by_key.items() if entry.latency is not None}


def load_keys(raw: object, *, where: str = "keys") -> KeysConfig:
    """Validate the ``keys`` list; every problem is reported at once, each with its path."""
    if raw is None:
        return KeysConfig()
    errors: list[str] = []
    if not isinstance(raw, list):
        raise KeysConfigError([f"{where}: must be a list of {{key, limits, faults, latency}}"])
    entries: dict[str, KeyConfig] = {}
    for index, entry in enumerate(raw):
        path = f"{where}[{index}]"
        if not isinstance(entry, Mapping):
            errors.append(f"{path}: must be a mapping")
            continue
        errors += [f"{path}.{name}: unknown field" for name in entry if name not in KEY_FIELDS]
        key = entry.get("key")
        if not isinstance(key, str) or not key:
            errors.append(f"{path}.key: required, a non-empty string")
            continue
        if key in entries:
            errors.append(f"{path}.key: {_masked(key)} is listed twice")
            continue
        entries[key] = KeyConfig(
            key,
            str(entry.get("name", _masked(key))),
            load_limit(entry["limits"], f"{path}.limits", errors) if "limits" in entry else Limit(),
            _section(load_faults, entry.get("faults"), f"{path}.faults", errors),
            _section(load_latency, entry.get("latency"), f"{path}.latency", errors),
        )
    if errors:
        raise KeysConfigError(errors)
    return KeysConfig(entries)


def _section(loader: Any, raw: object, path: str, errors: list[str]) -> Any:
    if raw is None:
        return None
    try:
        return loader(raw, where=path)
    except (FaultsConfigError, LatencyConfigError) as error:
        errors += error.errors
        return None


def _masked(key: str) -> str:
    """A key as the providers echo it: its start and its last four characters."""
    if len(key) <= 8:
        return "*" * len(key)
    return key[:3] + "*" * (len(key) - 7) + key[-4:]


class KeysPlugin(BasePlugin):
    """Accepts only the listed keys: 401 otherwise, in the provider's words."""

    name = "keys"

    def __init__(self, config: KeysConfig) -> None:
        self.config = config

    def pre_hook(self, ctx: Context, request: PluginRequest) -> PluginRequest | ShortCircuit:
        key = api_key(request.headers)
        if key is not None and key in self.config.by_key:
            return request
        if request.provider == "anthropic":
            message = "x-api-key header is required" if key is None else "invalid x-api-key"
            return ShortCircuit(error=PluginError(401, message, type="authentication_error"))
        if key is None:
            message = (
                "You didn't provide an API key. You need to provide your API key in an Authorization header "
                "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
            )
            return ShortCircuit(error=PluginError(401, message, type="invalid_request_error"))
        message = (
            f"Incorrect API key provided: {_masked(key)}. "
            "You can find your API key at https://platform.openai.com/account/api-keys."
        )
        return ShortCircuit(error=PluginError(401, message, type="invalid_request_error", code="invalid_api_key"))
