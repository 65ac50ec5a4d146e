#!/usr/bin/env bash
# `make demo`: a local Airflow running the example Cronium records, with one real run of the example workflow.
#
# Creates AIRFLOW_HOME at ./airflow_home (SQLite, LocalExecutor, no example DAGs), puts the Cronium DAG file in
# its dags folder, starts the api-server (127.0.0.1 only), scheduler, dag-processor and triggerer in the
# background, waits until the DAG cronium_workflow_1 is parsed, triggers it with {"batch": "demo"}, waits for
# the run and prints each node's state and output, then the web UI's address and login. The services keep
# running: `make demo-stop` (scripts/demo-stop.sh) stops them. A second run reuses the running services and
# the database, and triggers a new run.
#
# Settings (environment):
#   VENV / AIRFLOW_BIN   the virtualenv / airflow command (default: the project's .venv/bin/airflow)
#   DEMO_HOME            the AIRFLOW_HOME to use (default: ./airflow_home)
#   DEMO_PORT            the api-server's port on 127.0.0.1 (default: 8080)
#   DEMO_USER / DEMO_PASSWORD   the web UI login (default: admin / admin)
#   DEMO_RECORDS         the Cronium records folder (default: ./dags_templates/records)
#   DEMO_DAG, DEMO_CONF  the DAG to run and its conf (default: cronium_workflow_1, {"batch": "demo"})
#   DEMO_RUN_TIMEOUT     seconds to wait for the run (default: 300); DEMO_START_TIMEOUT for the services (240)
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${VENV:-$REPO/.venv}"
AIRFLOW_BIN="${AIRFLOW_BIN:-$VENV/bin/airflow}"
PYTHON="${DEMO_PYTHON:-$(dirname "$AIRFLOW_BIN")/python}"
DEMO_HOME="${DEMO_HOME:-$REPO/airflow_home}"
DEMO_PORT="${DEMO_PORT:-8080}"
DEMO_USER="${DEMO_USER:-admin}"
DEMO_PASSWORD="${DEMO_PASSWORD:-admin}"
DEMO_RECORDS="${DEMO_RECORDS:-$REPO/dags_templates/records}"
DEMO_DAG="${DEMO_DAG:-cronium_workflow_1}"
DEMO_CONF="${DEMO_CONF:-}"
[ -n "$DEMO_CONF" ] || DEMO_CONF='{"batch": "demo"}'
DEMO_RUN_TIMEOUT="${DEMO_RUN_TIMEOUT:-300}"
DEMO_START_TIMEOUT="${DEMO_START_TIMEOUT:-240}"
SERVICES=(api-server scheduler dag-processor triggerer)

say() { printf '== %s\n' "$*"; }
die() { printf 'demo: ERROR: %s\n' "$*" >&2; exit 1; }

[ -x "$AIRFLOW_BIN" ] || die "no airflow at $AIRFLOW_BIN: run \`make venv\` first, or set AIRFLOW_BIN / VENV"
[ -x "$PYTHON" ] || die "no python beside $AIRFLOW_BIN (set DEMO_PYTHON)"
[ -d "$DEMO_RECORDS" ] || die "no Cronium records folder at $DEMO_RECORDS"
case "$DEMO_PORT" in ''|*[!0-9]*) die "DEMO_PORT must be a port number, not '$DEMO_PORT'";; esac
DEMO_HOME="$(mkdir -p "$DEMO_HOME" && cd "$DEMO_HOME" && pwd)"
DEMO_RECORDS="$(cd "$DEMO_RECORDS" && pwd)"
BASE_URL="http://127.0.0.1:$DEMO_PORT"

