"""What a remote run reads back is bounded: result files and the stderr tail, against a real sshd.

The server is a real OpenSSH daemon on 127.0.0.61 (tests/support/sshd.py), on this machine; the runs go
through :class:`~cronium_provider.runners.ssh.SSHScriptExecutor` on a real connection, so what a run
leaves on the server (its run folder under /tmp, its processes) is checked directly.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cronium_provider.runners.protocol import VariableChange
from tests.support.sshd import TEST_USER, TestSSHServer, ensure_test_user

pytestmark = [pytest.mark.ssh]

LIMIT = 1_000_000
KEPT = (VariableChange("set", "progress", "half"),)


@pytest.fixture(scope="module")
def server(sshd_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestSSHServer]:
    ensure_test_user()
    work = tmp_path_factory.mktemp("sshd-bounds")
    started = TestSSHServer(sshd_binary, work, address="127.0.0.61", port=2222, user=TEST_USER).start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def client(server: TestSSHServer) -> Iterator[Any]:
    ssh = server.client()
    try:
        yield ssh
    finally:
        ssh.close()


def _leftovers(run_dir: str) -> tuple[bool, str]:
    procs = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return Path(run_dir).exists(), "\n".join(line for line in procs.splitlines() if run_dir in line)


def _nothing_left(run_dir: str) -> None:
    deadline = time.monotonic() + 10
    while any(_leftovers(run_dir)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _leftovers(run_dir) == (False, ""), f"left on the server: {_leftovers(run_dir)}"


def _run(client: Any, script: str) -> tuple[Any, float]:
    from cronium_provider.runners.base import ScriptJob
    from cronium_provider.runners.ssh import SSHScriptExecutor

    started = time.monotonic()
    run = SSHScriptExecutor(client, "app-61", max_result_bytes=LIMIT).run(
        ScriptJob("BASH", "cronium_set_variable progress half\n" + script, input={})
    )
    return run, time.monotonic() - started


_NOT_REGULAR = {
    "directory": ("mkdir output.json && truncate -s 2G output.json/big", "a directory"),
    "symlink-to-passwd": ("ln -s /etc/passwd output.json", "a symbolic link"),
    "symlink-to-huge": ('truncate -s 2G huge && ln -s "$CRONIUM_RUN_DIR/huge" output.json', "a symbolic link"),
    "named-pipe": ("mkfifo output.json", "a special file"),
}


@pytest.mark.parametrize("shape", list(_NOT_REGULAR))
def test_a_remote_result_file_that_is_not_a_regular_file_is_refused_unread(client: Any, shape: str) -> None:
    """``output.json`` made a directory holding a 2 GB sparse file, a symbolic link (to /etc/passwd, or to
    a 2 GB sparse file) or a named pipe: the run's results are refused naming the file and what it is,
    nothing of it is read, the variable set before counts, and the run folder is removed."""
    make, kind = _NOT_REGULAR[shape]
    run, elapsed = _run(client, f'cd "$CRONIUM_RUN_DIR" && {make}')
    assert str(run.protocol_error) == f"output.json: {kind}, not a regular file; the script's result was not read"
    assert run.results is not None and run.results.variable_changes == KEPT
    assert elapsed < 20, f"{elapsed:.1f} s: the file was read"
    _nothing_left(run.container_id.partition(":")[2])


# Grows output.json to 2 GB (sparse) as soon as something has looked at it and closed it: what reads its
# size on the server first sees a few bytes, what reads it next sees 2 GB. The watch ends with the folder.
_GROW_ONCE_LOOKED_AT = r"""
printf '"small"' > "$CRONIUM_RUN_DIR/output.json"
# the grower drops the run's environment and folder, so the end-of-run reaping does not find it
(cd / && exec setsid env -i /usr/bin/python3 - "$CRONIUM_RUN_DIR/output.json" >/dev/null 2>&1 <<'PY') &
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
watch = libc.inotify_init()
libc.inotify_add_watch(watch, sys.argv[1].encode(), 0x10)  # IN_CLOSE_NOWRITE
open(sys.argv[1] + ".watching", "w").close()
os.read(watch, 4096)
os.truncate(sys.argv[1], 2 * 1024**3)
PY
while [ ! -e "$CRONIUM_RUN_DIR/output.json.watching" ]; do sleep 0.05; done
"""


def test_a_remote_result_file_growing_while_it_is_read_back_is_cut_at_the_limit(client: Any) -> None:
    """``output.json`` holds a few bytes when its size is checked and 2 GB when it is read: the worker
    reads no more than the limit of it, the run's results are refused naming the limit, the variable set
    before counts, and nothing is left on the server."""
    run, elapsed = _run(client, _GROW_ONCE_LOOKED_AT)
    assert run.protocol_error is not None, run.results
    assert f"above the limit of {LIMIT} bytes for a result file" in str(run.protocol_error)
    assert str(run.protocol_error).startswith("output.json: ")
    assert run.results is not None and run.results.variable_changes == KEPT
    assert elapsed < 20, f"{elapsed:.1f} s: the file was read"
    _nothing_left(run.container_id.partition(":")[2])


def test_a_huge_sparse_stderr_file_of_a_detached_run_is_read_only_at_its_end(client: Any) -> None:
    """A detached run whose stderr file is made 2 GB (sparse, no newline) before its last line: collecting
    it reads only the end of that file (its last lines, at most 64 KB) and takes no time; the variable set
    before counts and the run folder is removed."""
    from cronium_provider.runners.base import ScriptJob
    from cronium_provider.runners.outcome import STDERR_TAIL_BYTES
    from cronium_provider.runners.ssh import DETACHED_EXIT, SSHScriptExecutor

    script = (
        "cronium_set_variable progress half\n"
        'truncate -s 2G "$CRONIUM_RUN_DIR/.cronium-stderr"\n'
        "printf 'last words\\n' >> \"$CRONIUM_RUN_DIR/.cronium-stderr\"\nexit 3\n"
    )
    executor = SSHScriptExecutor(client, "app-61", max_result_bytes=LIMIT)
    detached = executor.start_detached(ScriptJob("BASH", script, input={}))
    deadline = time.monotonic() + 20
    while not Path(detached.run_dir, DETACHED_EXIT).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    started = time.monotonic()
    run = SSHScriptExecutor(client, "app-61", max_result_bytes=LIMIT).finish_detached(detached, 3, 1.0)
    elapsed = time.monotonic() - started
    assert elapsed < 5, f"{elapsed:.1f} s: the stderr file was read whole"
    assert run.stderr_tail[-1].endswith("last words")
    assert sum(len(line) + 1 for line in run.stderr_tail) <= STDERR_TAIL_BYTES
    assert run.results is not None and run.results.variable_changes == KEPT
    _nothing_left(detached.run_dir)
