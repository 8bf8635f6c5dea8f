"""User plugins built from configuration: ``{name, factory: "package.module:create", config}``.

Importing the plugins' modules is the only I/O here; every problem in the
configuration is collected and reported at once, each with its path, so one
edit can fix them all.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from sim.errors import UnderstudyError
from sim.pipeline import PLUGIN_ATTRIBUTES, Plugin

_FACTORY = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*")
_SPEC_KEYS = frozenset({"name", "factory", "config", "enabled"})


class PluginConfigError(UnderstudyError):
    """The plugin configuration is unusable; ``errors`` lists every problem, each with its path."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = tuple(errors)
        super().__init__("bad plugin configuration:\n  " + "\n  ".join(self.errors))


def load_plugins(specs: Any, *, path: str = "plugins") -> tuple[Plugin, ...]:
    """Build the plugins ``specs`` names, in order; ``None`` means none.

    Each spec is ``{name, factory: "package.module:create", config: {...}, enabled: true}``;
    ``create(config)`` must return an object with ``name`` (equal to the spec's),
    ``pre_hook`` and ``post_hook``. Raises :class:`PluginConfigError` listing
    every problem found, so one edit can fix them all.
    """
    if specs is None:
        return ()
    if isinstance(specs, str | bytes | Mapping) or not isinstance(specs, Sequence):
        raise PluginConfigError([f"{path}: expected a list of plugin specs, got {type(specs).__name__}"])
    errors: list[str] = []
    plugins: list[Plugin] = []
    first_use: dict[str, str] = {}
    for index, spec in enumerate(specs):
        where = f"{path}[{index}]"
        checked = _check_spec(spec, where, errors)
        if checked is None:
            continue
        name, factory, config, enabled = checked
        if name in first_use:
            errors.append(f"{where}.name: duplicate plugin name {name!r} (first used by {first_use[name]})")
            continue
        first_use[name] = where
        if not enabled:
            continue
        plugin = _build(name, factory, config, where, errors)
        if plugin is not None:
            plugins.append(plugin)
    if errors:
        raise PluginConfigError(errors)
    return tuple(plugins)


def _check_spec(spec: Any, where: str, errors: list[str]) -> tuple[str, str, Mapping[str, Any], bool] | None:
    if not isinstance(spec, Mapping):
        errors.append(f"{where}: expected a mapping with name and factory, got {type(spec).__name__}")
        return None
    before = len(errors)
    errors.extend(f"{where}.{key}: unknown key" for key in sorted(map(str, spec.keys() - _SPEC_KEYS)))
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        errors.append(f"{where}.name: expected a non-empty string, got {name!r}")
    factory = spec.get("factory")
    if not isinstance(factory, str) or _FACTORY.fullmatch(factory) is None:
        errors.append(f"{where}.factory: expected 'package.module:callable', got {factory!r}")
    config = spec.get("config", {})
    if config is None:
        config = {}
    if not isinstance(config, Mapping):
        errors.append(f"{where}.config: expected a mapping, got {type(config).__name__}")
    enabled = spec.get("enabled", True)
    if not isinstance(enabled, bool):
        errors.append(f"{where}.enabled: expected true or false, got {enabled!r}")
    if len(errors) > before:
        return None
    assert isinstance(name, str) and isinstance(factory, str) and isinstance(config, Mapping)  # reported above
    return name, factory, config, bool(enabled)


def _build(name: str, factory: str, config: Mapping[str, Any], where: str, errors: list[str]) -> Plugin | None:
    module_name, _, attribute = factory.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        errors.append(f"{where}.factory: cannot import module {module_name!r}: {exc}")
        return None
    # Importing runs user code, which may fail in any way; report it like the rest.
    except Exception as exc:
        errors.append(f"{where}.factory: importing module {module_name!r} raised {type(exc).__name__}: {exc}")
        return None
    for part in attribute.split("."):
        if not hasattr(target, part):
            errors.append(f"{where}.factory: module {module_name!r} has no attribute {attribute!r}")
            return None
        target = getattr(target, part)
    if not callable(target):
        errors.append(f"{where}.factory: {factory!r} is not callable")
        return None
    try:
        plugin = target(dict(config))
    # The factory is user code; its failure is a configuration problem to report.
    except Exception as exc:
        errors.append(f"{where}.factory: {factory}(config) raised {type(exc).__name__}: {exc}")
        return None
    missing = [attr for attr in PLUGIN_ATTRIBUTES if not hasattr(plugin, attr)]
    if missing:
        errors.append(f"{where}.factory: {factory} returned {type(plugin).__name__}, lacking {', '.join(missing)}")
        return None
    if not (callable(plugin.pre_hook) and callable(plugin.post_hook)):
        errors.append(f"{where}.factory: {factory} returned {type(plugin).__name__} whose hooks are not callable")
        return None
    if plugin.name != name:
        errors.append(f"{where}.name: the factory's plugin is named {plugin.name!r}, not {name!r}")
        return None
    result: Plugin = plugin
    return result
