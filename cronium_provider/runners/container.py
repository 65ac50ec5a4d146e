"""Run one script in an isolated Docker container, speaking the runtime-helper file protocol.

The run folder is an anonymous volume at ``/cronium``: files are copied in before the container starts
and the result files copied out after it exits (no bind mount, so a remote Docker daemon works too).
Each stdout and stderr line is handed to a callback as it is printed. The container and its volume are
removed in every outcome. Nothing here knows about Airflow DAGs.
"""

from __future__ import annotations

import io
import tarfile
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cronium_provider.exceptions import ContainerLimitError
from cronium_provider.runners.outcome import LineCallback, LineSplitter, ScriptRun, read_run_results
from cronium_provider.runners.protocol import (
    RESULT_FILES,
    ProtocolError,
    ScriptResults,
    build_run_files,
    run_folder_tar,
    script_command,
    script_environment,
)

RUN_DIR = "/cronium"
RUN_USER = "1000:1000"


@dataclass(frozen=True)
class ContainerLimits:
    """Resource limits; defaults are Cronium's, and nothing may exceed Cronium's caps."""

    cpus: float = 0.5
    memory_mb: int = 512
    pids: int = 100
    network: str = "none"
    tmp_mb: int = 100

    MAX_CPUS = 2.0
    MAX_MEMORY_MB = 2048
    MAX_PIDS = 1000

    def __post_init__(self) -> None:
        problems = []
        if not 0 < self.cpus <= self.MAX_CPUS:
            problems.append(f"cpus {self.cpus} must be above 0 and at most {self.MAX_CPUS}")
        if not 16 <= self.memory_mb <= self.MAX_MEMORY_MB:
            problems.append(f"memory_mb {self.memory_mb} must be between 16 and {self.MAX_MEMORY_MB}")
        if not 10 <= self.pids <= self.MAX_PIDS:
            problems.append(f"pids {self.pids} must be between 10 and {self.MAX_PIDS}")
        if self.network not in ("none", "host", "bridge") and not self.network.startswith("container:"):
            if not self.network.replace("-", "").replace("_", "").isalnum():
                problems.append(f"network {self.network!r} is not a Docker network name")
        if problems:
            raise ContainerLimitError("container limits: " + "; ".join(problems))


@dataclass(frozen=True)
class ScriptJob:
    """Everything one script run needs."""

    language: str
    script: str
    image: str
    input: Any = None
    event: Mapping[str, Any] = field(default_factory=dict)
    variables: Mapping[str, Any] = field(default_factory=dict)
    environment: Mapping[str, str] = field(default_factory=dict)
    limits: ContainerLimits = field(default_factory=ContainerLimits)
    labels: Mapping[str, str] = field(default_factory=dict)


def _file_from_tar(chunks: Iterable[bytes]) -> bytes:
    data = b"".join(chunks)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.next()
        if member is None:
            return b""
        handle = tar.extractfile(member)
        return handle.read() if handle else b""


class _PeakMemory(threading.Thread):
    """Samples the container's memory use from Docker's stats stream; keeps the highest value seen."""

    def __init__(self, client: Any, container_id: str):
        super().__init__(daemon=True, name=f"cronium-stats-{container_id[:12]}")
        self.client = client
        self.container_id = container_id
        self.peak: int | None = None

    def run(self) -> None:
        try:
            for sample in self.client.stats(self.container_id, stream=True, decode=True):
                memory = sample.get("memory_stats") or {}
                value = max(int(memory.get("max_usage") or 0), int(memory.get("usage") or 0))
                if value:
                    self.peak = max(self.peak or 0, value)
        except Exception:  # the stream ends with an error once the container is gone
            return


class ContainerExecutor:
    """Runs :class:`ScriptJob` s through a docker-py ``APIClient`` (for example ``DockerHook().get_conn()``)."""

    def __init__(self, client: Any, on_line: LineCallback | None = None):
        self.client = client
        self.on_line: LineCallback = on_line or (lambda stream, line: None)
        self.container_id: str | None = None
        self._lock = threading.Lock()

    def create(self, job: ScriptJob) -> str:
        limits = job.limits
        environment = {
            **job.environment,
            **script_environment(job.language, RUN_DIR),
            "HOME": "/tmp",
            "TMPDIR": "/tmp",
        }
        host_config = self.client.create_host_config(
            auto_remove=False,
            network_mode=limits.network,
            nano_cpus=int(limits.cpus * 1_000_000_000),
            mem_limit=f"{limits.memory_mb}m",
            memswap_limit=f"{limits.memory_mb}m",
            pids_limit=limits.pids,
            read_only=True,
            tmpfs={"/tmp": f"rw,nosuid,nodev,size={limits.tmp_mb}m,mode=1777"},
            security_opt=["no-new-privileges"],
            cap_drop=["ALL"],
        )
        container = self.client.create_container(
            image=job.image,
            command=script_command(job.language, RUN_DIR),
            environment=environment,
            user=RUN_USER,
            working_dir=RUN_DIR,
            volumes=[RUN_DIR],
            host_config=host_config,
            labels={"org.cronium.run": "true", **job.labels},
            network_disabled=limits.network == "none",
        )
        container_id: str = container["Id"]
        with self._lock:
            self.container_id = container_id
        return container_id

    def run(self, job: ScriptJob) -> ScriptRun:
        """Create, fill, start and wait for the container; always remove it and its run folder."""
        files = build_run_files(job.language, job.script, input=job.input, event=job.event, variables=job.variables)
        container_id = self.create(job)
        try:
            self.client.put_archive(container_id, RUN_DIR, run_folder_tar(files, uid=1000, gid=1000))
            splitter = LineSplitter(self.on_line)
            stream = self.client.attach(container_id, stdout=True, stderr=True, stream=True, logs=True, demux=True)
            started = time.monotonic()
            self.client.start(container_id)
            sampler = _PeakMemory(self.client, container_id)
            sampler.start()
            for out, err in stream:
                if out:
                    splitter.feed("stdout", out)
                if err:
                    splitter.feed("stderr", err)
            splitter.close()
            exit_code = int(self.client.wait(container_id)["StatusCode"])
            duration = time.monotonic() - started
            state = self.client.inspect_container(container_id)["State"]
            results, problem = self._collect(container_id)
            return ScriptRun(
                exit_code=exit_code,
                duration_seconds=duration,
                peak_memory_bytes=sampler.peak,
                oom_killed=bool(state.get("OOMKilled")),
                results=results,
                protocol_error=problem,
                stderr_tail=list(splitter.stderr_tail),
                container_id=container_id,
            )
        finally:
            self.remove()

    def _collect(self, container_id: str) -> tuple[ScriptResults | None, ProtocolError | None]:
        from docker.errors import NotFound

        found: dict[str, bytes] = {}
        for name in RESULT_FILES:
            try:
                chunks, _stat = self.client.get_archive(container_id, f"{RUN_DIR}/{name}")
            except NotFound:
                continue
            found[name] = _file_from_tar(chunks)
        return read_run_results(found)

    def stop(self, timeout: int = 5) -> None:
        """Stop the running container (task killed or timed out); removal follows in ``run``."""
        with self._lock:
            container_id = self.container_id
        if container_id:
            try:
                self.client.stop(container_id, timeout=timeout)
            except Exception:  # already gone
                return

    def remove(self) -> None:
        with self._lock:
            container_id, self.container_id = self.container_id, None
        if container_id:
            try:
                self.client.remove_container(container_id, v=True, force=True)
            except Exception:  # already removed by a concurrent stop/kill
                return
