"""The bounded run folder of a deferred container run: a size-limited tmpfs volume kept mounted by a holder.

A run followed to its end has its run folder as its own container's tmpfs mount, its files sent in and its
results sent out by the container's wrapper (:mod:`cronium_provider.runners.container`). A deferred run's
results must outlive the script's exit until the resumed task, perhaps on another worker, reads them;
this module gives it that run folder.

A script's run folder (``/cronium``) holds its helpers, input and result files, and whatever the script
writes there. On an ordinary volume it sits on the Docker host's disk without bound. Here it is a named
volume of the ``local`` driver with ``type=tmpfs`` and a ``size``: a script that writes past the size gets
``No space left on device`` and nothing reaches the host's disk (the pages are memory, charged to the
memory limit of the container that writes them).

Docker mounts a volume when a container that uses it starts and unmounts it (a tmpfs then loses its
files) when the last such container stops; copying files into a created container, or out of an exited
one, mounts it only for the copy. So a *holder*, a tiny container that only sleeps with the volume
mounted, is started first and removed last: the run folder's files are copied in before the script's
container starts and read after it exits, as with an ordinary volume. The holder has no network, no
capability, a read-only root, 16 MB of memory and a handful of processes.

Volume and holder carry the run's labels (host, task process), so that the orphan cleanup of
:mod:`cronium_provider.runners.container` removes them with the run's container when the task process is
gone.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_RUN_FOLDER_MB = 100  # as the container's /tmp
MAX_RUN_FOLDER_MB = 1024
RUN_FOLDER_USER = (1000, 1000)
HOLDER_COMMAND = ["sleep", "infinity"]


@dataclass
class RunFolder:
    """A run folder volume and its holder container (ids), to be removed with :meth:`remove`."""

    client: Any
    volume: str
    size_mb: int
    holder: str | None = None

    def start_holder(self, image: str, mount_point: str, labels: Mapping[str, str]) -> None:
        """Create and start the holder (about 0.2 s: run it while the script's container is created)."""
        uid, gid = RUN_FOLDER_USER
        host_config = self.client.create_host_config(
            binds={self.volume: {"bind": mount_point, "mode": "rw"}},
            network_mode="none",
            mem_limit="16m",
            memswap_limit="16m",
            pids_limit=10,
            nano_cpus=100_000_000,
            read_only=True,
            security_opt=["no-new-privileges"],
            cap_drop=["ALL"],
        )
        holder = self.client.create_container(
            image=image,
            command=HOLDER_COMMAND,
            user=f"{uid}:{gid}",
            host_config=host_config,
            labels=dict(labels),
            network_disabled=True,
        )
        self.holder = str(holder["Id"])
        self.client.start(self.holder)

    def remove(self, container: str | None = None) -> None:
        """Remove ``container`` (the script's, using the folder) and the holder, at once, then the volume;
        never raises (a missing one was removed meanwhile)."""
        holder, self.holder = self.holder, None
        doomed = [c for c in (container, holder) if c]

        def remove_container(container_id: str) -> None:
            with contextlib.suppress(Exception):
                self.client.remove_container(container_id, v=True, force=True)

        if len(doomed) == 2:
            other = threading.Thread(target=remove_container, args=(doomed[1],), daemon=True)
            other.start()
            remove_container(doomed[0])
            other.join()
        elif doomed:
            remove_container(doomed[0])
        with contextlib.suppress(Exception):
            self.client.remove_volume(self.volume, force=True)

    def usage_bytes(self) -> int | None:
        """How full the run folder is, read through the holder (``du``); None when it cannot be read."""
        if not self.holder:
            return None
        try:
            exec_id = self.client.exec_create(self.holder, ["du", "-sk", "/cronium"], user="1000:1000")
            out = self.client.exec_start(exec_id, demux=False)
            text = out.decode() if isinstance(out, bytes) else str(out)
            return int(text.split()[0]) * 1024
        except Exception:
            return None


def create_run_folder(client: Any, size_mb: int, labels: Mapping[str, str]) -> RunFolder:
    """Create the run folder volume (its holder is started with :meth:`RunFolder.start_holder`)."""
    uid, gid = RUN_FOLDER_USER
    name = f"cronium-run-{uuid.uuid4().hex}"
    client.create_volume(
        name=name,
        driver="local",
        driver_opts={
            "type": "tmpfs",
            "device": "tmpfs",
            "o": f"size={size_mb}m,uid={uid},gid={gid},mode=0700,nosuid,nodev",
        },
        labels=dict(labels),
    )
    return RunFolder(client, name, size_mb)


def remove_orphan_volumes(client: Any, is_orphan: Any, label: str) -> list[str]:
    """Remove run folder volumes labelled ``label=true`` whose owner ``is_orphan(labels)`` says is gone."""
    removed: list[str] = []
    try:
        volumes = (client.volumes(filters={"label": [f"{label}=true"]}) or {}).get("Volumes") or []
    except Exception:
        return removed
    for volume in volumes:
        if not is_orphan(volume.get("Labels") or {}):
            continue
        with contextlib.suppress(Exception):  # in use by a live run, or removed by another worker
            client.remove_volume(volume["Name"], force=True)
            removed.append(str(volume["Name"]))
    return removed
