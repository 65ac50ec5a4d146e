#!/usr/bin/env bash
# `make demo-stop`: stops the Airflow services and the example helpers (sshd, mail catcher, webhook receiver,
# HTTP endpoint) scripts/demo.sh started, and nothing else.
#
# Each service's and helper's pid is in $DEMO_HOME/<service>.pid (default DEMO_HOME: ./airflow_home); demo.sh started it in
# its own session, so its process group holds it and every process it started (API workers, LocalExecutor
# workers, DAG file processors). A pid is only acted on when it is still that service for that Airflow home.
# The database, logs and configuration stay: the next `make demo` reuses them.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
DEMO_HOME="${DEMO_HOME:-$REPO/airflow_home}"
STOP_TIMEOUT="${DEMO_STOP_TIMEOUT:-30}"
SERVICES=(triggerer dag-processor scheduler api-server sshd mail-catcher webhook-receiver http-endpoint)

if [ ! -d "$DEMO_HOME" ]; then
  echo "demo-stop: no demo Airflow home at $DEMO_HOME: nothing to stop"
  exit 0
fi
DEMO_HOME="$(cd "$DEMO_HOME" && pwd)"

label() {  # how a service or helper is named, and what its command line contains
  case "$1" in
    sshd) echo "sshd sshd";;
    mail-catcher|webhook-receiver|http-endpoint) echo "$1 demo_helpers";;
    *) echo "airflow_$1 airflow";;
  esac
}

is_ours() {  # pid is alive and is the service demo.sh started (same pid and start time, see demo.sh)
  local pid="$1" name="$2" started
  started="$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $20}')"
  [ -n "$started" ] && [ "$started" = "$(cat "$DEMO_HOME/.$name.start" 2>/dev/null)" ] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q "$(label "$name" | cut -d' ' -f2)"
}

group_alive() {  # any process left in process group $1
  [ -n "$(ps -o pid= -g "$1" 2>/dev/null)" ]
}

stopped=()
for name in "${SERVICES[@]}"; do
  pidfile="$DEMO_HOME/$name.pid"
  [ -f "$pidfile" ] || continue
  pid="$(cat "$pidfile" 2>/dev/null || true)"
  case "$pid" in ''|*[!0-9]*) rm -f "$pidfile"; continue;; esac
  if ! is_ours "$pid" "$name"; then
    echo "demo-stop: $(label "$name" | cut -d' ' -f1 | tr _ ' ') (pid $pid) is not running"
    rm -f "$pidfile" "$DEMO_HOME/.$name.start"
    continue
  fi
  # The service is the leader of its own process group (setsid in demo.sh): signal the group when it is, the
  # process alone otherwise.
  pgid="$(ps -o pgid= -p "$pid" | tr -d ' ')"
  if [ "$pgid" = "$pid" ]; then target="-$pid"; else target="$pid"; fi
  echo "demo-stop: stopping $(label "$name" | cut -d' ' -f1 | tr _ ' ') (pid $pid)"
  kill -TERM -- "$target" 2>/dev/null || true
  stopped+=("$name:$pid:$target")
done

for entry in ${stopped[@]+"${stopped[@]}"}; do
  IFS=: read -r name pid target <<< "$entry"
  deadline=$((SECONDS + STOP_TIMEOUT))
  while { [ "$target" = "-$pid" ] && group_alive "$pid"; } || kill -0 "$pid" 2>/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "demo-stop: $name (pid $pid) did not stop within ${STOP_TIMEOUT}s: killing it"
      kill -KILL -- "$target" 2>/dev/null || true
      sleep 1
      break
    fi
    sleep 0.5
  done
  rm -f "$DEMO_HOME/$name.pid" "$DEMO_HOME/.$name.start"
done

if [ "${#stopped[@]}" -eq 0 ]; then
  echo "demo-stop: no demo service or helper was running (Airflow home $DEMO_HOME)"
else
  echo "demo-stop: stopped ${#stopped[@]} service(s) and helper(s); the database, logs and deliveries stay in $DEMO_HOME"
fi
