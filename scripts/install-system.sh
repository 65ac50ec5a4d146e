#!/usr/bin/env bash
# Installs what the tests and the demo need from Debian's packages, starts Docker, builds the runtime image.
# Idempotent: a second run installs nothing and reuses the image.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-client)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
if [ "${#need[@]}" -gt 0 ]; then
  echo "[system] installing Debian packages: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

bash "$here/ensure-docker.sh"
bash "$here/build-runtime-image.sh"
