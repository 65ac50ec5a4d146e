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
# Beside Airflow it starts, on one loopback address, what the other examples deliver to (docs/demo.md): an
# sshd for the REMOTE event (its own host key and a demo-only client key in $DEMO_HOME/ssh; as root it logs
# in the unprivileged user cronium-demo, else you), a mail catcher (aiosmtpd), a webhook receiver and an HTTP
# endpoint (http.server): what they receive is in $DEMO_HOME/deliveries (mail.mbox, webhook.jsonl,
# http-endpoint.jsonl). The records are copied to $DEMO_HOME/records with these addresses; their connections
# are made as a user makes them: `airflow connections import` and `cronium-airflow servers sync`.
#
# Settings (environment):
#   VENV / AIRFLOW_BIN   the virtualenv / airflow command (default: the project's .venv/bin/airflow)
#   DEMO_HOME            the AIRFLOW_HOME to use (default: ./airflow_home)
#   DEMO_PORT            the api-server's port on 127.0.0.1 (default: 8080)
#   DEMO_USER / DEMO_PASSWORD   the web UI login (default: admin / admin)
#   DEMO_RECORDS         the Cronium records folder (default: ./dags_templates/records)
#   DEMO_DAG, DEMO_CONF  the DAG to run and its conf (default: cronium_workflow_1, {"batch": "demo"})
#   DEMO_RUN_TIMEOUT     seconds to wait for the run (default: 300); DEMO_START_TIMEOUT for the services (240)
#   DEMO_ADDRESS         the loopback address of the demo's sshd, mail catcher and HTTP receivers (127.0.0.80)
#   DEMO_SSH_PORT, DEMO_SSH_PORT2   the sshd's ports, servers 1 and 2 (2222, 2223)
#   DEMO_SMTP_PORT, DEMO_WEBHOOK_PORT, DEMO_HTTP_PORT   the mail catcher's, webhook receiver's and HTTP
#                        endpoint's ports (8025, 8766, 8765)
#   DEMO_SSH_USER        the login of the REMOTE examples (as root: cronium-demo, created; else you)
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
DEMO_ADDRESS="${DEMO_ADDRESS:-127.0.0.80}"
DEMO_SSH_PORT="${DEMO_SSH_PORT:-2222}"
DEMO_SSH_PORT2="${DEMO_SSH_PORT2:-2223}"
DEMO_SMTP_PORT="${DEMO_SMTP_PORT:-8025}"
DEMO_WEBHOOK_PORT="${DEMO_WEBHOOK_PORT:-8766}"
DEMO_HTTP_PORT="${DEMO_HTTP_PORT:-8765}"
if [ "$(id -u)" = 0 ]; then DEMO_SSH_USER="${DEMO_SSH_USER:-cronium-demo}"; else DEMO_SSH_USER="${DEMO_SSH_USER:-$(id -un)}"; fi
SSHD_BIN="${DEMO_SSHD:-$(command -v sshd || echo /usr/sbin/sshd)}"
SERVICES=(api-server scheduler dag-processor triggerer)
HELPERS=(sshd mail-catcher webhook-receiver http-endpoint)

say() { printf '== %s\n' "$*"; }
die() { printf 'demo: ERROR: %s\n' "$*" >&2; exit 1; }

[ -x "$AIRFLOW_BIN" ] || die "no airflow at $AIRFLOW_BIN: run \`make venv\` first, or set AIRFLOW_BIN / VENV"
[ -x "$PYTHON" ] || die "no python beside $AIRFLOW_BIN (set DEMO_PYTHON)"
[ -d "$DEMO_RECORDS" ] || die "no Cronium records folder at $DEMO_RECORDS"
for var in DEMO_PORT DEMO_SSH_PORT DEMO_SSH_PORT2 DEMO_SMTP_PORT DEMO_WEBHOOK_PORT DEMO_HTTP_PORT; do
  case "${!var}" in ''|*[!0-9]*) die "$var must be a port number, not '${!var}'";; esac
