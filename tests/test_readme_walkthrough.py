"""The README and the docs, followed as a new user would: their commands, taken from the pages themselves, run in
order on a fresh Airflow home, each checked against what the page says next to it.

A page edit that breaks a command, or adds one nobody checks, fails this test: every ``bash`` block of the
README and of docs/*.md belongs to a walked section or to a section named in ``NOT_WALKED`` with the reason,
and every command of a walked section has a check below. A command told twice (the README's five minutes, then
the getting-started page) is walked once, where it comes first.

The user's Airflow exists before the README starts (``airflow db migrate`` on a new home); the commands run
with the provider of this checkout installed (the wheel's own install: ``test_packaging.py``), from a
working directory outside the clone, against a loopback stand-in for the Cronium API.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from tests.test_api_sync import TOKEN, FakeCronium, _reset_cronium, cronium_server  # noqa: F401 - fixture

README = REPO / "README.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]

# Sections whose commands are walked, in this order: (page, heading).
WALKED = (
    ("README.md", "Five minutes in your own Airflow"),
    ("docs/getting-started.md", "Using it in your own Airflow"),
    ("docs/getting-started.md", "The DAG file"),
    ("docs/cli.md", "The CLI"),
    ("docs/remote-events.md", "Remote events over SSH"),
    ("docs/operations.md", "Parse time and sharding"),
)
# Commands for records read in shards: walked last, after the person has split the folder (the other
# commands are for a folder read whole), in this order of their sections.
SHARDED = re.compile(r"--shard|/records/\{")
SHARDED_ORDER = (("docs/operations.md", "Parse time and sharding"), ("docs/cli.md", "The CLI"))
# Sections with commands that are not walked here, and why.
NOT_WALKED = {
    ("README.md", "The two commands"): "make demo and make test: tests/test_demo_and_ui.py runs the demo, CI runs "
    "make test",
    ("docs/getting-started.md", "The two commands"): "the README's two commands, told again",
    ("docs/records.md", "Workflows"): "the REST API call needs a running api-server: tests/test_demo_and_ui.py "
    "triggers through it",
    ("docs/webhooks.md", "Webhooks"): "needs a running api-server: tests/test_webhook.py calls the route through one",
    ("docs/demo.md", "The demo"): "make demo and make demo-stop: tests/test_demo_and_ui.py runs scripts/demo.sh and "
    "scripts/demo-stop.sh",
    ("docs/demo.md", "The examples"): "triggers the demo's DAGs in the demo's own Airflow: "
    "tests/test_demo_and_ui.py::test_every_example_dag_succeeds_and_delivers triggers each through the REST API",
}
# Commands of walked sections that are not run, and why (matched against the command's text).
NOT_RUN = {
    "pip install airflow-provider-cronium": "the walk runs the installed checkout; the check below asserts the "
    "distribution is installed, and test_packaging.py installs the built wheel into a fresh virtualenv",
    "/api/trpc/workflows.download": "needs a signed-in Cronium web app; test_api_sync.py loads the file it writes",
}

Section = tuple[str, str]  # (page, heading)


@dataclass
class Command:
    section: Section
    text: str  # as the page writes it, continuation lines joined
    says: str  # the page's comment beside it, if any
    block: int  # which bash block of the section


def page_commands(page: Path) -> tuple[list[Command], dict[Section, int]]:
    """Every command of every ``bash`` block of a page, with its section; and the number of blocks per section.
    Other fenced blocks are skipped whole (a ``#`` line in them is no heading)."""
    name = str(page.relative_to(REPO))
    section: Section = (name, "")
    commands: list[Command] = []
    blocks: dict[Section, int] = {}
    lines = page.read_text().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        heading = re.match(r"^#{1,3} (.+)$", line)
        if heading:
            section = (name, heading.group(1).strip())
        if line.strip().startswith("```") and line.strip() != "```bash":
            i += 1
            while lines[i].strip() != "```":
                i += 1
        elif line.strip() == "```bash":
            blocks[section] = blocks.get(section, 0) + 1
            body: list[str] = []
            i += 1
            while lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            joined: list[str] = []
            for raw in body:
                if joined and joined[-1].endswith("\\"):
                    joined[-1] = joined[-1][:-1].rstrip() + " " + raw.strip()
                else:
                    joined.append(raw)
            for cmd in joined:
                code, _, says = (
                    re.split(r"(\s{2,}#\s*)", cmd, maxsplit=1) if re.search(r"\s{2,}#", cmd) else (cmd, "", "")
                )
                if code.strip():
                    commands.append(Command(section, code.strip(), says.strip(), blocks[section]))
        i += 1
    return commands, blocks


def all_commands() -> tuple[list[Command], dict[Section, int]]:
    commands: list[Command] = []
    blocks: dict[Section, int] = {}
    for page in PAGES:
        found, counted = page_commands(page)
        commands += found
        blocks.update(counted)
    return commands, blocks


def walk_order(commands: list[Command]) -> list[Command]:
    """The walked sections' commands in WALKED's order (within a section, the page's), the sharded setup last;
    a command whose text came earlier is not walked again."""
    order = {id(c): n for n, c in enumerate(commands)}
    walked = sorted(
        (c for c in commands if c.section in WALKED),
        key=lambda c: (
            (1, SHARDED_ORDER.index(c.section), order[id(c)])
            if SHARDED.search(c.text)
            else (0, WALKED.index(c.section), order[id(c)])
        ),
    )
    seen: set[str] = set()
    once = []
    for cmd in walked:
        if cmd.text not in seen:
            seen.add(cmd.text)
            once.append(cmd)
    return once


@dataclass
class Walk:
    root: Path
    env_file: Path
    api: str
    records: Path
    env: dict[str, str]
    outputs: list[tuple[str, subprocess.CompletedProcess[str]]] = field(default_factory=list)

    @property
    def home(self) -> Path:
        return self.root / "airflow"

    @property
    def dags(self) -> Path:
        return self.home / "dags"

    def local(self, text: str) -> str:
        """The pages' placeholders made real: their folders under this walk's root, their Cronium on loopback."""
        text = text.replace("/srv/", f"{self.root}/srv/").replace("/secure/", f"{self.root}/secure/")
        return text.replace("https://cronium.example.com", self.api)

    def sh(self, script: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """One command in bash with the environment the earlier commands left (their ``export``s)."""
        env = shlex.quote(str(self.env_file))
        wrapped = f"source {env}\n{script}\nrc=$?\nexport -p > {env}\nexit $rc\n"
        return subprocess.run(
            ["bash", "-c", wrapped],
            cwd=cwd or self.records.parent,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    def python(self, code: str) -> Any:
        proc = self.sh(f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def connection(self, conn_id: str) -> dict[str, Any]:
        proc = self.sh(f"airflow connections get {conn_id} -o json")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        found: list[dict[str, Any]] = json_out(proc)
        return found[0]

    def dag_ids(self) -> set[str]:
        proc = self.sh("cronium-airflow plan --json " + shlex.quote(str(self.records)))
        return {dag["dag_id"] for dag in json.loads(proc.stdout)["dags"]}


# ---------------------------------------------------------------------------------------------------------
# What each command must do: (pattern of the command, prepare, check). ``prepare`` is what the page tells
# the person to do by hand before it (write a key file, edit a record); ``check`` asserts what the page
# says beside it.

Check = Callable[[Walk, Command, subprocess.CompletedProcess[str]], None]
Prepare = Callable[[Walk], None]


def json_out(proc: subprocess.CompletedProcess[str]) -> Any:
    """An ``airflow ... -o json`` answer (Airflow may print a warning line before it)."""
    lines = proc.stdout.splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith(("[", "{")))
    return json.loads("\n".join(lines[start:]))


def ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, proc.stdout + proc.stderr


def check_installed(walk: Walk, cmd: Command, proc: subprocess.CompletedProcess[str]) -> None:
    version = walk.python(
        "import importlib.metadata, json; print(json.dumps(importlib.metadata.version('airflow-provider-cronium')))"
    )
    assert version


def check_provider_listed(walk: Walk, cmd: Command, proc: subprocess.CompletedProcess[str]) -> None:
    ok(proc)
    assert "airflow-provider-cronium" in proc.stdout


def check_connection_added(walk: Walk, cmd: Command, proc: subprocess.CompletedProcess[str]) -> None:
    ok(proc)
    conn = walk.connection("cronium_default")
    assert conn["conn_type"] == "cronium" and conn["host"] == walk.api, conn


def check_dag_file_written(walk: Walk, cmd: Command, proc: subprocess.CompletedProcess[str]) -> None:
    ok(proc)  # "cronium_dags.py into [core] dags_folder"
    files = sorted(p.name for p in walk.dags.glob("*.py"))
    assert files == ["cronium_dags.py"], files
    assert "CRONIUM_SHARD = None" in (walk.dags / "cronium_dags.py").read_text()


def check_image_built(walk: Walk, cmd: Command, proc: subprocess.CompletedProcess[str]) -> None:
    ok(proc)  # "builds the image scripts run in" (here it exists already, built by make test: reused)
    ran = walk.sh("docker run --rm --network none cronium-runtime:2 bash -c 'id -u; python3 --version; node --version'")
    ok(ran)
    uid, python, node = ran.stdout.split()[0], ran.stdout.split()[1], ran.stdout.split()[-1]
    assert (uid, python, node[0]) == ("1000", "Python", "v"), ran.stdout


def split_into_shards(walk: Walk) -> None:
    """What the page tells the person to do by hand: the records move into the shards' sub-folders (the
    synced file too: it is synced again into its shard below)."""
    (walk.records / "billing").mkdir(parents=True, exist_ok=True)
    (walk.records / "events.json").rename(walk.records / "billing" / "events.json")
    (walk.records / "cronium-api" / "records.json").unlink()


def check_shard_folders(walk: Walk, cmd: Command, proc: subprocess.CompletedProcess[str]) -> None:
    ok(proc)
    assert (walk.records / "billing").is_dir() and (walk.records / "ops").is_dir()


def check_shard_files(walk: Walk, cmd: Command, proc: subprocess.CompletedProcess[str]) -> None:
    ok(proc)  # "cronium_dags_billing.py, cronium_dags_ops.py": and the whole-folder file is gone
    files = sorted(p.name for p in walk.dags.glob("*.py"))
    assert files == ["cronium_dags_billing.py", "cronium_dags_ops.py"], (files, proc.stdout)
    ok(walk.sh("airflow dags reserialize"))
    errors = walk.sh("airflow dags list-import-errors -o json")
    ok(errors)
    assert json_out(errors) == [], errors.stdout
    listed = walk.sh("airflow dags list -o json")
    ok(listed)
    files_of = {d["dag_id"]: d["fileloc"] for d in json_out(listed) if d["dag_id"].startswith("cronium_")}
    assert files_of == {
        "cronium_event_12": files_of["cronium_event_12"],
        "cronium_event_13": files_of["cronium_event_12"],
    }
    assert files_of["cronium_event_12"].endswith("cronium_dags_billing.py"), files_of


def check_synced_into_shard(walk: Walk, cmd: Command, proc: subprocess.CompletedProcess[str]) -> None:
    ok(proc)  # "records read in shards"
    written = json.loads((walk.records / "billing" / "cronium-api" / "records.json").read_text())
    assert sorted(e["id"] for e in written["events"]) == [1, 2, 3], written
    assert not (walk.records / "cronium-api" / "records.json").exists()
    planned = walk.sh("cronium-airflow plan --json " + shlex.quote(str(walk.records / "billing")))
    dags = {dag["dag_id"] for dag in json.loads(planned.stdout)["dags"]}
    assert {"cronium_event_1", "cronium_event_12"} <= dags, dags


def check_records_dir(walk: Walk, cmd: Command, proc: subprocess.CompletedProcess[str]) -> None:
    ok(proc)
    if cmd.says:  # "what every Airflow process reads: /srv/cronium/records"
        assert proc.stdout.strip() == walk.local(cmd.says.rsplit(": ", 1)[-1]), proc.stdout


def check_ok(walk: Walk, cmd: Command, proc: subprocess.CompletedProcess[str]) -> None:
    ok(proc)


def check_dags_listed(walk: Walk, cmd: Command, proc: subprocess.CompletedProcess[str]) -> None:
    ok(proc)  # "one DAG per event and workflow"
    listed = set(re.findall(r"\bcronium_(?:event|workflow)_\d+\b", proc.stdout))
    assert listed == walk.dag_ids() and listed, (listed, proc.stdout)


def check_triggered(walk: Walk, cmd: Command, proc: subprocess.CompletedProcess[str]) -> None:
    ok(proc)  # "a queued run; its conf is cronium.input()"
    dag_id = shlex.split(cmd.text)[3]
    conf = json.loads(shlex.split(cmd.text)[5])
    runs = walk.python(
        "import json\n"
        "from airflow.models import DagRun\n"
        "from airflow.utils.session import create_session\n"
        "with create_session() as s:\n"
        f"    runs = s.query(DagRun).filter(DagRun.dag_id == {dag_id!r}).all()\n"
        "    print(json.dumps([[r.state, r.conf] for r in runs]))"
    )
    assert runs == [["queued", conf]], runs


def check_validate(walk: Walk, cmd: Command, proc: subprocess.CompletedProcess[str]) -> None:
    ok(proc)  # "exit 0 when every record is valid"
    if "--json" in cmd.text:
        assert json.loads(proc.stdout)["ok"] is True
    else:
        assert proc.stdout.startswith("OK: "), proc.stdout


def check_plan(walk: Walk, cmd: Command, proc: subprocess.CompletedProcess[str]) -> None:
    ok(proc)  # "the DAGs the records build: ids, schedules, tasks, edges, rules"
    plan = json.loads(proc.stdout)
    assert {dag["dag_id"] for dag in plan["dags"]} == walk.dag_ids()
    assert all(dag["tasks"] for dag in plan["dags"])


def pause_event_12(walk: Walk) -> None:
    """The person edits a record (event 12 is PAUSED in Cronium now), and its DAG was paused in Airflow, as
    earlier versions of the provider paused it for that status."""
    path = walk.records / "events.json"
    bundle = json.loads(path.read_text())
    for event in bundle["events"]:
        if event["id"] == 12:
            event["status"] = "PAUSED"
    path.write_text(json.dumps(bundle))
    ok(walk.sh("airflow dags pause cronium_event_12"))


def check_apply_status(walk: Walk, cmd: Command, proc: subprocess.CompletedProcess[str]) -> None:
    ok(proc)  # "unpause existing DAGs, keep those at maxExecutions paused"
    assert "cronium_event_12: unpaused: the record is PAUSED: its schedule is off" in proc.stdout, proc.stdout
    paused = walk.python(
        "import json\n"
        "from airflow.models import DagModel\n"
        "from airflow.utils.session import create_session\n"
        "with create_session() as s:\n"
        "    print(json.dumps({d.dag_id: d.is_paused for d in s.query(DagModel)}))"
    )
    assert paused["cronium_event_12"] is False and paused["cronium_event_13"] is False, paused


def check_reset_counter(walk: Walk, cmd: Command, proc: subprocess.CompletedProcess[str]) -> None:
    ok(proc)  # "start an event's execution count again"
    assert proc.stdout.startswith("cronium_event_12: execution count reset ("), proc.stdout
    stored = walk.sh("airflow variables get cronium.internal.executions_reset.cronium_event_12")
    ok(stored)


def check_synced(walk: Walk, cmd: Command, proc: subprocess.CompletedProcess[str]) -> None:
    ok(proc)
    written = json.loads((walk.records / "cronium-api" / "records.json").read_text())
    assert sorted(e["id"] for e in written["events"]) == [1, 2, 3], written
    assert any(seen.startswith("/api/events") for seen in FakeCronium.seen)


def write_server_credentials(walk: Walk) -> None:
    """What the person has: the server's private key, and its host key in a known_hosts file."""
    secure = walk.root / "secure"
    secure.mkdir(exist_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(secure / "app-3.key")], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(walk.root / "hostkey")], check=True)
    host_key = (walk.root / "hostkey.pub").read_text().split()[:2]
    (secure / "known_hosts").write_text(f"127.0.0.9 {' '.join(host_key)}\n")


def check_servers_synced(walk: Walk, cmd: Command, proc: subprocess.CompletedProcess[str]) -> None:
    ok(proc)
    conn = walk.connection("cronium_server_3")
    extra = conn["extra_dejson"]
    assert conn["conn_type"] == "ssh" and conn["host"] == "127.0.0.9" and conn["login"] == "deploy", conn
    assert extra["private_key"] == (walk.root / "secure" / "app-3.key").read_text()
    assert extra["host_key"] == " ".join((walk.root / "hostkey.pub").read_text().split()[:2])
    pools = walk.sh("airflow pools get cronium_server_3 -o json")
    ok(pools)
    assert json_out(pools)[0]["slots"] == "5"  # "5 slots, as Cronium's connection pool"


CHECKS: list[tuple[str, Prepare | None, Check]] = [
    (r"^pip install airflow-provider-cronium", None, check_installed),
    (r"^airflow providers list \| grep cronium$", None, check_provider_listed),
    (r"^airflow connections add cronium_default --conn-type cronium ", None, check_connection_added),
    (r"^cronium-airflow dag-file$", None, check_dag_file_written),
    (r"^cronium-airflow runtime-image build$", None, check_image_built),
    (r"^export AIRFLOW__CRONIUM__RECORDS_DIR=", None, check_ok),
    (r"^airflow config get-value cronium records_dir$", None, check_records_dir),
    (r"^airflow dags reserialize$", None, check_ok),
    (r"^airflow dags list \| grep cronium_$", None, check_dags_listed),
    (r"^airflow dags trigger cronium_event_12 --conf ", None, check_triggered),
    (r"^cronium-airflow validate (--json )?(PATH\.\.\.|/srv/cronium/records)$", None, check_validate),
    (r"^cronium-airflow plan PATH\.\.\. \[--json\]$", None, check_plan),
    (r"^cronium-airflow apply-status PATH\.\.\.$", pause_event_12, check_apply_status),
    (r"^cronium-airflow reset-counter EVENT_ID \[PATH\.\.\.\]$", None, check_reset_counter),
    (r"^cronium-airflow sync --conn-id cronium_default /srv/cronium/records$", None, check_synced),
    (r"^mkdir -p /srv/cronium/records/\{billing,ops\}$", split_into_shards, check_shard_folders),
    (r"^cronium-airflow dag-file --shard billing --shard ops$", None, check_shard_files),
    (r"^cronium-airflow sync --conn-id cronium_default --shard billing ", None, check_synced_into_shard),
    (r"^cronium-airflow servers sync records/ --key-file 3=", write_server_credentials, check_servers_synced),
]


def runnable(walk: Walk, cmd: Command) -> str:
    """The command as the shell runs it: placeholders made real; a synopsis's ``PATH...`` is the records
    folder and an optional ``[--json]`` is given."""
    text = walk.local(cmd.text)
    text = text.replace("[PATH...]", "PATH...").replace("PATH...", shlex.quote(str(walk.records)))
    text = text.replace("[--json]", "--json").replace("EVENT_ID", "12")
    return text


RECORDS: dict[str, Any] = {
    "events": [
        {"id": 12, "name": "Customer report", "type": "BASH", "status": "ACTIVE", "triggerType": "MANUAL",
         "content": "echo customer report", "runLocation": "LOCAL"},
        {"id": 13, "name": "Disk check", "type": "BASH", "status": "ACTIVE", "triggerType": "SCHEDULE",
         "scheduleNumber": 1, "scheduleUnit": "HOURS", "content": "df -h /", "runLocation": "REMOTE",
         "serverId": 3},
    ],
    "servers": [{"id": 3, "name": "app-3", "address": "127.0.0.9", "port": 22, "username": "deploy"}],
}  # fmt: skip


@pytest.fixture
def walk(tmp_path: Path, cronium_server: str) -> Iterator[Walk]:  # noqa: F811 - the fixture imported above
    """A fresh Airflow home with its database (the user's Airflow, before the README), a records folder at
    the pages' ``/srv/cronium/records``, and the environment a new shell has: no test settings."""
    _reset_cronium()
    records = tmp_path / "srv" / "cronium" / "records"
    records.mkdir(parents=True)
    (records / "events.json").write_text(json.dumps(RECORDS))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CRONIUM_", "_AIRFLOW"))}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    env.update(AIRFLOW_HOME=str(tmp_path / "airflow"), CRONIUM_API_TOKEN=TOKEN)
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    env_file = tmp_path / "shell.env"
    env_file.write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items() if k.isidentifier()))
    result = Walk(tmp_path, env_file, cronium_server, records, env)
    migrated = result.sh("airflow db migrate")
    ok(migrated)
    (tmp_path / "airflow" / "dags").mkdir(exist_ok=True)
    yield result


