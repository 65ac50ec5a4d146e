"""``cronium-airflow dag-file``: the DAG file written into a dags folder, whole or one copy per shard, never both
kinds at once; and ``sync`` into a records folder that the DAG files read in shards.

Each test runs the command from a folder that is not the dags folder, and parses the dags folder as the DAG
processor does (Airflow's DagBag) where it says which DAGs a user would get.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, airflow_env, venv_bin
from tests.test_api_sync import FakeCronium, _conn_json, cronium, cronium_server  # noqa: F401 (fixtures)

TEMPLATE = REPO / "cronium_provider" / "templates" / "cronium_dags.py"
# the DAG file as the first versions shipped it, copied by `cp dags_templates/cronium_dags.py` back then
OLDER_COPY = '''"""Cronium events and workflows as Airflow DAGs.

Drop this file into your dags folder and point it at a folder of Cronium record files with the
environment variable CRONIUM_RECORDS_DIR (or the Airflow option [cronium] records_dir). Each event
becomes the DAG cronium_event_<id>, each workflow cronium_workflow_<id>. Parsing reads those local files
only: no network, no database, no Variables.
"""

from cronium_provider.factory import build_dags

globals().update(build_dags())
'''
FOREIGN = "from airflow.sdk import DAG\n\nwith DAG('my_own_dag', schedule=None):\n    pass\n"


def event(event_id: int) -> str:
    return f"kind: event\nid: {event_id}\nname: Event {event_id}\ntype: BASH\nstatus: ACTIVE\ncontent: echo hi\n"


@pytest.fixture
def site(tmp_path: Path) -> dict[str, Path]:
    """A records folder in two shards (event 10 in billing, event 20 in ops), an empty dags folder holding a DAG
    file of a person's own, and a working folder elsewhere."""
    records, dags, elsewhere = tmp_path / "records", tmp_path / "dags", tmp_path / "elsewhere"
    for shard, event_id in (("billing", 10), ("ops", 20)):
        (records / shard).mkdir(parents=True)
        (records / shard / f"event-{event_id}.yaml").write_text(event(event_id))
    dags.mkdir()
    (dags / "my_dag.py").write_text(FOREIGN)
    elsewhere.mkdir()
    return {"records": records, "dags": dags, "cwd": elsewhere}


def dag_file(site: dict[str, Path], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [venv_bin("cronium-airflow"), "dag-file", str(site["dags"]), *args],
        cwd=site["cwd"],
        env=airflow_env(CRONIUM_RECORDS_DIR=str(site["records"])),
        capture_output=True,
        text=True,
        timeout=180,
    )


def folder_state(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.lstat().st_mtime_ns) for p in sorted(folder.iterdir()) if p.is_file()}


