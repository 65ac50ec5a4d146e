#!/usr/bin/env bash
# Build the cronium script-runtime Docker image (idempotent).
#
# Usage: build-runtime-image.sh [IMAGE]
#   IMAGE defaults to $CRONIUM_RUNTIME_IMAGE, then to cronium-runtime:2.
# Installed with the provider: `cronium-airflow runtime-image build [IMAGE]` runs it; in a clone,
# scripts/build-runtime-image.sh starts Docker first (scripts/ensure-docker.sh), then runs it.
#
# 1. Needs a Docker daemon that answers (`docker info`).
# 2. Reuses IMAGE if it already exists.
# 3. Builds the Dockerfile beside this script if the base image is present or can be
#    pulled (the pull is bounded by $CRONIUM_PULL_TIMEOUT seconds, default 60).
# 4. Otherwise builds the same image offline: debootstrap a minimal Debian
#    bookworm rootfs from the Debian mirror configured in this machine's apt
#    sources and `docker import` it.
# 5. Smoke-tests the result.
#
# Environment overrides:
#   CRONIUM_RUNTIME_IMAGE    image name (the positional argument wins)
#   CRONIUM_RUNTIME_OFFLINE  1 = skip the registry/Dockerfile attempt
#   CRONIUM_PULL_TIMEOUT     seconds allowed for `docker pull` (default 60)
#   CRONIUM_DEBIAN_MIRROR    mirror URL for debootstrap (default: from apt sources)
set -euo pipefail
umask 022

# The build context is the folder holding this script and the Dockerfile (symbolic links resolved).
CONTEXT_DIR="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)"

IMAGE="${1:-${CRONIUM_RUNTIME_IMAGE:-cronium-runtime:2}}"
BASE_IMAGE="debian:bookworm-slim"
SUITE="bookworm"
PULL_TIMEOUT="${CRONIUM_PULL_TIMEOUT:-60}"
# Keep in sync with the Dockerfile's apt-get install line.
INCLUDE_PKGS="bash,ca-certificates,coreutils,curl,jq,tzdata,python3,python3-requests,python3-aiohttp,nodejs,node-axios"

log() { printf '[runtime-image] %s\n' "$*"; }
warn() { printf '[runtime-image] WARNING: %s\n' "$*" >&2; }
die() { printf '[runtime-image] ERROR: %s\n' "$*" >&2; exit 1; }

# An image reference (name[:tag][@digest], maybe with a registry): never an option for docker, no spaces.
[[ "$IMAGE" =~ ^[A-Za-z0-9][A-Za-z0-9._/:@-]*$ ]] \
    || die "image name '$IMAGE' refused: letters, digits and . _ / : @ - (a letter or digit first), e.g. cronium-runtime:2"

# ---------------------------------------------------------------------------
smoke_check() {
    local out uid pyver nodever tools
    log "smoke check: docker run --rm --network none $IMAGE"
    # The tools a script may use (Cronium's runtime images carry them): each line names what failed.
    out="$(docker run --rm --network none "$IMAGE" bash -c '
        id -u; python3 --version; node --version
        curl --version >/dev/null || echo "curl missing"
        jq -n 1 >/dev/null || echo "jq missing"
        [ -r /etc/ssl/certs/ca-certificates.crt ] || echo "CA certificates missing"
        [ "$(TZ=Europe/Berlin date -d @0 +%Z)" = CET ] || echo "tzdata missing (TZ=Europe/Berlin is not CET)"
        python3 -c "import requests, aiohttp" || echo "Python requests/aiohttp missing"
        node -e "require(\"axios\")" || echo "Node.js axios missing"
        echo tools-checked' 2>&1)" || die "smoke check failed: could not run $IMAGE: $out"
    uid="$(sed -n 1p <<<"$out")"
    pyver="$(sed -n 2p <<<"$out")"
    nodever="$(sed -n 3p <<<"$out")"
    tools="$(sed -n '4,$p' <<<"$out")"
    [ "$uid" = "1000" ] || die "smoke check failed: expected uid 1000, got '$uid'"
    [[ "$pyver" == Python\ 3* ]] || die "smoke check failed: unexpected python3 --version: '$pyver'"
    [[ "$nodever" == v* ]] || die "smoke check failed: unexpected node --version: '$nodever'"
    [ "$tools" = "tools-checked" ] || die "smoke check failed: $tools"
    log "smoke check ok: uid=$uid, $pyver, node $nodever, curl, jq, tzdata, CA certificates, requests, aiohttp, axios"
}

