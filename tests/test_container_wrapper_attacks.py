"""A run's container as its script's author would attack it, against real Docker and the runtime image.

A run followed to its end is one container whose first process, a shell wrapper, takes the run files on its
stdin; these tests drive :class:`~cronium_provider.runners.container.ContainerExecutor` directly and check
that the worker never hangs and never leaves a container behind, whatever the container does.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest

from tests.conftest import RUNTIME_IMAGE

pytestmark = [pytest.mark.docker]


def _left(docker_client: Any, label: str) -> list[str]:
    found = docker_client.api.containers(all=True, filters={"label": f"org.cronium.test={label}"})
    return [c["Id"] for c in found]


@pytest.fixture
def label(docker_client: Any) -> Any:
    """A label for this test's containers; any left are removed after the test (and the test failed)."""
    value = f"attack-{uuid.uuid4().hex[:8]}"
    yield value
    for container_id in _left(docker_client, value):
        docker_client.api.remove_container(container_id, force=True)


class _StopOnStart:
    """The Docker client, stopping the run (as a killed task does, SIGKILL ``stop_timeout`` s after SIGTERM)
    as soon as its container has started."""

    def __init__(self, api: Any, stop_timeout: int) -> None:
        self.api = api
        self.stop_timeout = stop_timeout
        self.executor: Any = None  # the executor using this client

    def __getattr__(self, name: str) -> Any:
        return getattr(self.api, name)

    def start(self, container_id: str) -> None:
        self.api.start(container_id)
        threading.Thread(target=self.executor.stop, kwargs={"timeout": self.stop_timeout}, daemon=True).start()


def _run_in_thread(executor: Any, job: Any, seconds: float) -> tuple[Any, list[BaseException]]:
    """``executor.run(job)`` in a thread, waited for ``seconds``: the run (None while it is still going) and
    its error, if any."""
    outcome: list[Any] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            outcome.append(executor.run(job))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    return (outcome[0] if outcome else None), errors


def test_a_container_that_dies_while_the_run_files_are_sent_ends_the_run(docker_client: Any, label: str) -> None:
    """A 64 MB input unpacked into a run folder larger than the container's memory: the wrapper is killed
    (out of memory) while the worker still sends the run files. The run ends at once, failed, naming the
    unpacking, and its container is removed (the worker does not wait for ever on a stdin nobody reads)."""
    from cronium_provider.runners.base import ScriptJob
    from cronium_provider.runners.container import ContainerExecutor, ContainerLimits

    lines: list[str] = []
    executor = ContainerExecutor(
        docker_client.api,
        on_line=lambda stream, line: lines.append(line),
        image=RUNTIME_IMAGE,
        limits=ContainerLimits(memory_mb=16, run_folder_mb=256),
        labels={"org.cronium.test": label},
    )
    job = ScriptJob(language="BASH", script="echo should-not-run", input={"blob": "a" * (64 * 1024 * 1024)})
    started = time.monotonic()
    run, errors = _run_in_thread(executor, job, 60)
    assert run is not None or errors, f"the run still waits {time.monotonic() - started:.0f} s later"
    assert run is None and len(errors) == 1, (run, errors)
    assert "could not unpack the run files; no script ran" in str(errors[0]), errors
    assert "should-not-run" not in lines
    assert _left(docker_client, label) == []


def test_a_stop_while_the_run_files_are_sent_ends_the_run(docker_client: Any, label: str) -> None:
    """The task is killed (its container stopped, SIGKILL at once) just after the container started, while
    the worker is still sending a 100 MB input: the run ends, failed, and its container is removed."""
    from cronium_provider.runners.base import ScriptJob
    from cronium_provider.runners.container import ContainerExecutor

    client = _StopOnStart(docker_client.api, stop_timeout=0)
    executor = client.executor = ContainerExecutor(client, image=RUNTIME_IMAGE, labels={"org.cronium.test": label})
    job = ScriptJob(language="BASH", script="echo should-not-run", input={"blob": "a" * (100 * 1024 * 1024)})
    run, errors = _run_in_thread(executor, job, 60)
    assert run is not None or errors, "the run still waits a minute after it was stopped"
    assert not errors, errors
    assert run.exit_code in (137, 143), run  # SIGKILL, or the SIGTERM just before it
    assert _left(docker_client, label) == []


