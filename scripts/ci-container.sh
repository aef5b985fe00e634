#!/usr/bin/env bash
# Build the project's real Dockerfile with buildah and test the image it makes, with no Docker engine
# and no registry (see shared/notes/container-builds.md):
#
#   1. a stand-in for python:3.11-slim is debootstrapped once (Debian bookworm, Python 3.11) and cached as
#      a tarball under $CACHE; it is imported under the exact name the Dockerfile's FROM uses;
#   2. `buildah bud --pull=never` builds ./Dockerfile unchanged;
#   3. the image's own ENTRYPOINT + CMD run as the image's USER in a working container (`buildah run
#      --isolation chroot --network host`) on a free loopback port, with the container's root filesystem
#      mounted read-only and only the image's VOLUMEs (/var/lib/sensor-connector, /tmp) writable;
#   4. from outside: gRPC health SERVING, a FileSensor lifecycle (RUNNING -> file appears -> SUCCEEDED ->
#      Delete), the server's UID is not 0, SIGTERM stops it gracefully; the image size is printed;
#   5. inside: the image's packages are exactly those pinned in constraints.txt, and SqlSensor's
#      PostgreSQL driver (pg8000) imports.
#
# Everything it made is removed on exit, failure or not (the cached stand-in base stays).
# Needs root (buildah's storage, debootstrap); installs buildah and debootstrap with apt-get if missing.
# Env: XDG_CACHE_HOME (cache root), EXTRAS (build arg, default s3,gcs,azure),
#      SMOKE_PYTHON (python with grpcio + flyteidl; default ./.venv/bin/python, made by `dev.py install`).
set -euo pipefail

START=$SECONDS
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/flyte-sensor-connector
SUITE=bookworm                                   # python:3.11-slim is Debian bookworm + CPython 3.11
BASE_IMAGE=docker.io/library/python:3.11-slim    # what `FROM python:3.11-slim` resolves to
BASE_TAR=$CACHE/base/python-3.11-slim-standin-$SUITE.tar
IMAGE=localhost/flyte-sensor-connector:ci
CTR=flyte-sensor-connector-ci
EXTRAS=${EXTRAS-s3,gcs,azure,postgres}
SMOKE_PYTHON=${SMOKE_PYTHON:-$ROOT/.venv/bin/python}

log() { printf '\n==> %s\n' "$*"; }
die() { printf 'ci-container: FAILED: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (buildah storage and debootstrap need it)"

# --- tools ---------------------------------------------------------------------------------------------
need=()
command -v buildah >/dev/null || need+=(buildah)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v ss >/dev/null || need+=(iproute2)
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ ! -x "$SMOKE_PYTHON" ]; then
    log "creating the project venv for the smoke client (python3 dev.py install)"
    python3 "$ROOT/dev.py" install
fi

