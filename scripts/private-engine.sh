#!/usr/bin/env bash
# A private Docker engine for machines that have no usable one (no daemon, too old a
# builder, no image registry): Debian 13's dockerd, buildx and compose in a debootstrap
# root, run under chroot with its own data root and socket. It never touches a system
# Docker: its socket is /run/filmrec-docker.sock inside the root, not /var/run/docker.sock.
#
#   scripts/private-engine.sh up        build the root once, start dockerd (idempotent)
#   scripts/private-engine.sh down      stop dockerd and undo every mount it made
#   scripts/private-engine.sh status    running or not, and where
#   scripts/private-engine.sh docker ARGS...   the engine's docker client, in this directory
#   scripts/private-engine.sh bin       print a directory holding a `docker` for PATH
#
# Needs root (chroot, mounts) and debootstrap (Debian's package); reaches only Debian's
# archive. State: FILMREC_ENGINE_DIR (default ~/.cache/filmrec/private-engine), outside
# the repository so that no build context or bind mount can reach into it. The checkout
# that calls it is bind-mounted into the root at its own path, so the paths Compose
# resolves (./lakehouse, build contexts) are the same inside and out.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENGINE_DIR="${FILMREC_ENGINE_DIR:-${HOME}/.cache/filmrec/private-engine}"
ROOT="${ENGINE_DIR}/root"
SOCKET_IN_ROOT=/run/filmrec-docker.sock
PIDFILE_IN_ROOT=/run/filmrec-dockerd.pid
LOG="${ENGINE_DIR}/dockerd.log"
SUITE="${FILMREC_ENGINE_SUITE:-trixie}"
MIRROR="${FILMREC_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# The first Debian release whose docker.io has BuildKit and whose compose accepts
# additional_contexts: Debian 12's 20.10 builder has neither (docs/compose.md).
PACKAGES=(docker.io docker-cli docker-buildx docker-compose iptables ca-certificates)

log() { printf '==> [private engine] %s\n' "$*" >&2; }
die() {
    printf 'ERROR: [private engine] %s\n' "$*" >&2
    exit 1
}

in_root() { chroot "$ROOT" "$@"; }

mounted() { mountpoint -q "$1"; }

# Bind the root onto itself first: dockerd's `docker import` and overlay mounts need the
# root to be a mount point ("remount /" fails otherwise); then the kernel's filesystems.
mount_root() {
    mounted "$ROOT" || mount --bind "$ROOT" "$ROOT"
    mounted "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
    mounted "$ROOT/sys" || mount --rbind /sys "$ROOT/sys"
    mounted "$ROOT/dev" || mount --rbind /dev "$ROOT/dev"
    cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
    mount_checkout "$REPO"
}

# The checkout at the same path inside the root (idempotent; one per checkout).
mount_checkout() {
    local dir="$1"
    mkdir -p "${ROOT}${dir}"
    mounted "${ROOT}${dir}" || mount --bind "$dir" "${ROOT}${dir}"
}

