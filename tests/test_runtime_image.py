"""What the runtime image carries for a script, as Cronium's runtime images do: curl, jq, tzdata and CA
certificates (apps/runtime/container-images/bash/Dockerfile:5-12), Python with requests and aiohttp
(python/Dockerfile:17-20, python/requirements.txt:2-3), Node.js with axios (nodejs/Dockerfile:16), and a
writable home and working folder (bash/Dockerfile:19-20, 61, 69).

Each test runs a real script event in a real container through Airflow (``dag.test()``); the scripts that use
the network reach a real HTTP server on the host's loopback through ``[cronium] script_network = host``.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.support.airflow_run import DagRunResult, one_task_dag, run_dag
from tests.support.http_receiver import HttpReceiver, json_answer

pytestmark = [pytest.mark.docker, pytest.mark.airflow]

ITEMS = {"items": [{"name": "alpha", "size": 2}, {"name": "beta", "size": 3}]}


def _our_containers(client: Any) -> list[str]:
    found = client.api.containers(all=True, filters={"label": "org.cronium.run=true"})
    return [c["Id"] for c in found if str((c.get("Labels") or {}).get("org.cronium.dag_id", "")).startswith("image_")]


@pytest.fixture(autouse=True)
def nothing_left_behind(docker_client: Any, airflow_db: Any) -> Any:
    yield
    deadline = time.monotonic() + 10
    while _our_containers(docker_client) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _our_containers(docker_client) == [], "a script container was left behind"


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A loopback HTTP server the scripts reach: ``GET /items`` answers JSON, ``POST /echo`` echoes the body;
    every script container gets the host's network (the operators read ``[cronium]`` when the DAG is parsed)."""
    monkeypatch.setenv("AIRFLOW__CRONIUM__SCRIPT_NETWORK", "host")
    server = HttpReceiver(
        routes={
            "GET /items": lambda request: json_answer(ITEMS),
            "POST /echo": lambda request: json_answer({"echo": request.json()}),
        }
    ).start()
    yield server
    server.stop()


def run_script(capfd: Any, language: str, script: str, **operator_args: Any) -> DagRunResult:
    dag, _ = one_task_dag(
        "cronium_provider.operators.container_script.CroniumScriptOperator",
        f"image_{language.lower()}",
        language=language,
        script=script,
        **operator_args,
    )
    return run_dag(dag, capfd=capfd)


def test_bash_script_fetches_json_with_curl_and_reads_it_with_jq(receiver: HttpReceiver, capfd: Any) -> None:
    """Cronium's Bash image installs ``curl`` and ``jq`` (apps/runtime/container-images/bash/Dockerfile:7-8)."""
    script = f"""
    names=$(curl -fsS {receiver.url}/items | jq -c '[.items[] | select(.size > 2) | .name]')
    cronium_output "$names"
    """
    result = run_script(capfd, "BASH", script)
    assert result.state == "success", result.log_text()[-3000:]
    assert result.xcom("run") == ["beta"]
    assert [request.path for request in receiver.requests] == ["/items"]


def test_python_script_uses_requests_and_aiohttp(receiver: HttpReceiver, capfd: Any) -> None:
    """Cronium's Python image installs ``requests`` and ``aiohttp`` (apps/runtime/container-images/python/
    requirements.txt:2-3, installed by python/Dockerfile:18-20)."""
    script = f"""
import asyncio
import aiohttp
import requests

items = requests.get("{receiver.url}/items", timeout=10).json()["items"]

async def post():
    async with aiohttp.ClientSession() as session:
        async with session.post("{receiver.url}/echo", json={{"count": len(items)}}) as answer:
            return await answer.json()

cronium.output({{"names": [item["name"] for item in items], "echo": asyncio.run(post())}})
"""
    result = run_script(capfd, "PYTHON", script)
    assert result.state == "success", result.log_text()[-3000:]
    assert result.xcom("run") == {"names": ["alpha", "beta"], "echo": {"echo": {"count": 2}}}
    assert [(request.method, request.path) for request in receiver.requests] == [("GET", "/items"), ("POST", "/echo")]


def test_nodejs_script_uses_axios(receiver: HttpReceiver, capfd: Any) -> None:
    """Cronium's Node.js image installs ``axios`` globally, on its NODE_PATH (apps/runtime/container-images/
    nodejs/Dockerfile:16, 56); here Debian's node-axios, found on Node's default module path."""
    script = f"""
const axios = require("axios");
(async () => {{
  const items = (await axios.get("{receiver.url}/items")).data.items;
  const echo = (await axios.post("{receiver.url}/echo", {{total: items.reduce((s, i) => s + i.size, 0)}})).data;
  cronium.output({{names: items.map((i) => i.name), echo}});
}})();
"""
    result = run_script(capfd, "NODEJS", script)
    assert result.state == "success", result.log_text()[-3000:]
    assert result.xcom("run") == {"names": ["alpha", "beta"], "echo": {"echo": {"total": 5}}}
    assert [(request.method, request.path) for request in receiver.requests] == [("GET", "/items"), ("POST", "/echo")]


def test_berlin_time_with_tzdata(capfd: Any) -> None:
    """Cronium's Bash image installs ``tzdata`` (apps/runtime/container-images/bash/Dockerfile:12): a script
    that sets ``TZ`` gets that zone's time, summer time included (without the zone files it is UTC)."""
    script = """
    winter=$(TZ=Europe/Berlin date -d @0 '+%H:%M %Z')
    summer=$(TZ=Europe/Berlin date -d @1751371200 '+%H:%M %Z')
    cronium_output "{\\"winter\\": \\"$winter\\", \\"summer\\": \\"$summer\\", \\"default\\": \\"$(date +%Z)\\"}"
    """
    result = run_script(capfd, "BASH", script)
    assert result.state == "success", result.log_text()[-3000:]
    assert result.xcom("run") == {"winter": "01:00 CET", "summer": "14:00 CEST", "default": "UTC"}


@pytest.mark.parametrize("deferrable", [False, True], ids=["normal", "deferred"])
def test_script_writes_into_its_home_and_working_folder(deferrable: bool, capfd: Any) -> None:
    """Cronium's images give the script user a home and a working folder it owns (apps/runtime/
    container-images/bash/Dockerfile:19-20, 61, 69); here the root stays read-only, ``$HOME`` is the
    size-limited ``/tmp`` and the working folder the run folder."""
    script = """
    mkdir -p "$HOME/.config/tool" && echo home > "$HOME/.config/tool/settings"
    echo work > notes.txt && mkdir -p cache && echo cached > cache/entry
    if touch /home/should-not-exist 2>/dev/null; then root=writable; else root=read-only; fi
    cronium_output "{\\"home\\": \\"$(cat ~/.config/tool/settings)\\", \\"work\\": \\"$(cat notes.txt)\\",
      \\"cache\\": \\"$(cat "$PWD/cache/entry")\\", \\"root\\": \\"$root\\"}"
    """
    result = run_script(capfd, "BASH", script, deferrable=deferrable)
    assert result.state == "success", result.log_text()[-3000:]
    assert result.xcom("run") == {"home": "home", "work": "work", "cache": "cached", "root": "read-only"}