# ---------------------------------------------------------------------------------------------- configuration
# Everything is set through the environment of the commands started here, and saved in demo.env so that
# `source airflow_home/demo.env` gives a shell the same Airflow.
mkdir -p "$DEMO_HOME/dags" "$DEMO_HOME/logs"
ln -sfn "$REPO/dags_templates/cronium_dags.py" "$DEMO_HOME/dags/cronium_dags.py"
PASSWORDS_FILE="$DEMO_HOME/simple_auth_manager_passwords.json"
cat > "$DEMO_HOME/.demo.env.new" <<EOF
# Written by scripts/demo.sh: \`source $DEMO_HOME/demo.env\` to use this Airflow from a shell.
export AIRFLOW_HOME='$DEMO_HOME'
export AIRFLOW__CORE__DAGS_FOLDER='$DEMO_HOME/dags'
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN='sqlite:///$DEMO_HOME/airflow.db'
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__EXECUTOR=LocalExecutor
export AIRFLOW__CORE__PARALLELISM=8
export AIRFLOW__CORE__AUTH_MANAGER=airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS='$DEMO_USER:admin'
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE='$PASSWORDS_FILE'
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__API__PORT=$DEMO_PORT
export AIRFLOW__API__BASE_URL='$BASE_URL'
export AIRFLOW__API__WORKERS=1
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL='$BASE_URL/execution/'
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=30
export AIRFLOW__LOGGING__LOGGING_LEVEL=INFO
export CRONIUM_RECORDS_DIR='$DEMO_RECORDS'
EOF
# The simple auth manager keeps each user's password in a JSON file and only generates one for a user the file
# lacks: writing the file first makes the demo login known.
"$PYTHON" - "$PASSWORDS_FILE" "$DEMO_USER" "$DEMO_PASSWORD" <<'PY'
import json, os, sys
path, user, password = sys.argv[1:]
try:
    with open(path) as f:
        data = json.loads(f.read().strip() or "{}")
except (OSError, ValueError):
    data = {}
if data.get(user) != password:
    data[user] = password
    with open(path, "w") as f:
        f.write(json.dumps(data) + "\n")
os.chmod(path, 0o600)
PY

# ---------------------------------------------------------------------------------------------- services
start_time() {  # a process's start time (clock ticks after boot): with the pid, it names one process
  sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $20}'
}

pid_of() {  # the pid of a running service started by this script for this DEMO_HOME, else nothing
  # <name>.pid holds the pid, .<name>.start its start time: a reused pid is never taken for the service.
  # (The api-server rewrites its command line and environment, so those cannot identify it.)
  local name="$1" pid
  [ -f "$DEMO_HOME/$name.pid" ] || return 0
  pid="$(cat "$DEMO_HOME/$name.pid" 2>/dev/null || true)"
  case "$pid" in ''|*[!0-9]*) return 0;; esac
  [ -n "$(start_time "$pid")" ] || return 0
  [ "$(start_time "$pid")" = "$(cat "$DEMO_HOME/.$name.start" 2>/dev/null)" ] || return 0
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q airflow || return 0
  echo "$pid"
}

log_tail() {  # the last lines of a file, indented
  local file="$1" lines="${2:-40}"
  if [ -f "$file" ]; then tail -n "$lines" "$file" | sed 's/^/    | /' >&2; fi
}

start_service() {
  local name="$1" pid
  shift
  pid="$(pid_of "$name")"
  if [ -n "$pid" ]; then
    say "airflow $name is already running (pid $pid): reusing it"
    return
  fi
  # its own session (process group), so that demo-stop stops it with every process it started
  setsid "$AIRFLOW_BIN" "$name" "$@" >> "$DEMO_HOME/$name.log" 2>&1 < /dev/null &
  echo $! > "$DEMO_HOME/$name.pid"
  start_time $! > "$DEMO_HOME/.$name.start"
  say "started airflow $name (pid $!, log $DEMO_HOME/$name.log)"
}

check_alive() {  # fail with the log tail when a service has died
  local name
  for name in "${SERVICES[@]}"; do
    if [ -z "$(pid_of "$name")" ]; then
      printf 'demo: ERROR: airflow %s is not running; the end of %s:\n' "$name" "$DEMO_HOME/$name.log" >&2
      log_tail "$DEMO_HOME/$name.log"
      exit 1
    fi
  done
}

