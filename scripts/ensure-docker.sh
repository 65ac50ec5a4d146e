#!/usr/bin/env bash
# Make sure a usable Docker daemon is available on this machine (idempotent).
#
#  * installs Debian's docker.io package if dockerd is missing;
#  * does nothing more if `docker info` already works (an existing daemon,
#    however it was started, is left alone);
#  * otherwise starts `dockerd` detached from the calling shell, logging to
#    $CRONIUM_DOCKERD_LOG, and waits up to $CRONIUM_DOCKERD_TIMEOUT seconds
#    for it to answer.
#
# Environment overrides:
#   CRONIUM_DOCKERD_LOG      log file            (default /var/log/cronium-dockerd.log)
#   CRONIUM_DOCKERD_TIMEOUT  seconds to wait     (default 60)
#   CRONIUM_DOCKERD_FLAGS    dockerd flags, space separated; replaces the
#                            defaults below when set.
#
# Default flags: --bridge=none (no docker0 bridge: cronium containers run with
# --network none, and creating a bridge needs kernel/network privileges that
# VMs and nested containers often lack) plus --iptables=false and, when the
# daemon knows it, --ip6tables=false, so dockerd never touches the host
# firewall (with iptables enabled it would, e.g., set the FORWARD policy to
# DROP). Nothing here needs NAT or published ports.
set -euo pipefail

LOG_FILE="${CRONIUM_DOCKERD_LOG:-/var/log/cronium-dockerd.log}"
TIMEOUT="${CRONIUM_DOCKERD_TIMEOUT:-60}"

log() { printf '[ensure-docker] %s\n' "$*" >&2; }
die() { printf '[ensure-docker] ERROR: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

docker_ok() {
    # `docker info` talks to the daemon; a bare client prints an error and
    # exits non-zero when nothing answers.
    timeout 20 docker info >/dev/null 2>&1
}

# --- 1. install -------------------------------------------------------------
if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
    log "dockerd/docker not found; installing Debian's docker.io package"
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y docker.io
    command -v dockerd >/dev/null 2>&1 || die "docker.io installed but dockerd is still not on PATH"
fi

# --- 2. already running? ----------------------------------------------------
if docker_ok; then
    log "docker daemon already reachable; leaving it alone"
    exit 0
fi

# --- 3. start dockerd -------------------------------------------------------
if pgrep -x dockerd >/dev/null 2>&1; then
    # A daemon exists but does not answer (yet): starting a second one would
    # only fail on the pid file / socket, so wait for this one instead.
    log "a dockerd process exists but is not answering yet; waiting for it"
else
    if [ -n "${CRONIUM_DOCKERD_FLAGS:-}" ]; then
        read -r -a flags <<<"$CRONIUM_DOCKERD_FLAGS"
    else
        flags=(--bridge=none --iptables=false)
        if dockerd --help 2>/dev/null | grep -q -- '--ip6tables'; then
            flags+=(--ip6tables=false)
        fi
    fi
    as_root mkdir -p "$(dirname "$LOG_FILE")"
    log "starting: dockerd ${flags[*]} (log: $LOG_FILE)"
    # setsid + nohup: own session, immune to SIGHUP, stdio detached from the
    # caller, so the daemon outlives this script and the calling shell.
    if [ "$(id -u)" -eq 0 ]; then
        setsid nohup dockerd "${flags[@]}" >>"$LOG_FILE" 2>&1 </dev/null &
    else
        sudo sh -c 'setsid nohup dockerd "$@" >>"$0" 2>&1 </dev/null &' "$LOG_FILE" "${flags[@]}"
    fi
fi

waited=0
until docker_ok; do
    if [ "$waited" -ge "$TIMEOUT" ]; then
        tail -n 20 "$LOG_FILE" >&2 2>/dev/null || true
        die "docker daemon did not become ready within ${TIMEOUT}s; see $LOG_FILE"
    fi
    if ! pgrep -x dockerd >/dev/null 2>&1; then
        tail -n 20 "$LOG_FILE" >&2 2>/dev/null || true
        die "dockerd exited during start-up; see $LOG_FILE"
    fi
    sleep 1
    waited=$((waited + 1))
done
log "docker daemon ready after ~${waited}s"
