"""Run a command with its stderr on a pseudo-terminal (as in a person's shell) and its stdout piped."""

from __future__ import annotations

import os
import pty
import select
import subprocess
from collections.abc import Mapping, Sequence


def run_on_terminal(command: Sequence[str], env: Mapping[str, str], timeout: float = 120) -> tuple[int, bytes, bytes]:
    """The exit status, the piped stdout and what was drawn on the terminal (stderr)."""
    master, slave = pty.openpty()
    terminal_env = {**env, "TERM": "xterm-256color", "COLUMNS": "100"}
    terminal_env.pop("NO_COLOR", None)
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL, env=terminal_env)
    os.close(slave)
    drawn = b""
    try:
        while select.select([master], [], [], timeout)[0]:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the command ended and closed the terminal
                break
            if not chunk:
                break
            drawn += chunk
        stdout = proc.stdout.read() if proc.stdout else b""
        return proc.wait(timeout=timeout), stdout, drawn
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
