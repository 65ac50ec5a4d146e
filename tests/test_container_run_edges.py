"""Container runs at their edges: a result file that is a named pipe is named so, run files larger than the run
folder fail before any script runs, and a script killed for memory shows only its own stderr."""

from __future__ import annotations

import pytest

from tests.support.airflow_run import run_dag
from tests.test_script_events import script_dag

pytestmark = [pytest.mark.docker, pytest.mark.airflow]


def test_a_named_pipe_result_file_is_refused_as_a_named_pipe(airflow_db, docker_client, capfd) -> None:
    dag, _ = script_dag("BASH", 'cd "$CRONIUM_RUN_DIR" && mkfifo output.json')
    text = run_dag(dag, capfd=capfd).log_text()
    assert "output.json: a named pipe, not a regular file; the script's result was not read" in text, text[-3000:]


def test_run_files_larger_than_the_run_folder_fail_before_the_script_runs(airflow_db, docker_client, capfd) -> None:
    """The run files do not fit a 1 MB run folder: the task fails with Docker's "no space left on device"
    before any script ran: no script exit code, no run summary."""
    dag, _ = script_dag("BASH", "# " + "x" * 1_500_000 + "\necho hi", run_folder_mb=1)
    result = run_dag(dag, capfd=capfd)
    text = result.log_text()
    assert result.task_states["run"] == "failed"
    assert "no space left on device" in text, text[-3000:]
    assert "The script exited with code" not in text and "cronium summary:" not in text, text[-3000:]


def test_a_script_killed_out_of_memory_adds_no_stderr_line_of_its_own(airflow_db, docker_client, capfd) -> None:
    """A script the kernel kills for memory: the task's log shows only what the script wrote."""
    dag, _ = script_dag("PYTHON", 'print("going", flush=True)\nx = bytearray(400 * 1024 * 1024)', memory_mb=128)
    text = run_dag(dag, capfd=capfd).log_text()
    assert "The script ran out of memory (limit 128 MB)" in text, text[-3000:]
    assert "[stderr] Killed" not in text, text[-3000:]