def test_every_bash_block_of_the_readme_and_the_docs_is_walked_or_named() -> None:
    _, blocks = all_commands()
    assert ("README.md", "Five minutes in your own Airflow") in blocks, sorted(blocks)
    unknown = sorted(set(blocks) - set(WALKED) - set(NOT_WALKED))
    assert not unknown, f"sections with commands neither walked nor named in NOT_WALKED: {unknown}"
    gone = sorted((set(WALKED) | set(NOT_WALKED)) - set(blocks))
    assert not gone, f"sections named here have no bash block any more: {gone}"


def test_the_commands_of_the_readme_and_the_docs_work_as_written(walk: Walk) -> None:
    commands, _ = all_commands()
    walked = walk_order(commands)
    unchecked = [
        c.text
        for c in walked
        if not any(re.search(p, c.text) for p, _, _ in CHECKS) and not any(n in c.text for n in NOT_RUN)
    ]
    assert not unchecked, f"commands with no check in this test: {unchecked}"
    for cmd in walked:
        entry = next(((prep, check) for p, prep, check in CHECKS if re.search(p, cmd.text)), None)
        if any(n in cmd.text for n in NOT_RUN):
            if entry:  # what can be checked without running it
                entry[1](walk, cmd, subprocess.CompletedProcess([], 0, "", ""))
            continue
        assert entry is not None
        prepare, check = entry
        if prepare:
            prepare(walk)
        cwd = REPO if "dags_templates/" in cmd.text else None  # a clone's path, run in the clone
        proc = walk.sh(runnable(walk, cmd), cwd=cwd)
        walk.outputs.append((cmd.text, proc))
        try:
            check(walk, cmd, proc)
        except AssertionError as exc:
            page, heading = cmd.section
            raise AssertionError(f"{page}, {heading}: `{cmd.text}` ({cmd.says}): {exc}") from exc
