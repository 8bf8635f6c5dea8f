"""The `understudy` command line.

Every setting is also a flag (``heartbeat_interval_s`` is ``--heartbeat-interval-s``);
flags win over the environment, which wins over ``--config``, which wins over
the built-in defaults. A bad value is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import yaml

from sim.errors import SettingsError
from sim.faults import FaultsConfigError, load_faults
from sim.keys import KeysConfigError, load_keys
from sim.latency import LatencyConfigError, load_latency
from sim.mocker import MockerConfigError, load_mocker
from sim.plugin_loader import PluginConfigError, load_plugins
from sim.pricing import PricingConfigError, load_pricing
from sim.ratelimit import LimitsConfigError, load_limits
from sim.settings import FIELDS, Settings, load_settings, settings_document
from sim.upstreams import UpstreamConfigError, parse_upstreams

EXIT_USAGE = 2

# Short names that read better on each role's command line.
_ALIASES = {"coordinator_url": ["--coordinator"], "coordinator_bind": ["--bind"]}


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="YAML file of settings")
    group = parser.add_argument_group("settings (see `understudy config show`)")
    for name in FIELDS:
        flags = ["--" + name.replace("_", "-"), *_ALIASES.get(name, [])]
        field = Settings.model_fields[name]
        description = field.description or ""
        if field.annotation is bool:
            # `--big-payload` alone turns it on, as the Bifrost mock server's flag does.
            group.add_argument(*flags, dest=name, metavar="BOOL", nargs="?", const="true", help=description)
        else:
            group.add_argument(*flags, dest=name, metavar="VALUE", help=description)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="understudy", description="A drop-in stand-in for the OpenAI and Anthropic HTTP APIs."
    )
    roles = parser.add_subparsers(dest="command", required=True)
    serve = roles.add_parser("serve", help="run a coordinator and N workers on this machine")
    _add_setting_flags(serve)
    coordinator = roles.add_parser("coordinator", help="run the coordinator alone")
    _add_setting_flags(coordinator)
    coordinator.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)
    worker = roles.add_parser("worker", help="run one worker alone (joins --coordinator)")
    _add_setting_flags(worker)
    worker.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)
    worker.add_argument("--listen-fd", type=int, help=argparse.SUPPRESS)
    config = roles.add_parser("config", help="validate or print the effective settings")
    config.add_argument("action", choices=["show", "validate", "schema"])
    config.add_argument("file", nargs="?", help="the config file to check (same as --config FILE)")
    _add_setting_flags(config)
    return parser


def _flags(arguments: argparse.Namespace) -> dict[str, Any]:
    return {name: getattr(arguments, name, None) for name in FIELDS}


def resolve_settings(arguments: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
    from understudy.supervisor import inherited_settings

    inherited = inherited_settings(environ)
    if inherited is not None:
        # A child of `serve`: the supervisor already merged file and environment.
        return load_settings(environ={}, base=inherited, flags=_flags(arguments))
    return load_settings(environ=environ, flags=_flags(arguments), config_path=arguments.config)


def scenario_problems(settings: Settings) -> list[str]:
    """Every problem in the rules and the plugins (loaded once, so a bad file is refused before anything starts)."""
    problems: list[str] = []
    loaders: tuple[tuple[Callable[[Any], object], Any], ...] = (
        (load_mocker, settings.mocker),
        (parse_upstreams, settings.upstreams or []),
        (load_plugins, settings.plugins),
        (lambda section: load_faults(section, where="faults"), settings.faults),
        (lambda section: load_latency(section, where="latency_profiles"), settings.latency_profiles),
        (load_pricing, settings.pricing),
        (lambda section: load_limits(section), settings.limits),
        (load_keys, settings.keys),
    )
    for load, section in loaders:
        try:
            load(section)
        except (
            MockerConfigError,
            PluginConfigError,
            UpstreamConfigError,
            FaultsConfigError,
            LatencyConfigError,
            PricingConfigError,
            LimitsConfigError,
            KeysConfigError,
        ) as error:
            problems.extend(error.errors)
    return problems


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    environ = os.environ if environ is None else environ
    if arguments.command == "config" and arguments.file:
        arguments.config = arguments.file
    if arguments.command == "config" and arguments.action == "schema":
        print(json.dumps(Settings.model_json_schema(), indent=2))
        return 0
    try:
        settings = resolve_settings(arguments, environ)
    except SettingsError as error:
        print(f"understudy: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    problems = scenario_problems(settings)
    if problems:
        print(f"understudy: error: {len(problems)} problem(s) in the configuration:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_USAGE
    if arguments.command == "config":
        if arguments.action == "validate":
            print("settings are valid")
        else:
            print(yaml.safe_dump(settings_document(settings), sort_keys=False), end="")
        return 0
    if arguments.command == "serve":
        from understudy.supervisor import serve

        return serve(settings, config_path=arguments.config)
    if arguments.command == "coordinator":
        from coordinator.main import run_coordinator_process
        from understudy.supervisor import CONFIG_PATH_ENV

        config_path = arguments.config or environ.get(CONFIG_PATH_ENV)
        return run_coordinator_process(settings, parent_pid=arguments.parent_pid, config_path=config_path)
    from workers.main import run_worker

    return run_worker(settings, listen_fd=arguments.listen_fd, parent_pid=arguments.parent_pid)