unmount_all() {
    # Deepest first; lazily, so a mount that a dying process still holds goes too.
    local point
    while read -r point; do
        umount -l "$point" 2> /dev/null || true
    done < <(awk -v root="$ROOT" '$5 == root || index($5, root "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r)
}

build_root() {
    [[ -x "$ROOT/usr/sbin/dockerd" ]] && return 0
    command -v debootstrap > /dev/null || die "debootstrap is missing: apt-get install -y debootstrap"
    log "building a Debian ${SUITE} root for the engine (about a minute, once)"
    mkdir -p "$ENGINE_DIR"
    if [[ ! -x "$ROOT/usr/bin/apt-get" ]]; then
        rm -rf "$ROOT"
        debootstrap --variant=minbase "$SUITE" "$ROOT" "$MIRROR" > "${ENGINE_DIR}/debootstrap.log" 2>&1 \
            || die "debootstrap failed: see ${ENGINE_DIR}/debootstrap.log"
    fi
    mount_root
    in_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${PACKAGES[@]}" > "${ENGINE_DIR}/apt.log" 2>&1 || die "apt-get failed: see ${ENGINE_DIR}/apt.log"
}

pid_running() {
    local pid
    pid="$(cat "${ROOT}${PIDFILE_IN_ROOT}" 2> /dev/null)" || return 1
    [[ -n "$pid" ]] && kill -0 "$pid" 2> /dev/null
}

engine_docker() { in_root /usr/bin/docker -H "unix://${SOCKET_IN_ROOT}" "$@"; }

up() {
    [[ "$(id -u)" -eq 0 ]] || die "the private engine needs root (chroot and mounts)"
    build_root
    mount_root
    if pid_running && engine_docker info > /dev/null 2>&1; then
        return 0
    fi
    log "starting dockerd (log: ${LOG})"
    # Networking as usual (Debian 13's iptables in the root, NAT for builds that fetch
    # packages); cgroupfs: there is no systemd to delegate cgroups to.
    # In a mount namespace of its own whose root *is* the engine's root (pivot_root, then
    # the host's tree unmounted), not a chroot: under chroot, `docker exec` (so every
    # healthcheck) lands in the host's root instead of the container's.
    # shellcheck disable=SC2016  # the inner shell's variables
    unshare --mount --propagation private -- /bin/sh -c '
        cd "$0" && mkdir -p .host && pivot_root . .host && cd / && umount -l /.host && rmdir /.host
        exec "$@"' "$ROOT" /usr/sbin/dockerd \
        --host "unix://${SOCKET_IN_ROOT}" --pidfile "$PIDFILE_IN_ROOT" --data-root /var/lib/docker \
        --exec-opt native.cgroupdriver=cgroupfs \
        >> "$LOG" 2>&1 < /dev/null &
    disown
    local waited=0
    until engine_docker info > /dev/null 2>&1; do
        ((waited < 60)) || die "dockerd did not answer within 60 s: see ${LOG}"
        sleep 1
        waited=$((waited + 1))
    done
    log "dockerd $(engine_docker version --format '{{.Server.Version}}') is up"
}

down() {
    if [[ -d "$ROOT" ]]; then
        if pid_running; then
            local pid
            pid="$(cat "${ROOT}${PIDFILE_IN_ROOT}")"
            log "stopping dockerd (pid ${pid})"
            kill -TERM "$pid" 2> /dev/null || true
            local waited=0
            while kill -0 "$pid" 2> /dev/null && ((waited < 60)); do
                sleep 1
                waited=$((waited + 1))
            done
            kill -KILL "$pid" 2> /dev/null || true
        fi
        # containerd and shims that outlived dockerd (a killed daemon leaves them).
        local proc
        for proc in /proc/[0-9]*; do
            [[ "$(readlink "${proc}/root" 2> /dev/null)" == "$ROOT" ]] && kill -KILL "${proc#/proc/}" 2> /dev/null
        done
        unmount_all
    fi
    return 0
}

status() {
    if [[ -d "$ROOT" ]] && pid_running; then
        echo "running: dockerd in ${ROOT}, socket ${ROOT}${SOCKET_IN_ROOT}"
    else
        echo "not running (state: ${ENGINE_DIR})"
        return 1
    fi
}

# A directory with a `docker` that runs the engine's client in the caller's directory,
# for PATH: init.sh and the Makefile then call `docker` as they would anywhere.
shim_dir() {
    local dir="${ENGINE_DIR}/bin"
    mkdir -p "$dir"
    cat > "${dir}/docker" << EOF
#!/bin/sh
# The private engine's docker client (scripts/private-engine.sh), run in the caller's directory.
exec chroot "${ROOT}" /bin/sh -c 'cd "\$0" && exec /usr/bin/docker -H unix://${SOCKET_IN_ROOT} "\$@"' "\$PWD" "\$@"
EOF
    chmod 755 "${dir}/docker"
    echo "$dir"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    bin) shim_dir ;;
    docker)
        shift
        # shellcheck disable=SC2016  # $0 and $@ are the inner shell's
        in_root /bin/sh -c 'cd "$0" && exec /usr/bin/docker -H "unix://'"${SOCKET_IN_ROOT}"'" "$@"' "$PWD" "$@"
        ;;
    *)
        sed -n '2,17p' "$0"
        exit 2
        ;;
esac