port_answers() {
  "$PYTHON" - "$DEMO_PORT" <<'PY'
import socket, sys
s = socket.socket()
s.settimeout(1)
sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)
PY
}

# Services already running keep the settings they started with: refuse to mix in others (a new port, records
# folder, ...) and say how to apply them.
running=()
for name in "${SERVICES[@]}"; do [ -z "$(pid_of "$name")" ] || running+=("$name"); done
if [ "${#running[@]}" -gt 0 ] && [ -f "$DEMO_HOME/demo.env" ] \
   && ! cmp -s "$DEMO_HOME/demo.env" "$DEMO_HOME/.demo.env.new"; then
  diff "$DEMO_HOME/demo.env" "$DEMO_HOME/.demo.env.new" | grep '^[<>] export' | sed 's/^/    /' >&2 || true
  rm -f "$DEMO_HOME/.demo.env.new"
  die "the demo's services (${running[*]}) run with other settings (< running, > asked for): \`make demo-stop\` first"
fi
mv "$DEMO_HOME/.demo.env.new" "$DEMO_HOME/demo.env"
# shellcheck disable=SC1091
source "$DEMO_HOME/demo.env"

say "Airflow home: $DEMO_HOME (SQLite, LocalExecutor), records: $DEMO_RECORDS"
say "Airflow: $AIRFLOW_BIN ($("$AIRFLOW_BIN" version 2>/dev/null | tail -n 1))"

if [ -z "$(pid_of api-server)" ] && port_answers; then
  die "port $DEMO_PORT on 127.0.0.1 is taken by another program: stop it, or choose another with DEMO_PORT=..."
fi

# The database: migrated on the first run, reused afterwards (a newer Airflow or provider migrates it forward).
if [ -f "$DEMO_HOME/airflow.db" ] && "$AIRFLOW_BIN" db check-migrations -t 0 > /dev/null 2>&1; then
  say "metadata database $DEMO_HOME/airflow.db is up to date: reusing it"
else
  say "airflow db migrate"
  "$AIRFLOW_BIN" db migrate > "$DEMO_HOME/db-migrate.log" 2>&1 || {
    printf 'demo: ERROR: airflow db migrate failed; the end of %s:\n' "$DEMO_HOME/db-migrate.log" >&2
    log_tail "$DEMO_HOME/db-migrate.log"
    exit 1
  }
fi

start_service api-server --host 127.0.0.1 --port "$DEMO_PORT"
# Task logs are files under $DEMO_HOME/logs that the api-server reads itself: no log-serving ports are opened.
start_service scheduler --skip-serve-logs
start_service dag-processor
start_service triggerer --skip-serve-logs

# ---------------------------------------------------------------------------------------------- REST helpers
# Small Python helpers (the venv's interpreter, standard library only) for Airflow's REST API.
API_PY="$DEMO_HOME/.demo_api.py"
cat > "$API_PY" <<'PY'
import json, os, sys, time, urllib.error, urllib.parse, urllib.request

BASE = os.environ["DEMO_BASE_URL"]