# ---------------------------------------------------------------------------
# Dockerfile path: only when the base image is local or a pull succeeds fast.
try_dockerfile_build() {
    local -a build_args=()
    if [ "${CRONIUM_RUNTIME_OFFLINE:-0}" = "1" ]; then
        log "CRONIUM_RUNTIME_OFFLINE=1: skipping the registry/Dockerfile build"
        return 1
    fi
    if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
        log "base image $BASE_IMAGE is present locally"
    else
        log "trying: docker pull $BASE_IMAGE (timeout ${PULL_TIMEOUT}s)"
        if ! timeout "$PULL_TIMEOUT" docker pull "$BASE_IMAGE" >/dev/null 2>&1; then
            log "cannot pull $BASE_IMAGE (no registry reachable?); using the offline build"
            return 1
        fi
    fi
    # With `dockerd --bridge=none` there is no default bridge network, so the
    # build's RUN containers need the host network to reach the apt mirror.
    if ! docker network inspect bridge >/dev/null 2>&1; then
        build_args+=(--network host)
    fi
    log "building $IMAGE from $CONTEXT_DIR/Dockerfile"
    if docker build "${build_args[@]}" -t "$IMAGE" "$CONTEXT_DIR"; then
        return 0
    fi
    warn "docker build failed; falling back to the offline build"
    return 1
}

# ---------------------------------------------------------------------------
# Offline path helpers.

# Print the first URI of the apt sources serving suite $SUITE ("deb" type).
find_debian_mirror() {
    local f uri
    shopt -s nullglob
    # deb822 (*.sources): stanzas separated by blank lines.
    for f in /etc/apt/sources.list.d/*.sources; do
        uri="$(awk -v suite="$SUITE" '
            function flush() {
                if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ") \
                    && tolower(enabled) != "no" && uris != "") {
                    split(uris, u, " "); print u[1]; found = 1; exit
                }
                types = suites = uris = enabled = ""; key = ""
            }
            /^[[:space:]]*#/ { next }
            /^[[:space:]]*$/ { flush(); next }
            /^[[:space:]]/ {             # continuation line
                if (key == "uris") uris = uris " " $0
                else if (key == "suites") suites = suites " " $0
                else if (key == "types") types = types " " $0
                next
            }
            {
                key = tolower($0); sub(/:.*/, "", key)
                val = $0; sub(/^[^:]*:[[:space:]]*/, "", val)
                if (key == "types") types = val
                else if (key == "suites") suites = val
                else if (key == "uris") uris = val
                else if (key == "enabled") enabled = val
            }
            END { if (!found) flush() }
        ' "$f" | tr -s ' \t' '  ' | head -n 1)"
        uri="${uri//[[:space:]]/}"
        case "$uri" in
            http://* | https://* | file:/*) printf '%s\n' "$uri"; return 0 ;;
        esac
    done
    # One-line style: "deb [opts] URI suite components..."
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -r "$f" ] || continue
        uri="$(awk -v suite="$SUITE" '
            $1 == "deb" {
                i = 2
                if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                if ($(i + 1) == suite) { print $i; exit }
            }
        ' "$f")"
        case "$uri" in
            http://* | https://* | file:/*) printf '%s\n' "$uri"; return 0 ;;
        esac
    done
    return 1
}

