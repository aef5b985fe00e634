#!/usr/bin/env bash
# Check the Helm chart offline:
#   1. helm (pinned, built with `go install` once and cached) lints the chart with its default values and
#      with ci/all-features-values.yaml;
#   2. renders it for several sets of values, and makes sure values that cannot work are refused;
#   3. validates every rendered manifest against the Kubernetes OpenAPI schemas of two Kubernetes versions
#      with kubernetes-validate (strict: unknown fields fail), the ServiceMonitor against a small schema;
#   4. asserts key facts of the rendered YAML (scripts/check_manifests.py).
# Env: XDG_CACHE_HOME (cache root; helm, its Go build cache and the validator's venv live there).
set -euo pipefail

START=$SECONDS
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/flyte-sensor-connector
CHART=$ROOT/helm/sensor-connector

HELM_VERSION=v3.21.4
# helm's Makefile stamps the Kubernetes version of its client-go (v0.36 for v3.21) into the binary; a
# plain `go install` would leave v1.20 there, which this chart's kubeVersion (>=1.27) refuses.
HELM_KUBE_MINOR=36
KUBERNETES_VALIDATE_VERSION=1.37.0
# The chart's lowest supported Kubernetes (native gRPC probes) and a current one.
KUBE_VERSIONS=(1.27.0 1.35.0)

log() { printf '\n==> %s\n' "$*"; }
die() { printf 'ci-helm: FAILED: %s\n' "$*" >&2; exit 1; }

