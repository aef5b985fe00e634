#!/usr/bin/env bash
# Render Flyte's real flyte-core and flyte-binary charts with helm/propeller-values/*.yaml and check
# the propeller configuration they produce (scripts/check_propeller_config.py render); the result is
# recorded in helm/propeller-values/rendered/, which CI re-checks offline (the charts cannot be fetched
# in CI). Run it whenever a values file changes, or for a new Flyte release:
#
#   git clone --depth 1 --branch v1.16.8 https://github.com/flyteorg/flyte /tmp/flyte
#   scripts/render-propeller-config.sh /tmp/flyte/charts v1.16.8
#
# Needs helm (scripts/ci-helm.sh builds one into its cache) and a Python with PyYAML.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CHARTS=${1:?usage: render-propeller-config.sh FLYTE_CHARTS_DIR FLYTE_VERSION}
VERSION=${2:?usage: render-propeller-config.sh FLYTE_CHARTS_DIR FLYTE_VERSION}
CACHE=${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/flyte-sensor-connector
HELM=${HELM:-$(ls "$CACHE"/go/bin/helm-*/helm 2>/dev/null | tail -1)}
PYTHON=${PYTHON:-$(ls "$CACHE"/kubernetes-validate-*/bin/python 2>/dev/null | tail -1)}
[ -x "$HELM" ] || { echo "no helm: run scripts/ci-helm.sh once, or set HELM" >&2; exit 1; }
OUT=$(mktemp -d "${TMPDIR:-/tmp}/propeller-config.XXXXXX")
trap 'rm -rf "$OUT"' EXIT

mkdir -p "$ROOT/helm/propeller-values/rendered"
for chart in flyte-core flyte-binary; do
    # flyte-core and flyte-binary depend on ../flyteconnector (file://): vendored offline into a copy.
    cp -r "$CHARTS/$chart" "$CHARTS/flyteconnector" "$OUT/"
    "$HELM" dependency build "$OUT/$chart" >/dev/null
    release=flyte
    [ "$chart" = flyte-binary ] && release=flyte-backend
    echo "+ helm template $release $chart --namespace flyte -f helm/propeller-values/$chart.yaml"
    "$HELM" template "$release" "$OUT/$chart" --namespace flyte \
        -f "$ROOT/helm/propeller-values/$chart.yaml" >"$OUT/$chart.rendered.yaml"
    "$PYTHON" "$ROOT/scripts/check_propeller_config.py" render "$chart" "$OUT/$chart.rendered.yaml" \
        "$ROOT/helm/propeller-values/$chart.yaml" \
        "$ROOT/helm/propeller-values/rendered/$chart-$VERSION.yaml"
done