def request(method, path, body=None, token=None, timeout=10):
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(BASE + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            return resp.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, raw.decode(errors="replace")


def token():
    status, body = request("POST", "/auth/token",
                           {"username": os.environ["DEMO_USER"], "password": os.environ["DEMO_PASSWORD"]})
    if status not in (200, 201):
        sys.exit(f"login as {os.environ['DEMO_USER']} failed: HTTP {status} {body}")
    return body["access_token"]


def q(value):
    return urllib.parse.quote(str(value), safe="")


def cmd_health():
    try:
        status, body = request("GET", "/api/v2/monitor/health", timeout=3)
    except OSError:
        sys.exit(1)
    sys.exit(0 if status == 200 else 1)


def cmd_dag(dag_id):
    """Exit 0 when the DAG is parsed (unpausing it if needed), 2 when not yet, print import errors."""
    tok = token()
    status, body = request("GET", f"/api/v2/dags/{q(dag_id)}", token=tok)
    if status == 200:
        if body.get("is_paused"):
            s, b = request("PATCH", f"/api/v2/dags/{q(dag_id)}", {"is_paused": False}, token=tok)
            if s != 200:
                sys.exit(f"could not unpause {dag_id}: HTTP {s} {b}")
            print(f"== unpaused {dag_id}")
        sys.exit(0)
    s, errors = request("GET", "/api/v2/importErrors", token=tok)
    if s == 200 and errors.get("import_errors"):
        for err in errors["import_errors"]:
            print(f"import error in {err.get('filename')}:\n{err.get('stack_trace')}", file=sys.stderr)
    sys.exit(2)


def cmd_run_state(dag_id, run_id):
    status, body = request("GET", f"/api/v2/dags/{q(dag_id)}/dagRuns/{q(run_id)}", token=token())
    print(body.get("state") if status == 200 else f"unknown (HTTP {status})")


def cmd_report(dag_id, run_id):
    """Each node's display name, state and output (XCom return_value); failed tasks' names on stderr."""
    tok = token()
    run = f"/api/v2/dags/{q(dag_id)}/dagRuns/{q(run_id)}"
    status, body = request("GET", f"{run}/taskInstances?limit=100", token=tok)
    if status != 200:
        sys.exit(f"could not list the run's tasks: HTTP {status} {body}")
    tis = sorted(body["task_instances"], key=lambda t: (t.get("start_date") or "9", t["task_id"]))
    width = max(len(t["task_id"]) for t in tis)
    dwidth = max(len(t.get("task_display_name") or "") for t in tis)
    failed = []
    for ti in tis:
        task_id, state = ti["task_id"], ti.get("state") or "none"
        s, x = request("GET", f"{run}/taskInstances/{q(task_id)}/xcomEntries/return_value?deserialize=true",
                       token=tok)
        output = json.dumps(x.get("value"), sort_keys=True) if s == 200 else "-"
        if len(output) > 160:
            output = output[:157] + "..."
        print(f"  {task_id:<{width}}  {ti.get('task_display_name') or '':<{dwidth}}  {state:<14} output: {output}")
        if state in ("failed", "upstream_failed", "up_for_retry"):
            failed.append(f"{task_id}:{ti.get('try_number') or 1}")
    print(" ".join(failed), file=open(os.environ["DEMO_FAILED_FILE"], "w"))


if __name__ == "__main__":
    globals()["cmd_" + sys.argv[1].replace("-", "_")](*sys.argv[2:])
PY
api() { DEMO_BASE_URL="$BASE_URL" DEMO_USER="$DEMO_USER" DEMO_PASSWORD="$DEMO_PASSWORD" "$PYTHON" "$API_PY" "$@"; }

# ---------------------------------------------------------------------------------------------- wait for Airflow
deadline=$((SECONDS + DEMO_START_TIMEOUT))
say "waiting for the API at $BASE_URL"
until api health; do
  check_alive
  [ "$SECONDS" -lt "$deadline" ] || { log_tail "$DEMO_HOME/api-server.log"; die "the API did not answer within ${DEMO_START_TIMEOUT}s"; }
  sleep 2
done
say "waiting for the DAG $DEMO_DAG to be parsed"
until api dag "$DEMO_DAG"; do
  rc=$?
  [ "$rc" -eq 2 ] || die "the API refused the demo login or the DAG check (see above)"
  check_alive
  if [ "$SECONDS" -ge "$deadline" ]; then
    log_tail "$DEMO_HOME/dag-processor.log"
    die "the DAG $DEMO_DAG was not parsed within ${DEMO_START_TIMEOUT}s (the dag-processor's log is above)"
  fi
  sleep 3
done

# ---------------------------------------------------------------------------------------------- the run
run_id="demo__$(date -u +%Y-%m-%dT%H-%M-%S)_$$"
say "airflow dags trigger $DEMO_DAG --conf '$DEMO_CONF' --run-id $run_id"
"$AIRFLOW_BIN" dags trigger "$DEMO_DAG" --conf "$DEMO_CONF" --run-id "$run_id" > "$DEMO_HOME/trigger.log" 2>&1 || {
  log_tail "$DEMO_HOME/trigger.log"
  die "airflow dags trigger failed"
}
say "waiting for the run $run_id (at most ${DEMO_RUN_TIMEOUT}s)"
run_deadline=$((SECONDS + DEMO_RUN_TIMEOUT))
started=$SECONDS
state="queued"
while :; do
  state="$(api run-state "$DEMO_DAG" "$run_id" 2>/dev/null || echo unknown)"
  case "$state" in success|failed) break;; esac
  check_alive
  [ "$SECONDS" -lt "$run_deadline" ] || break
  sleep 3
