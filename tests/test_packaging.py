"""The provider as ``pip install airflow-provider-cronium`` gives it: a wheel built from a copy of the tree, installed
into a fresh virtual environment, used from a folder outside the clone.

The fresh environment gets the dependencies through a ``.pth`` line naming the test environment's site-packages.
Python does not process the ``.pth`` files of a folder a ``.pth`` line adds, so the editable install of the clone
there stays inactive: ``cronium_provider`` comes from the wheel, and that is checked first.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import uuid
from pathlib import Path

import pytest

from tests.conftest import REPO, missing

TEMPLATES = REPO / "cronium_provider" / "templates"
EVENT = "kind: event\nid: 42\nname: Hello\ntype: BASH\nstatus: ACTIVE\ntriggerType: MANUAL\ncontent: echo hi\n"


class Installed:
    """The fresh virtual environment with the wheel installed, and a fresh AIRFLOW_HOME."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.venv = root / "venv"
        self.home = root / "home"
        self.records = root / "records"
        self.cwd = root / "elsewhere"

    def env(self, **extra: str) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if k in ("HOME", "LANG", "TMPDIR", "DOCKER_HOST")}
        path = f"{self.venv / 'bin'}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        return {
            **keep,
            "PATH": path,
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "CRONIUM_RECORDS_DIR": str(self.records),
            **extra,
        }

    def run(self, *command: str, timeout: float = 300, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(command), cwd=self.cwd, env=self.env(**extra), capture_output=True, text=True, timeout=timeout
        )

    def python(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return self.run(str(self.venv / "bin" / "python"), *args, timeout=timeout)

    def cli(self, *args: str, timeout: float = 300, **extra: str) -> subprocess.CompletedProcess[str]:
        return self.run(str(self.venv / "bin" / "cronium-airflow"), *args, timeout=timeout, **extra)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("pip-install")
    src = root / "src"
    ignore = shutil.ignore_patterns(
        ".git", ".venv", "airflow_home", "build", "dist", "*.egg-info", "__pycache__", ".*_cache"
    )
    shutil.copytree(REPO, src, symlinks=True, ignore=ignore)
    wheels = root / "wheels"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(src)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        missing("a wheel build (pip wheel, setuptools from the package index)", proc.stderr[-2000:])
    (wheel,) = wheels.glob("airflow_provider_cronium-*.whl")
    it = Installed(root)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(it.venv)], check=True, timeout=120)
    pip = [sys.executable, "-m", "pip", "--python", str(it.venv / "bin" / "python")]
    subprocess.run([*pip, "install", "-q", "--no-deps", str(wheel)], check=True, capture_output=True, timeout=300)
    site = it.venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    (site / "cronium-test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    it.cwd.mkdir()
    it.records.mkdir()
    shutil.rmtree(src)
    return it


def test_pip_install_then_dag_file_gives_the_dags_to_airflow(installed: Installed) -> None:
    """The README's pip path (its five minutes): `cronium-airflow dag-file` (default: Airflow's dags folder),
    then Airflow lists the event's DAG from a folder outside the clone."""
    proc = installed.python(
        "-c", "import cronium_provider, json, sys; print(json.dumps([cronium_provider.__file__, sys.path]))"
    )
    assert proc.returncode == 0, proc.stderr
    module_file, path = json.loads(proc.stdout)
    assert Path(module_file).is_relative_to(installed.venv), module_file
    site = str(installed.venv)
    holding = [p for p in path if p and not p.startswith(site) and (Path(p) / "cronium_provider").exists()]
    assert holding == [], f"a clone's cronium_provider is on sys.path: {holding}"
    assert str(REPO) not in path

    (installed.records / "hello.yaml").write_text(EVENT)
    proc = installed.cli("dag-file")
    dag_file = installed.home / "dags" / "cronium_dags.py"
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"wrote {dag_file}" in proc.stdout
    assert dag_file.read_text() == (TEMPLATES / "cronium_dags.py").read_text()

    airflow = (str(installed.venv / "bin" / "python"), "-m", "airflow")
    for command in (("db", "migrate"), ("dags", "reserialize")):
        proc = installed.run(*airflow, *command)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    proc = installed.run(*airflow, "dags", "list", "-o", "json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    listed = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("[")))
    assert [(d["dag_id"], d["fileloc"]) for d in listed] == [("cronium_event_42", str(dag_file))]


VIEW_CHECK = """
from importlib.metadata import entry_points
(ep,) = [e for e in entry_points(group="airflow.plugins") if e.name == "cronium_view"]
plugin = ep.load()
import json
from cronium_provider.view.app import _templates
print(plugin.name, plugin.fastapi_apps[0]["url_prefix"], plugin.external_views[0]["href"])
print(json.dumps(sorted(_templates.list_templates())))
"""


def test_the_wheel_registers_the_view_plugin_with_its_templates(installed: Installed) -> None:
    """The web UI's Cronium view: its plugin is an ``airflow.plugins`` entry point of the installed wheel,
    and the page templates come with it."""
    proc = installed.python("-c", VIEW_CHECK)
    assert proc.returncode == 0, proc.stderr[-3000:]
    first, second = proc.stdout.splitlines()[-2:]
    assert first == "cronium_view /cronium-view /cronium-view/"
    assert {"records.html", "left_out.html", "findings.html", "base.html"} <= set(json.loads(second))


def test_the_runtime_image_context_comes_out_of_the_wheel(installed: Installed) -> None:
    out = installed.root / "context"
    proc = installed.cli("runtime-image", "context", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"wrote {out / 'Dockerfile'}" in proc.stdout
    for name in ("Dockerfile", "build-runtime-image.sh"):
        assert (out / name).read_bytes() == (TEMPLATES / "runtime_image" / name).read_bytes()
    assert "FROM debian:bookworm-slim" in (out / "Dockerfile").read_text()
    again = installed.cli("runtime-image", "context", str(out))
    assert again.returncode == 0, again.stdout
    (out / "Dockerfile").write_text("FROM scratch\n")
    clash = installed.cli("runtime-image", "context", str(out))
    assert clash.returncode == 1 and f"{out / 'Dockerfile'} exists and differs" in clash.stdout
    assert (out / "Dockerfile").read_text() == "FROM scratch\n"


def test_the_dockerfile_and_the_offline_build_install_the_same_packages() -> None:
    """The runtime image is built from the Dockerfile or, offline, by debootstrap: both carry the same
    Debian packages (Cronium's runtime images' tools: curl, jq, tzdata, requests, aiohttp, axios)."""
    context = TEMPLATES / "runtime_image"
    dockerfile = (context / "Dockerfile").read_text()
    install = dockerfile.split("--no-install-recommends", 1)[1].split(";", 1)[0]
    from_dockerfile = set(install.replace("\\", " ").split())
    script = (context / "build-runtime-image.sh").read_text()
    listed = re.search(r'^INCLUDE_PKGS="([^"]*)"', script, re.MULTILINE)
    assert listed is not None, "build-runtime-image.sh has no INCLUDE_PKGS line"
    offline = set(listed.group(1).split(","))
    assert from_dockerfile == offline
    assert {"curl", "jq", "tzdata", "ca-certificates", "python3-requests", "python3-aiohttp", "node-axios"} <= offline


@pytest.mark.docker
@pytest.mark.slow
def test_runtime_image_build_from_the_wheel_builds_a_working_image(installed: Installed, docker_client) -> None:
    """The packaged build script and context, offline path (debootstrap, about 40 s here): a new image whose
    Python runs with no network. A second build of the name reuses it."""
    if os.geteuid() != 0 or shutil.which("debootstrap") is None:
        missing("the offline image build", "needs root and debootstrap (`make test` installs it)")
    image = f"cronium-runtime-pkgtest-{uuid.uuid4().hex[:8]}:1"
    try:
        proc = installed.cli("runtime-image", "build", image, timeout=900, CRONIUM_RUNTIME_OFFLINE="1")
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "/site-packages/cronium_provider/templates/runtime_image/build-runtime-image.sh" in proc.stdout
        assert "offline build finished" in proc.stdout
        assert "smoke check ok" in proc.stdout and "curl, jq, tzdata, CA certificates, requests" in proc.stdout
        run = subprocess.run(
            ["docker", "run", "--rm", "--network", "none", image, "python3", "--version"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0 and run.stdout.startswith("Python 3"), run.stdout + run.stderr
        again = installed.cli("runtime-image", "build", image, timeout=300)
        assert again.returncode == 0 and f"image {image} already exists; reusing it" in again.stdout
    finally:
        subprocess.run(["docker", "rmi", "-f", image], capture_output=True, timeout=120)