def test_the_largest_result_files_allowed_are_read_back_in_seconds(docker_client: Any, label: str) -> None:
    """A script writes every result file at the largest size allowed (10 MB each, 50 MB in all): the worker
    reads them back from the container's output in a few seconds of its own CPU, not minutes (the time to
    read them grows with their size, not with its square)."""
    from cronium_provider.runners.base import ScriptJob
    from cronium_provider.runners.container import ContainerExecutor
    from cronium_provider.runners.protocol import RESULT_FILES

    size = 10 * 1024 * 1024
    script = "; ".join(f"head -c {size} /dev/zero | tr '\\0' x > {name}" for name in RESULT_FILES)
    script += f"; printf '\"%s\"' \"$(head -c {size - 2} /dev/zero | tr '\\0' y)\" > output.json"
    executor = ContainerExecutor(
        docker_client.api, max_result_bytes=size, image=RUNTIME_IMAGE, labels={"org.cronium.test": label}
    )
    job = ScriptJob(language="BASH", script=script)
    cpu = time.process_time()
    run = executor.run(job)
    cpu = time.process_time() - cpu
    assert run.exit_code == 0, run.stderr_tail
    assert cpu < 10, f"reading the results took {cpu:.1f} s of the worker's CPU"
    # read whole: the first file that is no JSON (10 MB of x) is named as such, not as too large
    assert str(run.protocol_error).startswith("condition.json: not valid JSON"), run.protocol_error


def test_run_files_larger_than_the_run_folder_fail_naming_its_limit(docker_client: Any, label: str) -> None:
    """An input of 3 MB for a run folder of 1 MB: the run fails before the script starts, saying the run
    files do not fit the run folder and naming its setting (run_folder_mb); its container is removed."""
    from cronium_provider.exceptions import ContainerLimitError
    from cronium_provider.runners.base import ScriptJob
    from cronium_provider.runners.container import ContainerExecutor, ContainerLimits

    lines: list[str] = []
    executor = ContainerExecutor(
        docker_client.api,
        on_line=lambda stream, line: lines.append(line),
        image=RUNTIME_IMAGE,
        limits=ContainerLimits(run_folder_mb=1),
        labels={"org.cronium.test": label},
    )
    job = ScriptJob(language="BASH", script="echo should-not-run", input={"blob": "a" * (3 * 1024 * 1024)})
    with pytest.raises(ContainerLimitError, match=r"do not fit the run folder of 1 MB: no space left on device"):
        executor.run(job)
    assert "should-not-run" not in lines
    assert _left(docker_client, label) == []


def test_a_stop_before_the_script_started_keeps_it_from_starting(docker_client: Any, label: str) -> None:
    """The task is killed (SIGTERM, SIGKILL 5 s later) just after its container started, while a 40 MB
    input is still being unpacked: the script never starts (it printed nothing) and the run ends at once
    with SIGTERM's exit code, not at the SIGKILL 5 s later."""
    from cronium_provider.runners.base import ScriptJob
    from cronium_provider.runners.container import ContainerExecutor

    lines: list[str] = []
    client = _StopOnStart(docker_client.api, stop_timeout=5)
    executor = client.executor = ContainerExecutor(
        client, on_line=lambda stream, line: lines.append(line), image=RUNTIME_IMAGE, labels={"org.cronium.test": label}
    )
    job = ScriptJob(language="BASH", script="echo script-started; sleep 30", input={"blob": "a" * (40 * 1024 * 1024)})
    started = time.monotonic()
    run = executor.run(job)
    took = time.monotonic() - started
    assert "script-started" not in lines
    assert run.exit_code == 143, run
    assert took < 4, f"the run ended {took:.1f} s after its start"
    assert _left(docker_client, label) == []