# --- clean-up, on every exit ---------------------------------------------------------------------------
WORK=""
MOUNTS=()
RUN_PID=""
SERVER_PID=""
cleanup() {
    local rc=$?
    set +e
    [ -n "$SERVER_PID" ] && kill -KILL "$SERVER_PID" 2>/dev/null
    [ -n "$RUN_PID" ] && kill "$RUN_PID" 2>/dev/null && wait "$RUN_PID" 2>/dev/null
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount "${MOUNTS[i]}" 2>/dev/null; done
    buildah rm "$CTR" >/dev/null 2>&1
    buildah rmi -f "$IMAGE" >/dev/null 2>&1
    [ -n "$WORK" ] && rm -rf "$WORK"
    if [ "$rc" = 0 ]; then
        printf '\nci-container: passed in %ss\n' "$((SECONDS - START))"
    else
        printf '\nci-container: FAILED (exit %s) after %ss\n' "$rc" "$((SECONDS - START))" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Left over from an interrupted run?
buildah rm "$CTR" >/dev/null 2>&1 || true
buildah rmi -f "$IMAGE" >/dev/null 2>&1 || true
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ci-container.XXXXXX")

# --- 1. the stand-in base image ------------------------------------------------------------------------
make_base_tar() {
    local rootfs=$CACHE/base/rootfs.partial mirror
    rm -rf "$rootfs"
    mkdir -p "$rootfs"
    # The mirror this machine's apt uses, else debootstrap's own default.
    mirror=$(grep -hs -E '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
        | grep -v -- '-security' | sed -E 's/^URIs:[[:space:]]*//; s/^deb (\[[^]]*\] )?//' \
        | awk '{print $1}' | grep -m1 -E '/debian/?$' || true)
    log "debootstrap $SUITE (python3) into $rootfs ${mirror:+from $mirror} (first run only, a few minutes)"
    debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
        "$SUITE" "$rootfs" ${mirror:+"$mirror"} >"$CACHE/base/debootstrap.log" 2>&1 \
        || { tail -20 "$CACHE/base/debootstrap.log" >&2; die "debootstrap failed"; }
    # Like the official image: `python` exists (it lives in /usr/local/bin there).
    ln -sf /usr/bin/python3 "$rootfs/usr/local/bin/python"
    # pip inside the build must trust what this machine trusts (its CA bundle may hold a proxy's CA).
    cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
    tar -C "$rootfs" --numeric-owner -cf "$BASE_TAR.partial" .
    mv "$BASE_TAR.partial" "$BASE_TAR"
    rm -rf "$rootfs"
}

if buildah inspect --type image "$BASE_IMAGE" >/dev/null 2>&1; then
    log "base $BASE_IMAGE is already in buildah's storage"
else
    mkdir -p "$CACHE/base"
    [ -s "$BASE_TAR" ] || make_base_tar
    log "importing the stand-in $BASE_TAR as $BASE_IMAGE"
    base_ctr=$(buildah from --pull=never scratch)
    base_mnt=$(buildah mount "$base_ctr")
    tar -C "$base_mnt" --numeric-owner -xf "$BASE_TAR"
    buildah umount "$base_ctr" >/dev/null
    buildah config \
        --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --env LANG=C.UTF-8 \
        --env PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
        --cmd python3 \
        --label io.flyte.sensor-connector.ci-standin="debootstrap $SUITE, not the official image" \
        "$base_ctr"
    buildah commit --quiet --rm "$base_ctr" "$BASE_IMAGE" >/dev/null
fi

# --- 2. build the real Dockerfile ----------------------------------------------------------------------
log "buildah bud ./Dockerfile (EXTRAS=$EXTRAS)"
build_start=$SECONDS
revision=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$ROOT/connector/__init__.py")
[ -n "$version" ] || die "no __version__ in connector/__init__.py"
buildah bud --isolation chroot --network host --pull=never \
    --build-arg "EXTRAS=$EXTRAS" \
    --build-arg "VERSION=$version" \
    --build-arg "REVISION=$revision" \
    --build-arg "CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    -t "$IMAGE" -f "$ROOT/Dockerfile" "$ROOT" >"$WORK/build.log" 2>&1 \
    || { tail -40 "$WORK/build.log" >&2; die "buildah bud failed"; }
echo "built $IMAGE in $((SECONDS - build_start))s"

# --- what the image says about itself ------------------------------------------------------------------
read_config() {
    # One line each: user; entrypoint+cmd (\x1f-separated); exposed ports; volumes; count of OCI
    # labels; those labels.
    buildah inspect --type image "$IMAGE" | python3 -c '
import json, sys
c = json.load(sys.stdin)["OCIv1"]["config"]
print(c.get("User", ""))
print("\x1f".join((c.get("Entrypoint") or []) + (c.get("Cmd") or [])))
print(" ".join(sorted(c.get("ExposedPorts") or {})))
print(" ".join(sorted(c.get("Volumes") or {})))
labels = c.get("Labels") or {}
print(sum(k.startswith("org.opencontainers.image.") for k in labels))
oci = {k.replace("org.opencontainers.image.", ""): v for k, v in labels.items() if "opencontainers" in k}
print("; ".join(f"{k}={v}" for k, v in sorted(oci.items())))
'
}
{
    read -r IMG_USER
    IFS=$'\x1f' read -r -a IMG_ARGV
    read -r IMG_PORTS
    read -r IMG_VOLUMES
    read -r IMG_OCI
    read -r IMG_LABELS
} < <(read_config)
echo "user=$IMG_USER argv=${IMG_ARGV[*]} exposed=[$IMG_PORTS] volumes=[$IMG_VOLUMES]"
echo "labels: $IMG_LABELS"
[ -n "$IMG_USER" ] || die "the image sets no USER"
case "${IMG_USER%%:*}" in 0 | root) die "the image runs as root" ;; esac
[ "${IMG_ARGV[*]}" = "sensor-connector serve" ] || die "entrypoint+cmd is '${IMG_ARGV[*]}', not 'sensor-connector serve'"
[ "$IMG_PORTS" = "8000/tcp 9090/tcp" ] || die "exposed ports are '$IMG_PORTS'"
[ "$IMG_OCI" -ge 5 ] || die "only $IMG_OCI org.opencontainers.image.* labels"
UID_NUM=${IMG_USER%%:*}
GID_NUM=${IMG_USER#*:}

buildah from --pull=never --name "$CTR" "$IMAGE" >/dev/null
# `buildah run` gives each VOLUME of the image a fresh anonymous copy, mounted in an order that varies
# from run to run relative to -v binds of the same path. The test binds its own dirs there, so the
# working container (not the image) forgets the VOLUMEs: then what the server writes is what we see.
for volume in $IMG_VOLUMES; do buildah config --volume "$volume-" "$CTR"; done
MNT=$(buildah mount "$CTR")
[ ! -e "$MNT/src" ] || die "the build sources (/src) leaked into the final image"
! ls "$MNT"/opt/sensor-connector/bin/pip* >/dev/null 2>&1 || die "pip is still in the runtime venv"
find "$MNT/etc" "$MNT/opt" "$MNT/var/lib/sensor-connector" -name '*.key' -print -quit | grep -q . \
    && die "a key file is baked into the image"

# --- size ----------------------------------------------------------------------------------------------
size_of() { buildah images --format '{{.Size}}' --filter "reference=$1" | head -1; }
venv_mb=$(du -sm "$MNT/opt/sensor-connector" | cut -f1)
echo "image size: $(size_of "$IMAGE") ($IMAGE on the stand-in base)"
echo "stand-in base size: $(size_of "$BASE_IMAGE") (the official python:3.11-slim is smaller, roughly 125-130 MB; not measured here)"
echo "added by this project (/opt/sensor-connector venv, EXTRAS=$EXTRAS): ${venv_mb} MB"
echo "largest in the venv (MB): $(du -sm "$MNT"/opt/sensor-connector/lib/python3*/site-packages/* \
    | sort -rn | head -8 | awk '{n = split($2, p, "/"); printf "%s %s, ", p[n], $1}' | sed 's/, $//')"

# --- what is installed: exactly constraints.txt, and the PostgreSQL driver SqlSensor uses ---------------
log "installed packages vs. constraints.txt; SqlSensor's driver"
buildah run --isolation chroot --user "$IMG_USER" "$CTR" -- /opt/sensor-connector/bin/python -c '
import importlib.metadata as md
for d in sorted(md.distributions(), key=lambda d: d.metadata["Name"].lower()):
    print(d.metadata["Name"] + "==" + d.version)
' >"$WORK/installed.txt"
"$SMOKE_PYTHON" - "$ROOT/constraints.txt" "$WORK/installed.txt" <<'PY' || die "the image does not hold what constraints.txt pins"
import re, sys
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
pins = {}
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if "==" in line:
        name, version = line.split("==", 1)
        pins[norm(name.split("[")[0])] = version.split(";")[0].strip()
installed = {}
for line in open(sys.argv[2]):
    if "==" in line:
        name, version = line.strip().split("==", 1)
        installed[norm(name)] = version
installed.pop("flyte-sensor-connector", None)
wrong = {n: (v, pins.get(n)) for n, v in installed.items() if pins.get(n) != v}
print(f"{len(installed)} packages installed, all at the versions constraints.txt pins" if not wrong else f"not as pinned (installed, pinned): {wrong}")
sys.exit(1 if wrong else 0)
PY
buildah run --isolation chroot --user "$IMG_USER" "$CTR" -- /opt/sensor-connector/bin/python -c \
    'import pg8000, sqlalchemy; from sensors.sql import SqlSensor; print("SqlSensor imports: SQLAlchemy", sqlalchemy.__version__, "with pg8000")' \
    || die "SqlSensor or its PostgreSQL driver does not import in the image"

# --- 3. run the image's own entrypoint + cmd, read-only root -------------------------------------------
mkdir -p "$WORK/state" "$WORK/tmp" "$WORK/data" "$WORK/keys"
head -c 48 /dev/urandom | base64 >"$WORK/keys/signing.key"
chmod 0400 "$WORK/keys/signing.key"
chown "$UID_NUM:$GID_NUM" "$WORK/state" "$WORK/tmp" "$WORK/data" "$WORK/keys/signing.key"
chmod 0700 "$WORK/state"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
VOLUME_ARGS=(
    -v "$WORK/state:/var/lib/sensor-connector" -v "$WORK/tmp:/tmp" -v "$WORK/data:/data"
    -v "$WORK/keys:/etc/sensor-connector/keys:ro"
)

# A first run of `true` and a few mkdir/touch make the mount points buildah needs (/run/.containerenv,
# /etc/hosts, the -v targets) in the working container's layer (not in the image); then that root
# filesystem is bind-mounted read-only onto itself, so whatever the server writes outside its volumes
# fails with EROFS, as under Kubernetes' readOnlyRootFilesystem. Only /run/.containerenv, which buildah
# itself rewrites on every run, gets a writable file bound over it.
buildah run --isolation chroot --network host --user "$IMG_USER" "${VOLUME_ARGS[@]}" "$CTR" -- true
mkdir -p "$MNT/data" "$MNT/etc/sensor-connector/keys" "$MNT/run"
touch "$MNT/run/.containerenv" "$MNT/etc/hosts" "$MNT/etc/resolv.conf" "$MNT/etc/hostname"
mount --bind "$MNT" "$MNT"
MOUNTS+=("$MNT")
mount -o remount,bind,ro "$MNT"
touch "$WORK/containerenv"
mount --bind "$WORK/containerenv" "$MNT/run/.containerenv"
MOUNTS+=("$MNT/run/.containerenv")
touch "$MNT/.rw-probe" 2>/dev/null && die "the read-only bind of the root filesystem is writable"
buildah run --isolation chroot --user 0:0 "$CTR" -- sh -c 'touch /.rw-probe' 2>/dev/null \
    && die "the container's root filesystem is writable, even for root"
echo "root filesystem read-only: a write to / fails even as root; writable: /var/lib/sensor-connector, /tmp"

LOG=""
show_log() { echo "--- server log ---" >&2; cat "$LOG" >&2; }

# start_server NAME [-e VAR=VALUE...]: the image's entrypoint+cmd as its USER; sets PORT and SERVER_PID.
start_server() {
    local name=$1
    shift
    PORT=$(free_port)
    METRICS_PORT=$(free_port)
    LOG=$WORK/server-$name.log
    log "$name: buildah run as $IMG_USER: ${IMG_ARGV[*]} (gRPC :$PORT, metrics :$METRICS_PORT, read-only root)"
    buildah run --isolation chroot --network host --user "$IMG_USER" "${VOLUME_ARGS[@]}" \
        -e "SENSOR_CONNECTOR_PORT=$PORT" -e "SENSOR_CONNECTOR_METRICS_PORT=$METRICS_PORT" \
        -e SENSOR_CONNECTOR_DRAIN_PERIOD=2 -e SENSOR_CONNECTOR_GRACE_PERIOD=5 \
        -e SENSOR_CONNECTOR_LOCAL_ROOTS=/data "$@" \
        "$CTR" -- "${IMG_ARGV[@]}" >"$LOG" 2>&1 &
    RUN_PID=$!
    SERVER_PID=""
    for _ in $(seq 1 120); do
        SERVER_PID=$(ss -Hltnp "sport = :$PORT" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2 || true)
        [ -n "$SERVER_PID" ] && break
        kill -0 "$RUN_PID" 2>/dev/null || { show_log; die "$name: the server exited before listening"; }
        sleep 0.5
    done
    [ -n "$SERVER_PID" ] || { show_log; die "$name: nothing listens on :$PORT after 60s"; }
    local uid gid
    uid=$(awk '/^Uid:/ {print $2}' "/proc/$SERVER_PID/status")
    gid=$(awk '/^Gid:/ {print $2}' "/proc/$SERVER_PID/status")
    echo "server pid $SERVER_PID runs as uid=$uid gid=$gid, root=$(readlink "/proc/$SERVER_PID/root")"
    [ "$uid" != 0 ] || die "$name: the server runs as root"
    [ "$uid" = "$UID_NUM" ] || die "$name: the server runs as uid $uid, not the image's $UID_NUM"
    "$SMOKE_PYTHON" "$ROOT/scripts/smoke_lifecycle.py" health "127.0.0.1:$PORT" --wait 60 \
        || { show_log; die "$name: health check"; }
}

# stop_server NAME: SIGTERM, a graceful stop within the drain (2 s here) and grace periods, a clean log.
stop_server() {
    local name=$1
    log "$name: SIGTERM, graceful stop"
    kill -TERM "$SERVER_PID"
    for _ in $(seq 1 30); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$SERVER_PID" 2>/dev/null && { show_log; die "$name: the server still runs 15s after SIGTERM"; }
    SERVER_PID=""
    # buildah run's own status is not the server's here: buildah 1.28 panics while removing its mount
    # points from the read-only root after the command has exited. The server is judged by its log.
    wait "$RUN_PID" 2>/dev/null || true
    RUN_PID=""
    grep -q "received SIGTERM" "$LOG" || { show_log; die "$name: the server did not log the SIGTERM"; }
    grep -qE "INFO +connector.server: stopped|\"stopped\"" "$LOG" \
        || { show_log; die "$name: the server did not log a graceful stop"; }
    grep -qiE 'traceback|read-only file system' "$LOG" && { show_log; die "$name: errors in the server log"; }
    echo "--- server log ---"
    grep -v -e '^panic: ' -e '^\[signal SIGSEGV' -e '^goroutine ' -e '^[[:space:]]' -e '^github.com/' \
        -e '^main\.' -e '^$' "$LOG" || true
}

# --- 4. checks from outside ----------------------------------------------------------------------------
# As the Helm chart runs it: the signing key comes from a mounted file.
start_server key-file -e SENSOR_CONNECTOR_SIGNING_KEY_FILE=/etc/sensor-connector/keys/signing.key
"$SMOKE_PYTHON" "$ROOT/scripts/smoke_lifecycle.py" filesensor "127.0.0.1:$PORT" \
    --path /data/ready.txt --create "$WORK/data/ready.txt" \
    || { show_log; die "key-file: FileSensor lifecycle"; }
stop_server key-file
[ ! -e "$WORK/state/signing.key" ] || die "key-file: a key was generated although one was given"

# As a bare `docker run --read-only` runs it: no key file, so one is generated in the state VOLUME.
start_server generated-key
key_stat=$(stat -c '%a %u' "$WORK/state/signing.key" 2>/dev/null || true)
cmp -s "$WORK/state/signing.key" "/proc/$SERVER_PID/root/var/lib/sensor-connector/signing.key" \
    || die "generated-key: the server's state dir is not the mounted volume"
if [ "$key_stat" != "600 $UID_NUM" ]; then
    show_log
    ls -la "$WORK/state" >&2
    die "generated-key: state/signing.key is '$key_stat', not mode 600 of $UID_NUM"
fi
echo "generated key: /var/lib/sensor-connector/signing.key, mode 600, owner $UID_NUM"

# The README's "Run with Docker" smoke test: `sensor-connector try` from the host against the container.
log "generated-key: sensor-connector try (as the README says)"
TRY_OUT=$WORK/try.out
"$(dirname "$SMOKE_PYTHON")/sensor-connector" try "127.0.0.1:$PORT" FileSensor --input path=/data/try.txt \
    --interval 0.5 --timeout 120 >"$TRY_OUT" 2>&1 &
TRY_PID=$!
for _ in $(seq 1 120); do grep -qs RUNNING "$TRY_OUT" && break; sleep 0.5; done
grep -q RUNNING "$TRY_OUT" || { cat "$TRY_OUT"; die "try: never reported RUNNING"; }
touch "$WORK/data/try.txt"
wait "$TRY_PID" || { cat "$TRY_OUT"; die "try: did not exit 0 after the file appeared"; }
grep -q SUCCEEDED "$TRY_OUT" || { cat "$TRY_OUT"; die "try: no SUCCEEDED"; }
tail -n 2 "$TRY_OUT"
stop_server generated-key
