from pathlib import Path

import pytest
from pydantic import ValidationError

from sim.errors import SettingsError
from sim.settings import DEFAULT_MODELS, load_settings


def test_defaults_match_the_bifrost_mock_server() -> None:
    settings = load_settings(environ={})
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.workers >= 1
    assert settings.models == DEFAULT_MODELS


def test_precedence_defaults_file_environment_flags(tmp_path: Path) -> None:
    config = tmp_path / "understudy.yaml"
    config.write_text("port: 9001\nworkers: 3\nhost: 0.0.0.0\nstats_interval_s: 0.5\n")
    environ = {"UNDERSTUDY_PORT": "9002", "UNDERSTUDY_WORKERS": "4"}
    settings = load_settings(environ=environ, config_path=str(config), flags={"workers": "5"})
    assert settings.host == "0.0.0.0"  # file over default
    assert settings.stats_interval_s == 0.5
    assert settings.port == 9002  # environment over file
    assert settings.workers == 5  # flag over environment


def test_mocker_names_are_read_and_understudy_names_win() -> None:
    assert load_settings(environ={"MOCKER_HOST": "0.0.0.0", "MOCKER_PORT": "8123"}).port == 8123
    both = load_settings(environ={"MOCKER_PORT": "8123", "UNDERSTUDY_PORT": "8124"})
    assert both.port == 8124
    mock_server = load_settings(environ={"MOCKER_AUTH": "Bearer k", "MOCKER_BIG_PAYLOAD": "true"})
    assert (mock_server.auth, mock_server.big_payload) == ("Bearer k", True)


def test_models_from_environment_are_comma_separated() -> None:
    settings = load_settings(environ={"UNDERSTUDY_MODELS": "gpt-4o, my-model ,"})
    assert settings.models == ("gpt-4o", "my-model")


@pytest.mark.parametrize(
    ("environ", "flags", "setting", "source"),
    [
        ({"UNDERSTUDY_PORT": "70000"}, {}, "port", "UNDERSTUDY_PORT"),
        ({"MOCKER_PORT": "eighty"}, {}, "port", "MOCKER_PORT"),
        ({}, {"workers": "0"}, "workers", "--workers"),
        ({}, {"heartbeat_timeout_s": "0.5"}, "heartbeat_timeout_s", "--heartbeat-timeout-s"),
        ({}, {"log_level": "loud"}, "log_level", "--log-level"),
    ],
)
def test_bad_value_names_setting_and_source(
    environ: dict[str, str], flags: dict[str, str], setting: str, source: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(environ=environ, flags=flags)
    assert raised.value.setting == setting
    assert raised.value.source == source
    assert "\n" not in str(raised.value)


def test_unknown_key_in_config_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("prot: 9000\n")
    with pytest.raises(SettingsError, match="unknown setting") as raised:
        load_settings(environ={}, config_path=str(config))
    assert raised.value.setting == "prot"


@pytest.mark.parametrize("text", ["port: [1\n", "- just\n- a list\n"])
def test_config_file_that_is_not_a_mapping_is_refused(tmp_path: Path, text: str) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    with pytest.raises(SettingsError):
        load_settings(environ={}, config_path=str(config))


def test_missing_config_file_is_a_settings_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read"):
        load_settings(environ={}, config_path=str(tmp_path / "absent.yaml"))


def test_settings_are_frozen() -> None:
    settings = load_settings(environ={})
    with pytest.raises(ValidationError):
        settings.port = 1  # type: ignore[misc]


def test_shipped_example_config_is_the_defaults() -> None:
    example = Path(__file__).parents[2] / "configs" / "understudy.yaml"
    from_file = load_settings(environ={}, config_path=str(example))
    assert from_file == load_settings(environ={})


def test_content_settings_from_environment_json_and_flags() -> None:
    settings = load_settings(
        environ={
            "UNDERSTUDY_CONTENT_MODE": "canned",
            "UNDERSTUDY_CONTENT_RESPONSES": '["first", "second"]',
            "UNDERSTUDY_CONTENT_BY_MODEL": '{"gpt-4o": {"mode": "echo"}}',
        },
        flags={"big_payload": "true"},
    )
    assert settings.content_mode == "canned"
    assert settings.content_responses == ("first", "second")
    assert settings.content_by_model["gpt-4o"].mode == "echo"
    assert settings.big_payload is True


def test_canned_mode_needs_responses() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(environ={"UNDERSTUDY_CONTENT_MODE": "canned"})
    assert raised.value.setting == "content_responses"
    with pytest.raises(SettingsError) as raised:
        load_settings(environ={"UNDERSTUDY_CONTENT_BY_MODEL": '{"m": {"mode": "canned"}}'})
    assert raised.value.setting == "content_by_model"


def test_bad_json_in_the_environment_names_the_setting() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(environ={"UNDERSTUDY_CONTENT_RESPONSES": "[unclosed"})
    assert (raised.value.setting, raised.value.source) == ("content_responses", "UNDERSTUDY_CONTENT_RESPONSES")


@pytest.mark.parametrize(
    "name", ["understudy.yaml", "latency.yaml", "pricing.yaml", "default.yaml", "fast.yaml", "production-parity.yaml"]
)
def test_every_shipped_config_file_validates(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    from understudy.cli import main

    path = Path(__file__).resolve().parents[2] / "configs" / name
    assert main(["config", "validate", str(path)], environ={}) == 0, capsys.readouterr().err
