{{/* Chart name, truncated to 63 characters (a DNS label). */}}
{{- define "sensor-connector.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart unless the release name already holds the chart name. */}}
{{- define "sensor-connector.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "sensor-connector.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sensor-connector.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sensor-connector.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "sensor-connector.labels" -}}
helm.sh/chart: {{ include "sensor-connector.chart" . }}
{{ include "sensor-connector.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: connector
app.kubernetes.io/part-of: flyte
{{- end }}

{{- define "sensor-connector.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sensor-connector.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "sensor-connector.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* The Secret holding the signing key(s). */}}
{{- define "sensor-connector.secretName" -}}
{{- .Values.signingKey.existingSecret | default (printf "%s-signing-key" (include "sensor-connector.fullname" .)) }}
{{- end }}

{{/* Where the Secret's keys are mounted. */}}
{{- define "sensor-connector.keyDir" -}}
/etc/sensor-connector/keys
{{- end }}

{{/*
The generated key (base64, as stored in Secret.data): the one already in the cluster when the Secret
exists (so `helm upgrade` keeps it), else a new random one. Computed once per render and remembered, so
the Secret and the Deployment's checksum annotation see the same value.
*/}}
{{- define "sensor-connector.generatedKey" -}}
{{- $state := .Values.signingKey }}
{{- if not (hasKey $state "_generated") }}
{{- $key := "" }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "sensor-connector.secretName" .) }}
{{- if $existing }}
{{- $key = index ($existing.data | default dict) "signing.key" | default "" }}
{{- end }}
{{- if not $key }}
{{- $key = randAlphaNum 64 | b64enc }}
{{- end }}
{{- $_ := set $state "_generated" $key }}
{{- end }}
{{- index $state "_generated" }}
{{- end }}

{{/* The cluster-local gRPC endpoint propeller should dial. */}}
{{- define "sensor-connector.endpoint" -}}
{{- printf "dns:///%s.%s.svc.cluster.local:%d" (include "sensor-connector.fullname" .) .Release.Namespace (int .Values.ports.grpc) }}
{{- end }}

{{/* Checks of combinations the schema cannot express. */}}
{{- define "sensor-connector.validate" -}}
{{- if and .Values.service.headless (ne .Values.service.type "ClusterIP") }}
{{- fail "service.headless needs service.type ClusterIP" }}
{{- end }}
{{- if and .Values.serviceMonitor.enabled (not .Values.metrics.enabled) }}
{{- fail "serviceMonitor.enabled needs metrics.enabled" }}
{{- end }}
{{- if le (int .Values.terminationGracePeriodSeconds) (add (int .Values.config.gracePeriod) (int .Values.preStopSleepSeconds)) }}
{{- fail "terminationGracePeriodSeconds must exceed config.gracePeriod + preStopSleepSeconds" }}
{{- end }}
{{- if eq .Values.ports.grpc .Values.ports.metrics }}
{{- fail "ports.grpc and ports.metrics must differ" }}
{{- end }}
{{- end }}

{{/*
A probe's target: the gRPC health service, or with TLS on (which the kubelet's gRPC probe cannot speak)
the TCP port.
*/}}
{{- define "sensor-connector.probeTarget" -}}
{{- if .ctx.Values.tls.existingSecret -}}
tcpSocket:
  port: {{ .ctx.Values.ports.grpc }}
{{- else -}}
grpc:
  port: {{ .ctx.Values.ports.grpc }}
  service: {{ .service | quote }}
{{- end -}}
{{- end }}
