#!/usr/bin/env bash
# The Flyte 2 interop suite (interop/flyte2): Flyte 2's own connector plugin (github.com/flyteorg/flyte/v2
# v2.0.43, flyteplugins/go/tasks/plugins/webapi/connector, through its webapi machinery) drives live
# `sensor-connector serve` processes on loopback. Then one server answers a Flyte 1 FileSensor through
# propeller's plugin (interop/propeller) and a Flyte 2 FileSensor through Flyte 2's, in one run.
#
# The module proxy does not serve github.com/flyteorg/flyte/v2: interop/flyte2/go.mod replaces it with
# ../../../shared/flyte-v2, i.e. shared/flyte-v2 beside the repository's clone (where CI puts it). From a
# checkout elsewhere set FLYTE_V2_SRC (default: shared/flyte-v2 beside the clone, or beside the nearest
# folder above it that has one); when the go.mod path does not lead there, a temporary go.work replaces it.
# Needs Go 1.26.5 or newer and the repo's .venv (created if missing). A cold run downloads ~1.1 GB of
# modules into Go's module cache and compiles for several CPU-minutes.
set -euo pipefail

START=$SECONDS
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${SENSOR_CONNECTOR_VENV:-$ROOT/.venv}
MODULE=$ROOT/interop/flyte2
# Default: shared/flyte-v2 beside the clone (CI), else beside the nearest folder above it that has one
# (a worktree under .../wt/NAME of a checkout whose shared/ is higher up).
if [ -z "${FLYTE_V2_SRC:-}" ]; then
    FLYTE_V2_SRC=$ROOT/../shared/flyte-v2
    dir=$ROOT
    while [ "$dir" != / ] && [ ! -f "$dir/../shared/flyte-v2/go.mod" ]; do dir=$(dirname "$dir"); done
    [ -f "$dir/../shared/flyte-v2/go.mod" ] && FLYTE_V2_SRC=$dir/../shared/flyte-v2
fi

command -v go >/dev/null || { echo "ci-interop-flyte2: FAILED: go is not on PATH" >&2; exit 1; }
[ -f "$FLYTE_V2_SRC/go.mod" ] || {
    echo "ci-interop-flyte2: FAILED: no Flyte 2 source subset at $FLYTE_V2_SRC (set FLYTE_V2_SRC)" >&2
    exit 1
}
FLYTE_V2_SRC=$(cd "$FLYTE_V2_SRC" && pwd)
if [ ! -x "$VENV/bin/sensor-connector" ]; then
    (cd "$ROOT" && python3 dev.py install)
fi
export GONOSUMDB=github.com/flyteorg

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ci-interop-flyte2.XXXXXX")
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# go.mod's replace, resolved; a go.work points at FLYTE_V2_SRC when that is somewhere else.
REPLACED=$(cd "$MODULE" && go mod edit -json | python3 -c \
    'import json, sys; print(next(r["New"]["Path"] for r in json.load(sys.stdin)["Replace"] if r["Old"]["Path"] == "github.com/flyteorg/flyte/v2"))')
if [ "$(cd "$MODULE" && cd "$REPLACED" 2>/dev/null && pwd)" != "$FLYTE_V2_SRC" ]; then
    cat >"$WORK/go.work" <<EOF
go 1.26.5

use $MODULE

replace github.com/flyteorg/flyte/v2 => $FLYTE_V2_SRC
EOF
    export GOWORK=$WORK/go.work
    echo "==> Flyte 2 source: $FLYTE_V2_SRC (through $GOWORK)"
else
    echo "==> Flyte 2 source: $FLYTE_V2_SRC (go.mod's replace)"
fi
echo "==> go $(go env GOVERSION); GOMODCACHE=$(go env GOMODCACHE) GOCACHE=$(go env GOCACHE)"

cd "$MODULE"
go mod download
t0=$SECONDS
go test -c -o "$WORK/flyte2.test" .
echo "==> compiled interop/flyte2 in $((SECONDS - t0))s"
(cd "$ROOT/interop/propeller" && GOWORK=off go test -c -o "$WORK/propeller.test" .)
echo "==> compiled interop/propeller in $((SECONDS - t0))s (both)"

# 1. Flyte 2's plugin against connectors each case starts.
"$WORK/flyte2.test" -test.count=1 -test.v -test.parallel 8 -test.timeout 8m

# 2. One server, both protocols: propeller's plugin (Flyte 1) and Flyte 2's, each with a FileSensor.
head -c 48 /dev/urandom | base64 >"$WORK/signing.key"
"$VENV/bin/sensor-connector" serve --host 127.0.0.1 --port 0 --metrics-port 0 --signing-key-file "$WORK/signing.key" \
    --log-level DEBUG --log-format json --drain-period 0 --state-dir "$WORK/state" \
    --local-roots "${TMPDIR:-/tmp}" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 300); do
    PORT=$(python3 -c 'import json, re, sys
for line in open(sys.argv[1]):
    m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
    if m: print(m.group(1)); break' "$WORK/server.log")
    [ -n "$PORT" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; exit 1; }
    sleep 0.1
done
[ -n "$PORT" ] || { echo "ci-interop-flyte2: FAILED: the connector never listened" >&2; cat "$WORK/server.log" >&2; exit 1; }
export SENSOR_CONNECTOR_ENDPOINT=127.0.0.1:$PORT
echo "==> one connector on $SENSOR_CONNECTOR_ENDPOINT for both plugins"
(cd "$ROOT/interop/propeller" && "$WORK/propeller.test" -test.count=1 -test.v -test.run '^TestSharedFileSensor$') &
FLYTE1=$!
"$WORK/flyte2.test" -test.count=1 -test.v -test.run '^TestSharedFileSensor$' &
FLYTE2=$!
wait "$FLYTE1"
wait "$FLYTE2"
# The server's own account: FileSensor answers given over each protocol, one of them SUCCEEDED each.
python3 - "$WORK/server.log" <<'EOF'
import json, sys
met = {"flyte1": 0, "flyte2": 0}
for line in open(sys.argv[1]):
    try:
        entry = json.loads(line)
    except ValueError:
        continue
    if entry.get("phase") == "SUCCEEDED" and entry.get("sensor") == "FileSensor" and entry.get("protocol") in met:
        met[entry["protocol"]] += 1
print(f"==> the shared connector's FileSensor successes by protocol: {met}")
if not all(met.values()):
    sys.exit("ci-interop-flyte2: FAILED: the shared connector did not answer both protocols")
EOF
echo "==> ci-interop-flyte2: passed in $((SECONDS - START))s"
