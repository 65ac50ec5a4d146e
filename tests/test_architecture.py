"""The provider's shape, checked by tools: import contracts, one render row per kind of task, plain layers.

The import contracts live in ``pyproject.toml`` (``[tool.importlinter]``) and ``make test`` runs
``lint-imports``; these tests show that they hold on the code as it is, and that each one fails the moment
a forbidden import is written.
"""

from __future__ import annotations

import dataclasses
import inspect
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import venv_bin

REPO = Path(__file__).resolve().parents[1]


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on the package found under ``root`` (first on the path), with the repo's contracts."""
    return subprocess.run(
        [venv_bin("lint-imports"), str(REPO / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env={"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_import_contracts_hold() -> None:
    proc = _lint_imports(REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "6 kept, 0 broken" in proc.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("plan/models.py", "import airflow.sdk", "import nothing from Airflow"),
        ("records/models.py", "import cronium_provider.plan.build", "records below plan below render"),
        ("runners/container.py", "import cronium_provider.operators.event", "runners import no operator"),
        ("operators/http.py", "import cronium_provider.render.dags", "operators (and hooks) know neither"),
        ("variables.py", "import cronium_provider.operators.tool_action", "only render names an operator"),
        ("tools/templates.py", "import cronium_provider.operators.results", "only render names an operator"),
        ("webhook/app.py", "import cronium_provider.operators.http", "only render names an operator"),
        ("variables.py", "import cronium_provider.tools.actions", "no cycle through tool delivery"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(tmp_path: Path, module: str, line: str, broken: str) -> None:
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(REPO / "cronium_provider", tmp_path / "cronium_provider", ignore=ignore)
    target = tmp_path / "cronium_provider" / module
    target.write_text(target.read_text() + f"\n{line}  # noqa\n")
    proc = _lint_imports(tmp_path)
    assert proc.returncode != 0, proc.stdout
    assert "0 broken" not in proc.stdout
    broken_section = proc.stdout.split("Broken contracts", 1)[1]
    assert broken in " ".join(broken_section.split()), proc.stdout


def test_every_kind_of_task_is_one_spec_one_operator_one_row() -> None:
    """Each concrete spec type has exactly one operator in the render table, and that operator's module
    is declared to Airflow in the provider info."""
    from cronium_provider.get_provider_info import get_provider_info
    from cronium_provider.plan import specs
    from cronium_provider.render.dags import OPERATORS

    kinds = [cls for _, cls in inspect.getmembers(specs, inspect.isclass) if issubclass(cls, specs.TaskSpec)]
    concrete = {cls for cls in kinds if not any(other is not cls and issubclass(other, cls) for other in kinds)}
    assert len(concrete) == 8
    assert set(OPERATORS) == concrete
    declared = {m for op in get_provider_info()["operators"] for m in op["python-modules"]}
    assert {cls.__module__ for cls in OPERATORS.values()} <= declared
    for spec in OPERATORS:
        assert dataclasses.is_dataclass(spec) and spec.__dataclass_params__.frozen, spec  # type: ignore[attr-defined]


def test_plan_and_records_load_without_airflow(tmp_path: Path) -> None:
    """``cronium-airflow plan`` needs no Airflow: the records and plan layers never import it."""
    (tmp_path / "e.json").write_text('{"kind": "event", "id": 1, "name": "e", "type": "BASH", "content": "true"}')
    code = (
        "import sys, json\n"
        "from cronium_provider.records.validation import load_records\n"
        "from cronium_provider.plan.build import build_plan\n"
        f"plan = build_plan(load_records([{str(tmp_path)!r}]))\n"
        "print(json.dumps(plan.to_json())[:40])\n"
        "assert not [m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')], 'airflow imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_provider_errors_are_airflow_exceptions_and_bad_parameters_fail_without_retry() -> None:
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    from cronium_provider import exceptions

    errors = [
        cls
        for _, cls in inspect.getmembers(exceptions, inspect.isclass)
        if issubclass(cls, BaseException) and cls.__module__ == exceptions.__name__
    ]
    assert errors and all(issubclass(cls, AirflowException) for cls in errors)
    for no_retry in (
        exceptions.CroniumInvalidParameter,
        exceptions.ContainerLimitError,
        exceptions.ToolActionError,
        exceptions.InterpreterMissing,
        exceptions.RemoteAccessRefused,
        exceptions.CroniumCredentialsRefused,
        exceptions.InvalidCredentials,
        exceptions.EventEnvMissing,
    ):
        assert issubclass(no_retry, AirflowFailException), no_retry
    for retryable in (exceptions.ScriptFailed, exceptions.RemoteRunError, exceptions.ToolHTTPError):
        assert not issubclass(retryable, AirflowFailException), retryable
