#!/usr/bin/env bash
# Installs the object-store emulators the test suite starts on loopback, into .cache/ (git-ignored):
#   .cache/bin/fake-gcs-server                       GCS (github.com/fsouza/fake-gcs-server, built with Go)
#   .cache/azurite/node_modules/.bin/azurite-blob    Azure Blob (Azurite, from npm; 3.35.0 runs on Node 20)
# Each is skipped when the pinned version is already there. Needs `go` and `npm` on PATH.
# The tests never run Azurite without --disableTelemetry (it would otherwise try to reach the internet).
set -euo pipefail

FAKE_GCS_VERSION=v1.56.1
AZURITE_VERSION=3.35.0

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${SENSOR_CONNECTOR_EMULATORS:-$root/.cache}"
mkdir -p "$cache/bin" "$cache/azurite"

gcs_stamp="$cache/bin/.fake-gcs-server-$FAKE_GCS_VERSION"
if [[ -x "$cache/bin/fake-gcs-server" && -e "$gcs_stamp" ]]; then
    echo "install-emulators: fake-gcs-server $FAKE_GCS_VERSION already in $cache/bin"
else
    command -v go >/dev/null || { echo "install-emulators: go is needed to build fake-gcs-server (https://go.dev/dl/)" >&2; exit 1; }
    echo "install-emulators: building fake-gcs-server $FAKE_GCS_VERSION (about a minute)"
    GOBIN="$cache/bin" GOFLAGS=-mod=mod go install "github.com/fsouza/fake-gcs-server@$FAKE_GCS_VERSION"
    rm -f "$cache/bin"/.fake-gcs-server-*
    touch "$gcs_stamp"
fi

az_bin="$cache/azurite/node_modules/.bin/azurite-blob"
az_pkg="$cache/azurite/node_modules/azurite/package.json"
if [[ -x "$az_bin" && -f "$az_pkg" ]] && grep -q "\"version\": \"$AZURITE_VERSION\"" "$az_pkg"; then
    echo "install-emulators: Azurite $AZURITE_VERSION already in $cache/azurite"
else
    command -v npm >/dev/null || { echo "install-emulators: npm (Node >= 20) is needed to install Azurite (https://nodejs.org/)" >&2; exit 1; }
    echo "install-emulators: installing Azurite $AZURITE_VERSION"
    [[ -f "$cache/azurite/package.json" ]] || echo '{"name": "sensor-connector-emulators", "private": true}' >"$cache/azurite/package.json"
    npm install --prefix "$cache/azurite" --no-audit --no-fund --save-exact "azurite@$AZURITE_VERSION"
fi