OUT=""
cleanup() {
    local rc=$?
    [ -n "$OUT" ] && [ -z "${KEEP_OUT:-}" ] && rm -rf "$OUT"
    if [ "$rc" = 0 ]; then
        printf '\nci-helm: passed in %ss\n' "$((SECONDS - START))"
    else
        printf '\nci-helm: FAILED (exit %s) after %ss\n' "$rc" "$((SECONDS - START))" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
OUT=$(mktemp -d "${TMPDIR:-/tmp}/ci-helm.XXXXXX")

# --- tools ---------------------------------------------------------------------------------------------
GO_CACHE=$CACHE/go
HELM=$GO_CACHE/bin/helm-$HELM_VERSION/helm
if ! { [ -x "$HELM" ] && "$HELM" version --short 2>/dev/null | grep -q "^$HELM_VERSION"; }; then
    if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then PATH=$PATH:/usr/local/go/bin; fi
    command -v go >/dev/null || die "go is needed to build helm"
    log "go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION (first run only, ~3 min)"
    mkdir -p "$GO_CACHE"
    ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
    for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
        ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$HELM_KUBE_MINOR"
    done
    GOPATH=$GO_CACHE/path GOMODCACHE=$GO_CACHE/path/pkg/mod GOCACHE=$GO_CACHE/cache \
        GOBIN=$GO_CACHE/bin/helm-$HELM_VERSION CGO_ENABLED=0 \
        go install -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
fi
echo "helm: $("$HELM" version --short)"

KV_VENV=$CACHE/kubernetes-validate-$KUBERNETES_VALIDATE_VERSION
KV_PY=$KV_VENV/bin/python
if ! "$KV_PY" -c 'import kubernetes_validate, yaml, jsonschema' 2>/dev/null; then
    log "installing kubernetes-validate==$KUBERNETES_VALIDATE_VERSION into $KV_VENV"
    rm -rf "$KV_VENV"
    python3 -m venv "$KV_VENV"
    "$KV_PY" -m pip install -q --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" pyyaml
fi

# --- lint ----------------------------------------------------------------------------------------------
log "helm lint"
"$HELM" lint --strict "$CHART" --set signingKey.generate=true
"$HELM" lint --strict "$CHART" -f "$CHART/ci/all-features-values.yaml"

# --- render --------------------------------------------------------------------------------------------
# NAME=extra helm template arguments; each renders to $OUT/NAME.yaml, checked by check_manifests.py.
log "helm template"
render() {
    local name=$1
    shift
    "$HELM" template sensor-connector "$CHART" --namespace flyte "$@" >"$OUT/$name.yaml" \
        || die "helm template $name"
    echo "rendered $name: $(grep -c '^kind:' "$OUT/$name.yaml") manifests"
}
# "default": the chart's values plus the one choice it makes the operator state (a generated key).
render default --set signingKey.generate=true
render all-features -f "$CHART/ci/all-features-values.yaml"
render existing-secret --set signingKey.existingSecret=connector-keys \
    --set 'signingKey.keys={new.key,old.key}' --set service.headless=false --set metrics.enabled=false \
    --set podDisruptionBudget.enabled=false --set 'topologySpreadConstraints=null'

# NOTES.txt (helm prints it after install; `helm template` does not render it): rendered through a copy
# of the chart where it is wrapped in a ConfigMap, so its propeller configuration can be checked.
cp -r "$CHART" "$OUT/notes-chart"
{
    printf '{{- define "ci.notes" -}}\n'
    cat "$CHART/templates/NOTES.txt"
    printf '{{- end -}}\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ci-notes\ndata:\n'
    printf '  notes: {{ include "ci.notes" . | quote }}\n'
} >"$OUT/notes-chart/templates/ci-notes.yaml"
rm "$OUT/notes-chart/templates/NOTES.txt"
render_notes() {
    local name=$1
    shift
    "$HELM" template sensor-connector "$OUT/notes-chart" --namespace flyte --show-only templates/ci-notes.yaml "$@" \
        | "$KV_PY" -c 'import sys, yaml; print(yaml.safe_load(sys.stdin)["data"]["notes"])' >"$OUT/$name" \
        || die "rendering NOTES.txt ($name)"
    echo "rendered $name: $(wc -l <"$OUT/$name") lines"
}
render_notes NOTES.txt --set signingKey.generate=true
render_notes NOTES-all-features.txt -f "$CHART/ci/all-features-values.yaml"
render_notes NOTES-existing-secret.txt --set signingKey.existingSecret=connector-keys \
    --set service.headless=false --set metrics.enabled=false

# Values that cannot work must be refused at install time, not in the cluster.
# refuse WHY PATTERN ARGS...: rendering with ARGS must fail, with an error matching PATTERN.
refuse() {
    local why=$1 pattern=$2
    shift 2
    if "$HELM" template sensor-connector "$CHART" --namespace flyte --set signingKey.generate=true "$@" \
        >/dev/null 2>"$OUT/refused.err"; then
        die "helm template accepted $why: $*"
    fi
    grep -qE "$pattern" "$OUT/refused.err" || { cat "$OUT/refused.err" >&2; die "$why: failed for another reason"; }
    echo "refused $why: $(grep -m1 -E "$pattern" "$OUT/refused.err" | sed -e 's/.*): //' -e 's/^Error: //' | cut -c1-110)"
}
refuse "an unknown value (schema)" "additional properties 'headles'" --set service.headles=true
refuse "a headless LoadBalancer" "service.headless needs" --set service.type=LoadBalancer
refuse "a grace period longer than the pod's" "must be at least preStopSleepSeconds" --set config.gracePeriod=60
refuse "a drain period longer than the pod's" "must be at least preStopSleepSeconds" --set config.drainPeriod=30
refuse "the dns resolver without a headless Service" "propeller.resolver=dns needs" \
    --set propeller.resolver=dns --set service.headless=false
refuse "no signing key choice (GitOps would regenerate it)" "signingKey: set signingKey.existingSecret" \
    --set signingKey.generate=false
refuse "an unknown propeller resolver" "/propeller/resolver" --set propeller.resolver=xds
refuse "an empty key list" "/signingKey.*keys" --set 'signingKey.keys=null'
refuse "a bad log format" "/config/logFormat" --set config.logFormat=xml
refuse "a secret policy field that does not exist" "additional properties 'host'" --set 'secretPolicy.token.host={x}'
refuse "a secret policy naming a path" "'../token' does not match pattern" --set-json 'secretPolicy={"../token":{}}'
refuse "a sensor module that is not a dotted module name" "/sensorModules" --set 'sensorModules={my-sensors}'
refuse "Kubernetes 1.26 (no native gRPC probes)" "requires kubeVersion" --kube-version 1.26.0
"$HELM" template sensor-connector "$CHART" --namespace flyte --kube-version 1.27.0 --set signingKey.generate=true >/dev/null \
    || die "helm template refuses Kubernetes 1.27"
echo "accepted Kubernetes 1.27.0 (the chart's kubeVersion floor)"

# Options left unset (null) are not passed; set, they are (as numbers, never 1e+06).
render tuned --set signingKey.generate=true --set config.maxPendingRpcs=1000000 \
    --set-json config.maxStaleness=0.5 --set config.fsCacheEntries=4096 --set config.stateCacheEntries=100000 \
    --set 'config.preload={s3,gcs}' --set propeller.resolver=dns --set tests.enabled=false \
    --set 'sensorModules={mysensors.tables,mysensors.vendor}' --set config.userPokesPerSensor=2 \
    --set config.userPokeThreads=8 \
    --set fullnameOverride=flyteconnector --set 'propeller.rbac.serviceAccounts[0].name=flyte-backend-flyte-binary'

"$HELM" package "$CHART" --destination "$OUT" >/dev/null || die "helm package"
echo "packaged: $(cd "$OUT" && ls sensor-connector-*.tgz) ($(du -k "$OUT"/sensor-connector-*.tgz | cut -f1) KiB)"

# --- validate and assert -------------------------------------------------------------------------------
log "kubernetes-validate ${KUBE_VERSIONS[*]} (strict) and chart assertions"
"$KV_PY" "$ROOT/scripts/check_manifests.py" --kube-versions "${KUBE_VERSIONS[@]}" \
    --default "$OUT/default.yaml" --all-features "$OUT/all-features.yaml" \
    --existing-secret "$OUT/existing-secret.yaml" --tuned "$OUT/tuned.yaml" --notes "$OUT/NOTES.txt" \
    --propeller-values "$ROOT/helm/propeller-values"

# --- propeller values: the records of rendering Flyte's real charts ------------------------------------
log "propeller values vs. their rendered records (helm/propeller-values/rendered)"
for values in "$ROOT"/helm/propeller-values/*.yaml; do
    chart=$(basename "$values" .yaml)
    for record in "$ROOT"/helm/propeller-values/rendered/"$chart"-*.yaml; do
        "$KV_PY" "$ROOT/scripts/check_propeller_config.py" recorded "$values" "$record" \
            || die "$(basename "$record") does not match $(basename "$values")"
    done
done
