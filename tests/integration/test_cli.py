"""`understudy config` and settings errors, as a user meets them on the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml


def understudy(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("UNDERSTUDY_", "MOCKER_"))}
    return subprocess.run(
        [sys.executable, "-m", "understudy", *argv],
        env={**environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_config_show_prints_effective_settings_with_precedence(tmp_path: Path) -> None:
    config = tmp_path / "understudy.yaml"
    config.write_text("port: 9100\nworkers: 3\nhost: 0.0.0.0\n")
    result = understudy(
        "config", "show", "--config", str(config), "--workers", "4", env={"MOCKER_PORT": "9200", "MOCKER_HOST": "::1"}
    )
    assert result.returncode == 0, result.stderr
    shown = yaml.safe_load(result.stdout)
    assert (shown["host"], shown["port"], shown["workers"]) == ("::1", 9200, 4)


def test_defaults_are_the_bifrost_mock_servers() -> None:
    shown = yaml.safe_load(understudy("config", "show").stdout)
    assert (shown["host"], shown["port"], shown["workers"]) == ("127.0.0.1", 8000, os.cpu_count())


def test_bad_value_is_one_line_naming_the_setting_and_exit_2() -> None:
    result = understudy("config", "show", env={"UNDERSTUDY_PORT": "99999"})
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "'port'" in lines[0] and "UNDERSTUDY_PORT" in lines[0]


def test_bad_value_stops_serve_before_it_starts() -> None:
    result = understudy("serve", "--workers", "none")
    assert result.returncode == 2
    assert "'workers'" in result.stderr and "--workers" in result.stderr


def test_schema_lists_every_setting() -> None:
    result = understudy("config", "schema")
    assert result.returncode == 0
    assert '"heartbeat_timeout_s"' in result.stdout and '"port"' in result.stdout