done
say "run $run_id: $state after $((SECONDS - started))s"

say "airflow tasks states-for-dag-run $DEMO_DAG $run_id"
"$AIRFLOW_BIN" tasks states-for-dag-run "$DEMO_DAG" "$run_id" 2>/dev/null \
  || echo "  (airflow tasks states-for-dag-run failed)"
say "each node's state and output (XCom return_value, from $BASE_URL/api/v2)"
failed_file="$DEMO_HOME/.demo_failed"
: > "$failed_file"
DEMO_FAILED_FILE="$failed_file" api report "$DEMO_DAG" "$run_id" || true

task_log_tail() {  # the end of a task attempt's log file, as plain text
  local task="$1" try="$2" file
  file="$(find "$DEMO_HOME/logs" -path "*dag_id=$DEMO_DAG/run_id=$run_id/task_id=$task/attempt=$try.log" 2>/dev/null | head -n 1)"
  [ -n "$file" ] || { echo "    (no log file for $task attempt $try under $DEMO_HOME/logs)" >&2; return; }
  echo "-- $task, attempt $try: $file" >&2
  "$PYTHON" - "$file" <<'PY' | tail -n 30 | sed 's/^/    | /' >&2
import json, sys
for line in open(sys.argv[1], errors="replace"):
    try:
        rec = json.loads(line)
    except ValueError:
        print(line.rstrip())
        continue
    print(f"{rec.get('timestamp', '')} [{rec.get('level', '')}] {rec.get('event', '')}")
    for err in rec.get("error_detail") or []:
        print(f"    {err.get('exc_type')}: {err.get('exc_value')}")
PY
}

if [ "$state" != "success" ]; then
  read -r -a failed_tasks < "$failed_file" || true
  for entry in ${failed_tasks[@]+"${failed_tasks[@]}"}; do task_log_tail "${entry%%:*}" "${entry##*:}"; done
  if [ "$state" = "failed" ]; then
    die "the run $run_id of $DEMO_DAG failed (the failing tasks' logs are above; services are still running, \`make demo-stop\` stops them)"
  fi
  echo "-- the scheduler's latest warnings and errors ($DEMO_HOME/scheduler.log):" >&2
  tail -n 500 "$DEMO_HOME/scheduler.log" | grep -iE "warn|error|exception" | tail -n 15 | cut -c1-400 | sed 's/^/    | /' >&2 || true
  die "the run $run_id of $DEMO_DAG did not finish within ${DEMO_RUN_TIMEOUT}s (state: $state)"
fi

cat <<EOF

== The demo run succeeded. Airflow keeps running:
   Web UI:     $BASE_URL   (login: user $DEMO_USER, password $DEMO_PASSWORD)
   This run:   $BASE_URL/dags/$DEMO_DAG/runs/$run_id
   The graph:  $BASE_URL/dags/$DEMO_DAG  (Graph tab)
   CLI:        source $DEMO_HOME/demo.env && $AIRFLOW_BIN dags list
   Logs, pids: $DEMO_HOME/{api-server,scheduler,dag-processor,triggerer}.{log,pid}
   Stop:       make demo-stop   (or bash scripts/demo-stop.sh)
EOF