def parse(dags: Path, records: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, str], dict[str, str]]:
    """The DAG processor's view of ``dags``: every DAG id with the file that built it, and the import errors."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("CRONIUM_RECORDS_DIR", str(records))
    bag = DagBag(dag_folder=str(dags))
    built = {dag_id: Path(dag.fileloc).name for dag_id, dag in bag.dags.items()}
    return built, {Path(path).name: str(error) for path, error in bag.import_errors.items()}


def test_unsharded_then_sharded_leaves_only_the_shard_copies(site, monkeypatch) -> None:
    whole = dag_file(site)
    assert whole.returncode == 0, whole.stdout + whole.stderr
    assert whole.stdout.splitlines() == [f"wrote {site['dags'] / 'cronium_dags.py'}"]
    assert parse(site["dags"], site["records"], monkeypatch)[0] == {
        "cronium_event_10": "cronium_dags.py",
        "cronium_event_20": "cronium_dags.py",
        "my_own_dag": "my_dag.py",
    }

    sharded = dag_file(site, "--shard", "billing", "--shard", "ops")
    assert sharded.returncode == 0, sharded.stdout + sharded.stderr
    lines = sharded.stdout.splitlines()
    assert f"wrote {site['dags'] / 'cronium_dags_billing.py'}" in lines
    assert f"wrote {site['dags'] / 'cronium_dags_ops.py'}" in lines
    assert any(line.startswith(f"removed {site['dags'] / 'cronium_dags.py'}: it reads the whole") for line in lines)
    assert sorted(p.name for p in site["dags"].iterdir()) == [
        "cronium_dags_billing.py",
        "cronium_dags_ops.py",
        "my_dag.py",
    ]
    assert (site["dags"] / "my_dag.py").read_text() == FOREIGN
    assert 'CRONIUM_SHARD = "ops"' in (site["dags"] / "cronium_dags_ops.py").read_text()

    built, errors = parse(site["dags"], site["records"], monkeypatch)
    assert errors == {}
    assert built == {
        "cronium_event_10": "cronium_dags_billing.py",
        "cronium_event_20": "cronium_dags_ops.py",
        "my_own_dag": "my_dag.py",
    }


def test_writing_the_whole_file_removes_the_shard_copies(site, monkeypatch) -> None:
    assert dag_file(site, "--shard", "billing", "--shard", "ops").returncode == 0
    whole = dag_file(site)
    assert whole.returncode == 0, whole.stdout
    for shard in ("billing", "ops"):
        assert f"removed {site['dags'] / f'cronium_dags_{shard}.py'}: it reads shard {shard}" in whole.stdout
    assert sorted(p.name for p in site["dags"].iterdir()) == ["cronium_dags.py", "my_dag.py"]
    built, errors = parse(site["dags"], site["records"], monkeypatch)
    assert errors == {} and built["cronium_event_10"] == built["cronium_event_20"] == "cronium_dags.py"


def test_a_second_run_changes_nothing(site) -> None:
    assert dag_file(site, "--shard", "billing", "--shard", "ops").returncode == 0
    before = folder_state(site["dags"])
    again = dag_file(site, "--shard", "billing", "--shard", "ops")
    assert again.returncode == 0, again.stdout
    assert again.stdout.splitlines() == [
        f"unchanged {site['dags'] / 'cronium_dags_billing.py'}",
        f"unchanged {site['dags'] / 'cronium_dags_ops.py'}",
    ]
    assert folder_state(site["dags"]) == before


def test_an_edited_provider_dag_file_blocks_and_nothing_is_written(site) -> None:
    assert dag_file(site).returncode == 0
    edited = site["dags"] / "cronium_dags.py"
    edited.write_text(edited.read_text() + "\nprint('my change')\n")
    before = folder_state(site["dags"])
    proc = dag_file(site, "--shard", "billing")
    assert proc.returncode == 1, proc.stdout
    assert f"error: {edited} is a Cronium DAG file you edited" in proc.stdout and "nothing written" in proc.stdout
    assert folder_state(site["dags"]) == before


def test_an_older_copy_and_a_linked_copy_are_recognised_and_removed(site, monkeypatch) -> None:
    """A copy an earlier version's `cp` made, and a link to the template (as scripts/demo.sh makes one): both
    read the whole folder; writing shard copies removes them, and the linked template itself is untouched."""
    template = TEMPLATE.read_bytes()
    (site["dags"] / "cronium_dags.py").write_text(OLDER_COPY)
    (site["dags"] / "linked.py").symlink_to(TEMPLATE)
    proc = dag_file(site, "--shard", "billing", "--shard", "ops")
    assert proc.returncode == 0, proc.stdout
    assert f"removed {site['dags'] / 'cronium_dags.py'}" in proc.stdout
    assert f"removed {site['dags'] / 'linked.py'}" in proc.stdout
    assert sorted(p.name for p in site["dags"].iterdir()) == [
        "cronium_dags_billing.py",
        "cronium_dags_ops.py",
        "my_dag.py",
    ]
    assert TEMPLATE.read_bytes() == template
    assert parse(site["dags"], site["records"], monkeypatch)[1] == {}


@pytest.mark.parametrize("name", ["../billing", "a/b", "", "..", ".hidden", "bill ing"])
def test_a_bad_shard_name_is_refused(site, name) -> None:
    proc = dag_file(site, "--shard", name)
    assert proc.returncode == 2
    assert f"error: --shard: shard name {name!r} refused" in proc.stdout
    assert [p.name for p in site["dags"].iterdir()] == ["my_dag.py"]


def test_a_shard_without_its_records_folder_is_named(site) -> None:
    proc = dag_file(site, "--shard", "billing", "--shard", "hr")
    assert proc.returncode == 0, proc.stdout
    assert f"warning: {site['records'] / 'hr'} does not exist" in proc.stdout
    assert str(site["records"] / "billing") not in proc.stdout
    assert (site["dags"] / "cronium_dags_hr.py").is_file()


def test_a_file_of_another_kind_at_the_target_name_is_left_alone(site) -> None:
    (site["dags"] / "cronium_dags_billing.py").write_text(FOREIGN)
    proc = dag_file(site, "--shard", "billing")
    assert proc.returncode == 1
    assert f"{site['dags'] / 'cronium_dags_billing.py'} is not a DAG file of the provider" in proc.stdout
    assert (site["dags"] / "cronium_dags_billing.py").read_text() == FOREIGN


# ---------------------------------------------------------------------------------------------------------
# sync into a records folder read in shards


def sync(url: str, site: dict[str, Path], *args: str) -> subprocess.CompletedProcess[str]:
    env = airflow_env(
        AIRFLOW_CONN_CRONIUM_SYNC_TEST=_conn_json(url),
        AIRFLOW__CORE__DAGS_FOLDER=str(site["dags"]),
        CRONIUM_RECORDS_DIR=str(site["records"]),
    )
    command = [venv_bin("cronium-airflow"), "sync", "--conn-id", "cronium_sync_test", *args, str(site["records"])]
    return subprocess.run(command, cwd=site["cwd"], env=env, capture_output=True, text=True, timeout=180)


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def sharded(site) -> dict[str, Path]:
    """The dags folder holds a copy of the DAG file per shard, made as the docs said before dag-file."""
    text = (REPO / "dags_templates" / "cronium_dags.py").read_text()
    for shard in ("billing", "ops"):
        copy = text.replace("\nCRONIUM_SHARD = None\n", f'\nCRONIUM_SHARD = "{shard}"\n')
        assert copy != text
        (site["dags"] / f"cronium_dags_{shard}.py").write_text(copy)
    return site


def test_sync_into_a_sharded_folder_without_a_shard_changes_nothing(cronium, sharded, airflow_db) -> None:  # noqa: F811
    before = tree(sharded["records"])
    proc = sync(cronium, sharded)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"read {sharded['records']} in shards (billing, ops)" in proc.stdout
    assert "pass --shard NAME" in proc.stdout and "nothing changed" in proc.stdout
    assert tree(sharded["records"]) == before
    assert FakeCronium.seen == []  # not even asked


def test_sync_into_a_shard_feeds_that_shards_dag_file(cronium, sharded, airflow_db, monkeypatch) -> None:  # noqa: F811
    proc = sync(cronium, sharded, "--shard", "billing")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    target = sharded["records"] / "billing" / "cronium-api" / "records.json"
    assert f"wrote {target}" in proc.stdout
    assert not (sharded["records"] / "cronium-api").exists()
    built, errors = parse(sharded["dags"], sharded["records"], monkeypatch)
    assert errors == {}
    assert built == {  # the Cronium API's events 1-3 and workflow 7 beside billing's own event 10
        "cronium_event_1": "cronium_dags_billing.py",
        "cronium_event_2": "cronium_dags_billing.py",
        "cronium_event_3": "cronium_dags_billing.py",
        "cronium_event_10": "cronium_dags_billing.py",
        "cronium_event_20": "cronium_dags_ops.py",
        "cronium_workflow_7": "cronium_dags_billing.py",
        "my_own_dag": "my_dag.py",
    }


def test_sync_into_a_shard_no_dag_file_reads_says_so(cronium, sharded, airflow_db) -> None:  # noqa: F811
    proc = sync(cronium, sharded, "--shard", "hr")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    hr = sharded["records"] / "hr"
    assert f"warning: no DAG file in {sharded['dags']} reads {hr}: cronium-airflow dag-file --shard hr" in proc.stdout
    assert f"wrote {hr / 'cronium-api' / 'records.json'}" in proc.stdout


def test_sync_refuses_a_bad_shard_name(cronium, sharded, airflow_db) -> None:  # noqa: F811
    before = tree(sharded["records"])
    proc = sync(cronium, sharded, "--shard", "../elsewhere")
    assert proc.returncode == 2 and "error: --shard: shard name '../elsewhere' refused" in proc.stdout
    assert tree(sharded["records"]) == before and FakeCronium.seen == []


# ---------------------------------------------------------------------------------------------------------
# what a careless operator or a hostile file in the dags folder can do


def test_a_shard_name_too_long_for_a_file_name_is_refused_before_anything_is_written(site, monkeypatch) -> None:
    """``cronium_dags_<name>.py`` must fit a file name: a name too long is refused with the others, before the
    shards before it are written beside the whole DAG file (which would build their DAGs twice)."""
    assert dag_file(site).returncode == 0
    before = folder_state(site["dags"])
    name = "b" * 250
    proc = dag_file(site, "--shard", "billing", "--shard", name)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"error: --shard: shard name {name!r} refused" in proc.stdout and "at most 100 characters" in proc.stdout
    assert folder_state(site["dags"]) == before
    assert parse(site["dags"], site["records"], monkeypatch)[1] == {}


def test_a_dags_folder_that_cannot_be_written_is_named(site, tmp_path) -> None:
    """A DAGS_FOLDER that is a file (a slip of the operator): one error naming it, no traceback."""
    not_a_folder = tmp_path / "dags.tar"
    not_a_folder.write_text("archive")
    proc = dag_file({**site, "dags": not_a_folder})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == [f"error: cannot write into {not_a_folder}: File exists; nothing written"]
    assert "Traceback" not in proc.stderr and not_a_folder.read_text() == "archive"


def test_files_in_the_dags_folder_are_only_read_never_waited_on(site) -> None:
    """dag-file and sync read the dags folder's ``.py`` files as text: a FIFO named ``*.py`` is not waited on
    (its writer never comes), and a file crafted to look like the provider's with a ``CRONIUM_SHARD`` value
    that breaks a Python parser is a person's file like any other."""
    import os

    os.mkfifo(site["dags"] / "pipe.py")
    crafted = TEMPLATE.read_text().replace("CRONIUM_SHARD = None", "CRONIUM_SHARD = " + "-" * 60_000 + "1")
    (site["dags"] / "deep.py").write_text(crafted)
    proc = subprocess.run(
        [venv_bin("cronium-airflow"), "dag-file", str(site["dags"]), "--shard", "billing"],
        cwd=site["cwd"],
        env=airflow_env(CRONIUM_RECORDS_DIR=str(site["records"])),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[:2] == [
        f"wrote {site['dags'] / 'cronium_dags_billing.py'}",
        f"kept {site['dags'] / 'deep.py'}: it reads shard {'-' * 100}",
    ]
    assert "Traceback" not in proc.stderr and (site["dags"] / "deep.py").read_text() == crafted


def test_a_file_that_changes_between_the_check_and_the_write_is_left_alone(tmp_path) -> None:
    """The provider's DAG file the plan would remove, edited by a person since, and a file a person put at a
    name the plan would write: neither is removed or overwritten, and the command says so."""
    from cronium_provider.dag_file import apply_dag_files, dag_file_text, plan_dag_files

    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "cronium_dags.py").write_text(dag_file_text())
    changes = plan_dag_files(dags, ["billing", "ops"])
    assert [f.path.name for f, _ in changes.remove] == ["cronium_dags.py"]
    edited = dag_file_text() + "\nprint('mine')\n"
    (dags / "cronium_dags.py").write_text(edited)  # between the check and the removal
    (dags / "cronium_dags_ops.py").write_text(FOREIGN)  # between the check and the write
    left = apply_dag_files(changes)
    assert sorted(p.name for p in left) == ["cronium_dags.py", "cronium_dags_ops.py"]
    assert (dags / "cronium_dags.py").read_text() == edited
    assert (dags / "cronium_dags_ops.py").read_text() == FOREIGN
    assert (dags / "cronium_dags_billing.py").read_text() == dag_file_text("billing")
    assert sorted(p.name for p in dags.iterdir()) == [
        "cronium_dags.py",
        "cronium_dags_billing.py",
        "cronium_dags_ops.py",
    ]


def test_a_dag_file_in_a_linked_folder_is_seen_and_left_where_it_is(site, tmp_path, monkeypatch) -> None:
    """Airflow follows a linked sub-folder of the dags folder (here to a team's folder, and a link back to the
    dags folder that would loop): the provider's whole DAG file there is in force, so shard copies beside it
    would build each DAG twice. dag-file names it, removes nothing outside the dags folder, writes nothing."""
    team = tmp_path / "team-dags"
    team.mkdir()
    (team / "cronium_dags.py").write_text(TEMPLATE.read_text())
    (site["dags"] / "team").symlink_to(team)
    (team / "back").symlink_to(site["dags"])
    before = folder_state(site["dags"])
    proc = dag_file(site, "--shard", "billing", "--shard", "ops")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    linked = site["dags"] / "team" / "cronium_dags.py"
    assert f"error: {linked} is the provider's DAG file in a folder reached through a link" in proc.stdout
    assert folder_state(site["dags"]) == before and (team / "cronium_dags.py").read_text() == TEMPLATE.read_text()
