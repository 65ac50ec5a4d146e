"""``[cronium]`` is read in one place, into one typed object that holds every option the provider reads."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from cronium_provider.get_provider_info import get_provider_info
from cronium_provider.settings import CroniumSettings

PACKAGE = Path(__file__).resolve().parents[1] / "cronium_provider"
CONF_READS = {"get", "getint", "getfloat", "getboolean", "getjson", "getlist", "getsection", "has_option", "items"}
# Being rewritten elsewhere; each still reads [cronium] itself until it takes read_settings() (then drop it here).
PENDING: set[str] = set()


def _section_readers() -> set[str]:
    """The modules with a call ``conf.get("cronium", ...)`` (or getint, getboolean...), the section given as
    a literal, a module constant holding it, or ``SECTION`` from :mod:`cronium_provider.settings`."""
    readers = set()
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        constants = {
            target.id: node.value.value
            for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.module == "cronium_provider.settings":
                constants.update({a.asname or a.name: "cronium" for a in node.names if a.name == "SECTION"})
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args):
                continue
            if not (isinstance(node.func.value, ast.Name) and node.func.value.id == "conf"):
                continue
            first = node.args[0]
            section = first.value if isinstance(first, ast.Constant) else None
            if isinstance(first, ast.Name):
                section = constants.get(first.id)
            if node.func.attr in CONF_READS and section == "cronium":
                readers.add(path.relative_to(PACKAGE).as_posix())
    return readers


def test_only_the_config_module_reads_the_cronium_section() -> None:
    assert _section_readers() - PENDING == {"config.py"}


def test_every_declared_option_is_in_the_settings_with_its_declared_default() -> None:
    declared = get_provider_info()["config"]["cronium"]["options"]
    fields = {f.name: f for f in dataclasses.fields(CroniumSettings)}
    assert set(declared) == set(fields)  # every option the provider reads is one Airflow knows of
    parsed = CroniumSettings.from_options(lambda name: declared[name]["default"] if name in declared else None)
    assert parsed == CroniumSettings()


def test_the_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        CroniumSettings().image = "other"  # type: ignore[misc]


def test_airflow_options_reach_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from cronium_provider.config import read_settings

    monkeypatch.setenv("AIRFLOW__CRONIUM__MAX_HTTP_RESPONSE_BYTES", "2048")
    monkeypatch.setenv("AIRFLOW__CRONIUM__WEBHOOK_BODY_TIMEOUT_SECONDS", "2.5")
    monkeypatch.setenv("AIRFLOW__CRONIUM__IMAGE_PYTHON", "py:1")
    monkeypatch.setenv("AIRFLOW__CRONIUM__DEFERRABLE", "true")
    monkeypatch.setenv("AIRFLOW__CRONIUM__TIMEZONE", "Europe/Berlin")
    settings = read_settings()
    assert settings.max_http_response_bytes == 2048 and settings.webhook_body_timeout_seconds == 2.5
    assert settings.image_for("python") == "py:1" and settings.image_for("bash") == "cronium-runtime:2"
    assert settings.deferrable is True and settings.schedule_timezone() == "Europe/Berlin"


def test_an_option_of_the_wrong_type_is_logged_naming_it_and_its_default_used(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A typo in one option never takes every Cronium DAG down: it is logged, naming the option, the value
    and the default used instead; the other options are read as set (the CLI refuses it, see below)."""
    from cronium_provider.config import read_settings

    monkeypatch.setenv("AIRFLOW__CRONIUM__MAX_RESULT_BYTES", "ten megabytes")
    monkeypatch.setenv("AIRFLOW__CRONIUM__RUN_FOLDER_MB", "200")
    with caplog.at_level("ERROR", logger="airflow.cronium.factory"):
        settings = read_settings()
    assert settings.max_result_bytes == 10 * 1024 * 1024 and settings.run_folder_mb == 200
    assert "[cronium] max_result_bytes must be a whole number, not 'ten megabytes'; using the default, 10485760" in (
        caplog.text
    )
    with pytest.raises(ValueError, match=r"\[cronium\] max_result_bytes must be a whole number"):
        read_settings(strict=True)  # cronium-airflow's reading


def test_a_bad_scope_is_read_as_auto_by_airflow_and_refused_by_the_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    from cronium_provider.config import read_settings

    monkeypatch.setenv("AIRFLOW__CRONIUM__SCOPE_VARIABLES_BY_OWNER", "maybe")
    assert read_settings().scope_variables_by_owner == "auto"
    with pytest.raises(ValueError, match="scope_variables_by_owner must be auto, true or false"):
        read_settings(strict=True)  # cronium-airflow's reading


def test_script_network_is_none_or_a_docker_network_name(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """``[cronium] script_network``: empty or ``none`` (any case) keeps scripts isolated; a Docker network name
    is kept as written; anything else is logged naming the option and read as ``none`` (isolation stays on),
    and the CLI refuses it."""
    from cronium_provider.config import read_settings

    for raw, expected in (("", "none"), (" None ", "none"), ("host", "host"), ("ci_net-1.a", "ci_net-1.a")):
        monkeypatch.setenv("AIRFLOW__CRONIUM__SCRIPT_NETWORK", raw)
        assert read_settings("script_network").script_network == expected
    monkeypatch.setenv("AIRFLOW__CRONIUM__SCRIPT_NETWORK", "host --privileged")
    with caplog.at_level("ERROR", logger="airflow.cronium.factory"):
        assert read_settings("script_network").script_network == "none"
    assert "[cronium] script_network must be none or the name of a Docker network" in caplog.text
    with pytest.raises(ValueError, match=r"\[cronium\] script_network must be none"):
        read_settings(strict=True)