WORK_DIR=""
cleanup() {
    local rc=$? mnt
    if [ -n "$WORK_DIR" ] && [ -d "$WORK_DIR" ]; then
        # debootstrap mounts /proc, /sys (and may bind /dev) inside the
        # target; if it died half-way those are still mounted and a plain
        # rm -rf would descend into the host's /dev or /proc. Unmount
        # everything below WORK_DIR (deepest first), then delete without
        # crossing file-system boundaries.
        while read -r mnt; do
            umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
        done < <(awk -v d="$WORK_DIR/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
        rm -rf --one-file-system "$WORK_DIR" || warn "could not fully remove $WORK_DIR"
    fi
    exit "$rc"
}

offline_build() {
    local mirror rootfs started=$SECONDS
    [ "$(id -u)" -eq 0 ] || die "the offline build (debootstrap/chroot) must run as root"

    if ! command -v debootstrap >/dev/null 2>&1; then
        log "installing debootstrap"
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y debootstrap
    fi

    if [ -n "${CRONIUM_DEBIAN_MIRROR:-}" ]; then
        mirror="$CRONIUM_DEBIAN_MIRROR"
    else
        mirror="$(find_debian_mirror)" \
            || die "no apt source for suite '$SUITE' found in /etc/apt/sources.list{,.d/}; set CRONIUM_DEBIAN_MIRROR"
    fi
    log "offline build: debootstrap $SUITE from $mirror"

    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM HUP
    WORK_DIR="$(mktemp -d "${TMPDIR:-/var/tmp}/cronium-runtime.XXXXXX")"
    rootfs="$WORK_DIR/rootfs"
    mkdir "$rootfs"

    log "running debootstrap --variant=minbase --include=$INCLUDE_PKGS (log: $WORK_DIR/debootstrap.log)"
    if ! debootstrap --variant=minbase --include="$INCLUDE_PKGS" \
        "$SUITE" "$rootfs" "$mirror" >"$WORK_DIR/debootstrap.log" 2>&1; then
        tail -n 40 "$WORK_DIR/debootstrap.log" >&2 || true
        [ -f "$rootfs/debootstrap/debootstrap.log" ] && tail -n 40 "$rootfs/debootstrap/debootstrap.log" >&2
        die "debootstrap failed (output above)"
    fi
    log "debootstrap done after $((SECONDS - started))s"

    log "configuring rootfs (user cronium 1000:1000, /cronium 0700)"
    # The tar's "." entry becomes the image's "/": must be world-traversable.
    chmod 0755 "$rootfs"
    chroot "$rootfs" groupadd --gid 1000 cronium
    chroot "$rootfs" useradd --uid 1000 --gid 1000 --home-dir /home/cronium \
        --create-home --shell /bin/bash cronium
    install -d -o 1000 -g 1000 -m 0700 "$rootfs/cronium"
    # debootstrap copies the build host's resolv.conf/hostname; docker
    # provides its own at run time, so drop the host's.
    : >"$rootfs/etc/resolv.conf"
    echo localhost >"$rootfs/etc/hostname"

    log "cleaning apt caches, docs and logs"
    chroot "$rootfs" apt-get clean
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
        "$rootfs"/var/cache/debconf/*-old "$rootfs"/var/lib/dpkg/*-old \
        "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
        "$rootfs"/usr/share/lintian "$rootfs"/usr/share/linda \
        "$rootfs"/tmp/* "$rootfs"/var/tmp/*
    # Keep the copyright files, drop the rest of /usr/share/doc.
    find "$rootfs/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
    find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
    find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
    find "$rootfs/var/log" -type f -delete

    log "importing rootfs as $IMAGE"
    tar --numeric-owner -C "$rootfs" -c . | docker import \
        --change 'USER 1000:1000' \
        --change 'WORKDIR /cronium' \
        --change 'CMD ["bash"]' \
        --change 'LABEL org.cronium.runtime.version=2' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
        - "$IMAGE" >/dev/null
    log "offline build finished in $((SECONDS - started))s"
}

# ---------------------------------------------------------------------------
timeout 20 docker info >/dev/null 2>&1 \
    || die "no Docker daemon answers (docker info failed): start Docker first (a clone of the provider has scripts/ensure-docker.sh)"

# Serialise concurrent builds of the same image on this host.
if command -v flock >/dev/null 2>&1; then
    exec 9>"${TMPDIR:-/tmp}/cronium-build-runtime-image.lock"
    flock 9
fi

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    log "image $IMAGE already exists; reusing it"
    exit 0
fi

if ! try_dockerfile_build; then
    offline_build
fi

smoke_check
log "image $IMAGE ready ($(docker image inspect --format '{{.Size}}' "$IMAGE" | awk '{ printf "%.1f MB", $1 / 1e6 }'))"