done
[[ "$DEMO_ADDRESS" =~ ^127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] \
  || die "DEMO_ADDRESS must be a loopback address 127.x.y.z, not '$DEMO_ADDRESS'"
case "$SSHD_BIN" in /*) ;; *) die "DEMO_SSHD must be an absolute path (sshd re-executes itself)";; esac
[ -x "$SSHD_BIN" ] || die "no sshd at $SSHD_BIN: \`make system\` installs openssh-server (or set DEMO_SSHD)"
# Its path goes into demo.env (sourced by a shell), a SQLite URL and the sshd's configuration: letters, digits,
# spaces and . _ / + , = @ ~ - only (a quote, $, `, %, ? or # would be read as more than a name by one of them).
safe_path() { [[ "$1" =~ ^[A-Za-z0-9\ ._/+,=@~-]+$ ]]; }
safe_path "$DEMO_HOME" || die "DEMO_HOME may hold only letters, digits, spaces and . _ / + , = @ ~ - : '$DEMO_HOME'"
DEMO_HOME="$(mkdir -p "$DEMO_HOME" && cd "$DEMO_HOME" && pwd)"
safe_path "$DEMO_HOME" || die "DEMO_HOME may hold only letters, digits, spaces and . _ / + , = @ ~ - : '$DEMO_HOME'"
DEMO_RECORDS="$(cd "$DEMO_RECORDS" && pwd)"
BASE_URL="http://127.0.0.1:$DEMO_PORT"

# ---------------------------------------------------------------------------------------------- configuration
# Everything is set through the environment of the commands started here, and saved in demo.env so that
# `source airflow_home/demo.env` gives a shell the same Airflow.
mkdir -p "$DEMO_HOME/dags" "$DEMO_HOME/logs"
ln -sfn "$REPO/dags_templates/cronium_dags.py" "$DEMO_HOME/dags/cronium_dags.py"
PASSWORDS_FILE="$DEMO_HOME/simple_auth_manager_passwords.json"
q() { printf '%q' "$1"; }  # one word for the shell that sources demo.env, whatever the value holds
cat > "$DEMO_HOME/.demo.env.new" <<EOF
# Written by scripts/demo.sh: \`source $(q "$DEMO_HOME/demo.env")\` to use this Airflow from a shell.
export AIRFLOW_HOME=$(q "$DEMO_HOME")
export AIRFLOW__CORE__DAGS_FOLDER=$(q "$DEMO_HOME/dags")
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=$(q "sqlite:///$DEMO_HOME/airflow.db")
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__EXECUTOR=LocalExecutor
export AIRFLOW__CORE__PARALLELISM=8
export AIRFLOW__CORE__AUTH_MANAGER=airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=$(q "$DEMO_USER:admin")
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=$(q "$PASSWORDS_FILE")
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__API__PORT=$DEMO_PORT
export AIRFLOW__API__BASE_URL=$(q "$BASE_URL")
export AIRFLOW__API__WORKERS=1
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL=$(q "$BASE_URL/execution/")
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=30
export AIRFLOW__LOGGING__LOGGING_LEVEL=INFO
export CRONIUM_RECORDS_DIR=$(q "$DEMO_HOME/records")
# the demo's helpers (sshd, scripts/demo_helpers.py) and the records copied with their addresses
export DEMO_RECORDS=$(q "$DEMO_RECORDS")
export DEMO_ADDRESS=$(q "$DEMO_ADDRESS") DEMO_SSH_USER=$(q "$DEMO_SSH_USER")
export DEMO_SSH_PORT=$DEMO_SSH_PORT DEMO_SSH_PORT2=$DEMO_SSH_PORT2 DEMO_SMTP_PORT=$DEMO_SMTP_PORT
export DEMO_WEBHOOK_PORT=$DEMO_WEBHOOK_PORT DEMO_HTTP_PORT=$DEMO_HTTP_PORT
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

command_of() {  # what a service's or helper's command line contains
  case "$1" in sshd) echo sshd;; mail-catcher|webhook-receiver|http-endpoint) echo demo_helpers;; *) echo airflow;; esac
}

pid_of() {  # the pid of a running service or helper started by this script for this DEMO_HOME, else nothing
  # <name>.pid holds the pid, .<name>.start its start time: a reused pid is never taken for the service.
  # (The api-server rewrites its command line and environment, so those cannot identify it.)
  local name="$1" pid
  [ -f "$DEMO_HOME/$name.pid" ] || return 0
  pid="$(cat "$DEMO_HOME/$name.pid" 2>/dev/null || true)"
  case "$pid" in ''|*[!0-9]*) return 0;; esac
  [ -n "$(start_time "$pid")" ] || return 0
  [ "$(start_time "$pid")" = "$(cat "$DEMO_HOME/.$name.start" 2>/dev/null)" ] || return 0
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q "$(command_of "$name")" || return 0
  echo "$pid"
}

log_tail() {  # the last lines of a file, indented
  local file="$1" lines="${2:-40}"
  if [ -f "$file" ]; then tail -n "$lines" "$file" | sed 's/^/    | /' >&2; fi
}

start_bg() {  # start_bg NAME LABEL COMMAND...: start a service or helper unless it runs already
  local name="$1" label="$2" pid
  shift 2
  pid="$(pid_of "$name")"
  if [ -n "$pid" ]; then
    say "$label is already running (pid $pid): reusing it"
    return
  fi
  # its own session (process group), so that demo-stop stops it with every process it started
  setsid "$@" >> "$DEMO_HOME/$name.log" 2>&1 < /dev/null &
  echo $! > "$DEMO_HOME/$name.pid"
  start_time $! > "$DEMO_HOME/.$name.start"
  say "started $label (pid $!, log $DEMO_HOME/$name.log)"
}

start_service() {
  local name="$1"
  shift
  start_bg "$name" "airflow $name" "$AIRFLOW_BIN" "$name" "$@"
}

check_alive() {  # fail with the log tail when a service (or, with an argument, a helper) has died
  local name names=("$@")
  [ "$#" -gt 0 ] || names=("${SERVICES[@]}")
  for name in "${names[@]}"; do
    if [ -z "$(pid_of "$name")" ]; then
      printf 'demo: ERROR: %s is not running; the end of %s:\n' "$name" "$DEMO_HOME/$name.log" >&2
      log_tail "$DEMO_HOME/$name.log"
      exit 1
    fi
  done
}

port_answers() {  # port_answers PORT [ADDRESS]: something accepts connections there
  "$PYTHON" - "$1" "${2:-127.0.0.1}" <<'PY'
import socket, sys
s = socket.socket()
s.settimeout(1)
sys.exit(0 if s.connect_ex((sys.argv[2], int(sys.argv[1]))) == 0 else 1)
PY
}

# Services already running keep the settings they started with: refuse to mix in others (a new port, records
# folder, ...) and say how to apply them.
running=()
for name in "${SERVICES[@]}" "${HELPERS[@]}"; do [ -z "$(pid_of "$name")" ] || running+=("$name"); done
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

if [ -z "$(pid_of api-server)" ] && port_answers "$DEMO_PORT"; then
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

# ---------------------------------------------------------------------------------------------- example helpers
# What the examples deliver to, all on $DEMO_ADDRESS (loopback): refuse a port another program holds.
mkdir -p "$DEMO_HOME/deliveries"
helper_port() {  # helper_port NAME PORT VARIABLE
  if [ -z "$(pid_of "$1")" ] && port_answers "$2" "$DEMO_ADDRESS"; then
    die "port $2 on $DEMO_ADDRESS (for the $1) is taken by another program: stop it, or choose another address with DEMO_ADDRESS=127.0.0.x or port with $3=..."
  fi
}
helper_port sshd "$DEMO_SSH_PORT" DEMO_SSH_PORT
helper_port sshd "$DEMO_SSH_PORT2" DEMO_SSH_PORT2
helper_port mail-catcher "$DEMO_SMTP_PORT" DEMO_SMTP_PORT
helper_port webhook-receiver "$DEMO_WEBHOOK_PORT" DEMO_WEBHOOK_PORT
helper_port http-endpoint "$DEMO_HTTP_PORT" DEMO_HTTP_PORT

# The records, copied with the demo's addresses and login (the CRONIUM_RECORDS_DIR of this Airflow).
"$PYTHON" "$REPO/scripts/demo_helpers.py" records "$DEMO_RECORDS" "$DEMO_HOME/records" --address "$DEMO_ADDRESS" \
  --ssh-port "$DEMO_SSH_PORT" --ssh-port2 "$DEMO_SSH_PORT2" --ssh-user "$DEMO_SSH_USER" --http-port "$DEMO_HTTP_PORT" \
  || die "could not copy the records of $DEMO_RECORDS to $DEMO_HOME/records"

# The sshd of the REMOTE examples: its host key, a demo-only client key, and the login that key opens.
SSH_DIR="$DEMO_HOME/ssh"
mkdir -p "$SSH_DIR"
chmod 700 "$SSH_DIR"
for key in ssh_host_ed25519_key id_ed25519; do
  [ -f "$SSH_DIR/$key" ] || ssh-keygen -q -t ed25519 -N "" -C "cronium demo $key" -f "$SSH_DIR/$key"
done
cp "$SSH_DIR/id_ed25519.pub" "$SSH_DIR/authorized_keys"
chmod 644 "$SSH_DIR/authorized_keys"
host_key="$(cut -d' ' -f1,2 "$SSH_DIR/ssh_host_ed25519_key.pub")"
printf '[%s]:%s %s\n' "$DEMO_ADDRESS" "$DEMO_SSH_PORT" "$host_key" "$DEMO_ADDRESS" "$DEMO_SSH_PORT2" "$host_key" \
  > "$SSH_DIR/known_hosts"
if [ "$(id -u)" = 0 ]; then
  # As root the examples log in as an unprivileged user of their own; sshd reads its keys from the demo's
  # file through a root-run command, as the file sits in a folder that user cannot open.
  [ "$(id -u "$DEMO_SSH_USER" 2>/dev/null)" != 0 ] || die "DEMO_SSH_USER must be an unprivileged user, not '$DEMO_SSH_USER'"
  if ! id -u "$DEMO_SSH_USER" > /dev/null 2>&1; then
    say "creating the unprivileged user $DEMO_SSH_USER for the REMOTE examples"
    useradd --create-home --shell /bin/bash --password '*' "$DEMO_SSH_USER"  # "*": key login only
  fi
  mkdir -p /run/sshd && chmod 755 /run/sshd
  keys_lines=("AuthorizedKeysFile none" "AuthorizedKeysCommand $(command -v cat) \"$SSH_DIR/authorized_keys\""
              "AuthorizedKeysCommandUser root")
else
  [ "$DEMO_SSH_USER" = "$(id -un)" ] || die "DEMO_SSH_USER can only be you ($(id -un)) when the demo does not run as root"
  keys_lines=("AuthorizedKeysFile \"$SSH_DIR/authorized_keys\"")
fi
{
  echo "# Written by scripts/demo.sh: the demo's sshd, on loopback only, key logins of $DEMO_SSH_USER only."
  echo "ListenAddress $DEMO_ADDRESS:$DEMO_SSH_PORT"
  echo "ListenAddress $DEMO_ADDRESS:$DEMO_SSH_PORT2"
  echo "HostKey \"$SSH_DIR/ssh_host_ed25519_key\""
  printf '%s\n' "${keys_lines[@]}"
  printf '%s\n' "AllowUsers $DEMO_SSH_USER" "PidFile none" "PermitRootLogin no" "PasswordAuthentication no" \
    "KbdInteractiveAuthentication no" "UsePAM no" "StrictModes no" "X11Forwarding no" "AllowTcpForwarding no" \
    "MaxStartups 20" "MaxSessions 20" "Subsystem sftp internal-sftp"
} > "$SSH_DIR/sshd_config"
"$SSHD_BIN" -t -f "$SSH_DIR/sshd_config" > "$DEMO_HOME/sshd-check.log" 2>&1 || {
  log_tail "$DEMO_HOME/sshd-check.log"
  die "sshd refused the demo's configuration $SSH_DIR/sshd_config"
}
start_bg sshd "the demo's sshd on $DEMO_ADDRESS:$DEMO_SSH_PORT and :$DEMO_SSH_PORT2" "$SSHD_BIN" -D -e -f "$SSH_DIR/sshd_config"
start_bg mail-catcher "the mail catcher on $DEMO_ADDRESS:$DEMO_SMTP_PORT" \
  "$PYTHON" "$REPO/scripts/demo_helpers.py" smtp --address "$DEMO_ADDRESS" --port "$DEMO_SMTP_PORT" --mbox "$DEMO_HOME/deliveries/mail.mbox"
start_bg webhook-receiver "the webhook receiver on $DEMO_ADDRESS:$DEMO_WEBHOOK_PORT" \
  "$PYTHON" "$REPO/scripts/demo_helpers.py" http --address "$DEMO_ADDRESS" --port "$DEMO_WEBHOOK_PORT" --log "$DEMO_HOME/deliveries/webhook.jsonl"
start_bg http-endpoint "the HTTP endpoint on $DEMO_ADDRESS:$DEMO_HTTP_PORT" \
  "$PYTHON" "$REPO/scripts/demo_helpers.py" http --address "$DEMO_ADDRESS" --port "$DEMO_HTTP_PORT" --log "$DEMO_HOME/deliveries/http-endpoint.jsonl"
helper_deadline=$((SECONDS + 20))
for entry in "sshd:$DEMO_SSH_PORT" "sshd:$DEMO_SSH_PORT2" "mail-catcher:$DEMO_SMTP_PORT" \
             "webhook-receiver:$DEMO_WEBHOOK_PORT" "http-endpoint:$DEMO_HTTP_PORT"; do
  until port_answers "${entry#*:}" "$DEMO_ADDRESS"; do
    check_alive "${entry%%:*}"
    [ "$SECONDS" -lt "$helper_deadline" ] || { log_tail "$DEMO_HOME/${entry%%:*}.log"; die "the ${entry%%:*} did not answer on $DEMO_ADDRESS:${entry#*:}"; }
    sleep 0.3
  done
done

# Their connections, made as a user makes them: the tools with `airflow connections import` (tool 1 is a Slack
# webhook on the receiver, tool 2 an SMTP server, the catcher), the servers with `cronium-airflow servers sync`
# (the key file and the known_hosts line of the sshd's host key).
DEMO_HOME="$DEMO_HOME" "$PYTHON" - "$DEMO_HOME/connections.json" <<'PY'
import json, os, sys
home, address = os.environ["DEMO_HOME"], os.environ["DEMO_ADDRESS"]
webhook, smtp = os.environ["DEMO_WEBHOOK_PORT"], int(os.environ["DEMO_SMTP_PORT"])
owner = {"owner": "demo-user"}  # the records' userId: each tool belongs to its owner, as in Cronium
connections = {
    "cronium_tool_1": {
        "conn_type": "slackwebhook",
        "description": f"Cronium tool 1 (slack): the demo's webhook receiver, requests in {home}/deliveries/webhook.jsonl",
        "password": f"http://{address}:{webhook}/services/T0DEMO/B0DEMO/demo",
        "extra": json.dumps(owner),
    },
    "cronium_tool_2": {
        "conn_type": "smtp",
        "description": f"Cronium tool 2 (email): the demo's mail catcher, mailbox {home}/deliveries/mail.mbox",
        "host": address,
        "port": smtp,
        "login": "",
        "password": "",
        "extra": json.dumps({**owner, "from_email": "cronium-demo@example.test", "disable_ssl": True,
                             "disable_tls": True}),
    },
}
with open(sys.argv[1], "w") as f:
    json.dump(connections, f, indent=2)
os.chmod(sys.argv[1], 0o600)
PY
say "airflow connections import --overwrite $DEMO_HOME/connections.json"
"$AIRFLOW_BIN" connections import --overwrite "$DEMO_HOME/connections.json" > "$DEMO_HOME/connections.log" 2>&1 || {
  log_tail "$DEMO_HOME/connections.log"
  die "airflow connections import failed"
}
sed 's/^/    /' "$DEMO_HOME/connections.log" | grep -i "import" || true
CRONIUM_CLI="$(dirname "$AIRFLOW_BIN")/cronium-airflow"
say "cronium-airflow servers sync $DEMO_HOME/records --key-file 1=... --key-file 2=... --known-hosts $SSH_DIR/known_hosts"
"$CRONIUM_CLI" servers sync "$DEMO_HOME/records" --key-file "1=$SSH_DIR/id_ed25519" --key-file "2=$SSH_DIR/id_ed25519" \
  --known-hosts "$SSH_DIR/known_hosts" > "$DEMO_HOME/servers-sync.log" 2>&1 || {
  log_tail "$DEMO_HOME/servers-sync.log"
  die "cronium-airflow servers sync failed"
}
sed 's/^/    /' "$DEMO_HOME/servers-sync.log"

# What would fail before it fails: the demo's records need nothing that is missing (docs/doctor.md).
say "cronium-airflow doctor $DEMO_HOME/records"
if "$CRONIUM_CLI" doctor "$DEMO_HOME/records" > "$DEMO_HOME/doctor.log" 2>&1; then
  grep -v '^note: ' "$DEMO_HOME/doctor.log" | sed 's/^/    /'
  echo "    (the notes, where a record runs differently from Cronium: $DEMO_HOME/doctor.log)"
else
  sed 's/^/    /' "$DEMO_HOME/doctor.log"
  say "doctor found problems (above): the examples they name will fail until they are fixed"
fi

# ---------------------------------------------------------------------------------------------- Airflow
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


def cmd_examples(plan_file):
    """Each example DAG of `cronium-airflow plan --json`: its name, and where to see what it delivers."""
    home = os.environ["DEMO_HOME"]
    where = {
        "slack": f"the webhook receiver's requests {home}/deliveries/webhook.jsonl",
        "email": f"the mail catcher's mailbox {home}/deliveries/mail.mbox",
    }
    tools = {1: "slack", 2: "email"}  # the demo's tool connections cronium_tool_1 and _2
    with open(plan_file) as f:
        plan = json.load(f)
    dags = sorted(plan["dags"], key=lambda d: (d["kind"] != "event", d.get("record_id") or 0))
    width = max(len(d["dag_id"]) for d in dags)
    for dag in dags:
        seen = []
        for task in dag["tasks"]:
            details = task.get("details") or {}
            if task["operator"] == "http_request":
                seen.append(f"the HTTP endpoint's requests {home}/deliveries/http-endpoint.jsonl")
            elif task["operator"] == "tool_action":
                tool = details.get("tool_type") or tools.get(details.get("tool_id"))
                seen.append(where.get(tool, f"tool {details.get('tool_id')}"))
            elif task["operator"] == "send_message":
                tool = tools.get(details.get("tool_id"))
                seen.append(f"on failure only: {where.get(tool, 'tool ' + str(details.get('tool_id')))}")
            elif task["operator"] == "trigger_event":
                seen.append(f"a run of {details.get('target_dag_id')}")
            elif task.get("run_location") == "REMOTE":
                servers = ", ".join(f"cronium_server_{i}" for i in task.get("server_ids") or [])
                seen.append(f"the demo sshd ({servers}): the task log and XCom, logins in {home}/sshd.log")
        if not seen:
            seen.append("its task log and XCom (a container of the runtime image)")
        unique = list(dict.fromkeys(seen))
        print(f"   {dag['dag_id']:<{width}}  [{dag['status']}] {dag['name']}: " + "; ".join(unique))


if __name__ == "__main__":
    globals()["cmd_" + sys.argv[1].replace("-", "_")](*sys.argv[2:])
PY
api() {
  DEMO_BASE_URL="$BASE_URL" DEMO_USER="$DEMO_USER" DEMO_PASSWORD="$DEMO_PASSWORD" DEMO_HOME="$DEMO_HOME" \
    "$PYTHON" "$API_PY" "$@"
}

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

echo
say "the examples: each DAG runs when triggered, and shows what it delivered here (docs/demo.md)"
"$CRONIUM_CLI" plan --json "$DEMO_HOME/records" > "$DEMO_HOME/plan.json" 2> /dev/null \
  && api examples "$DEMO_HOME/plan.json" || echo "   (cronium-airflow plan --json $DEMO_HOME/records failed)"
cat <<EOF
   Trigger one: its page's Trigger button ($BASE_URL/dags/<dag_id>), or
     source $DEMO_HOME/demo.env && $AIRFLOW_BIN dags trigger <dag_id>
     or Airflow's REST API:
     TOKEN=\$(curl -s -X POST $BASE_URL/auth/token -H 'Content-Type: application/json' \\
             -d '{"username": "$DEMO_USER", "password": "$DEMO_PASSWORD"}' | $PYTHON -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
     curl -s -X POST $BASE_URL/api/v2/dags/<dag_id>/dagRuns -H "Authorization: Bearer \$TOKEN" \\
          -H 'Content-Type: application/json' -d '{"logical_date": null}'
   Deliveries: $DEMO_HOME/deliveries/: mail.mbox (mails), webhook.jsonl (webhook posts),
               http-endpoint.jsonl (HTTP requests); SSH logins in $DEMO_HOME/sshd.log
               (helpers on $DEMO_ADDRESS: sshd :$DEMO_SSH_PORT/:$DEMO_SSH_PORT2 as $DEMO_SSH_USER, SMTP :$DEMO_SMTP_PORT,
               webhooks :$DEMO_WEBHOOK_PORT, HTTP :$DEMO_HTTP_PORT)

== The demo run succeeded. Airflow keeps running:
   Web UI:     $BASE_URL   (login: user $DEMO_USER, password $DEMO_PASSWORD)
   This run:   $BASE_URL/dags/$DEMO_DAG/runs/$run_id
   The graph:  $BASE_URL/dags/$DEMO_DAG  (Graph tab)
   Cronium:    $BASE_URL/plugin/cronium  (every record, its DAG and last run, left-out records, doctor findings)
   CLI:        source $DEMO_HOME/demo.env && $AIRFLOW_BIN dags list
   Logs, pids: $DEMO_HOME/{api-server,scheduler,dag-processor,triggerer}.{log,pid}
               $DEMO_HOME/{sshd,mail-catcher,webhook-receiver,http-endpoint}.{log,pid}
   Stop:       make demo-stop   (or bash scripts/demo-stop.sh): Airflow and every helper
EOF
