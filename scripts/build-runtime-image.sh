#!/usr/bin/env bash
# Build the cronium script-runtime Docker image (idempotent), from a clone: starts a Docker daemon when none
# answers, then runs the build script the provider package ships with its build context
# (cronium_provider/templates/runtime_image/; `cronium-airflow runtime-image build` runs the same script).
#
# Usage: scripts/build-runtime-image.sh [IMAGE]   (settings: the header of that script)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bash "$here/ensure-docker.sh"
exec bash "$here/../cronium_provider/templates/runtime_image/build-runtime-image.sh" "$@"
