#!/usr/bin/env bash
# The propeller interop suite (interop/propeller): flytepropeller's own connector plugin (flyteplugins
# v1.16.8, loaded through propeller's plugin registry and webapi core) drives live `sensor-connector serve`
# processes on loopback. interop/harness (standard library only: replicas, polling, plugin state), the
# part it shares with interop/flyte2, runs its own tests first. Needs Go 1.26 or newer (go.mod) and the
# repo's .venv (created if missing).
# Go's module and build caches stay outside the repo: GOMODCACHE and GOCACHE as set, else Go's defaults
# (~/go/pkg/mod, ${XDG_CACHE_HOME:-~/.cache}/go-build). A cold run downloads ~1.3 GB of modules.
set -euo pipefail

START=$SECONDS
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${SENSOR_CONNECTOR_VENV:-$ROOT/.venv}

command -v go >/dev/null || { echo "ci-interop: FAILED: go is not on PATH" >&2; exit 1; }
if [ ! -x "$VENV/bin/sensor-connector" ]; then
    (cd "$ROOT" && python3 dev.py install)
fi

echo "==> go $(go env GOVERSION); GOMODCACHE=$(go env GOMODCACHE) GOCACHE=$(go env GOCACHE)"
(cd "$ROOT/interop/harness" && go test -count=1 ./...)
cd "$ROOT/interop/propeller"
go mod download
# -parallel: the lifecycle subtests wait on the plugin's resync together, not one after another.
go test -count=1 -v -parallel 8 -timeout 8m ./...
echo "==> ci-interop: passed in $((SECONDS - START))s"
