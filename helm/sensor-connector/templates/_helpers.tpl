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

{{/*
The gRPC endpoint propeller should dial. k8s: propeller's own resolver, as Flyte's charts configure
flytekit's connector (it watches this Service's Endpoints and sets the TLS server name to svc.ns). dns:
grpc-go's DNS resolver on the headless Service.
*/}}
{{- define "sensor-connector.endpoint" -}}
{{- if eq .Values.propeller.resolver "dns" }}
{{- printf "dns:///%s.%s.svc.cluster.local:%d" (include "sensor-connector.fullname" .) .Release.Namespace (int .Values.ports.grpc) }}
{{- else }}
{{- printf "k8s://%s.%s:%d" (include "sensor-connector.fullname" .) .Release.Namespace (int .Values.ports.grpc) }}
{{- end }}
{{- end }}

{{/* The host name propeller's TLS check expects in the certificate. */}}
{{- define "sensor-connector.tlsServerName" -}}
{{- if eq .Values.propeller.resolver "dns" }}
{{- printf "%s.%s.svc.cluster.local" (include "sensor-connector.fullname" .) .Release.Namespace }}
{{- else }}
{{- printf "%s.%s" (include "sensor-connector.fullname" .) .Release.Namespace }}
{{- end }}
{{- end }}

{{/* Seconds a terminating pod needs: preStop sleep, drain, grace for in-flight calls, and a margin. */}}
{{- define "sensor-connector.shutdownSeconds" -}}
{{- add (int .Values.preStopSleepSeconds) (ceil .Values.config.drainPeriod) (ceil .Values.config.gracePeriod) 2 }}
{{- end }}

{{/* Checks of combinations the schema cannot express. */}}
{{- define "sensor-connector.validate" -}}
{{- if and .Values.service.headless (ne .Values.service.type "ClusterIP") }}
{{- fail "service.headless needs service.type ClusterIP" }}
{{- end }}
{{- if and (eq .Values.propeller.resolver "dns") (not .Values.service.headless) }}
{{- fail "propeller.resolver=dns needs service.headless=true (a ClusterIP name resolves to one address, so one pod would take every call)" }}
{{- end }}
{{- if and .Values.serviceMonitor.enabled (not .Values.metrics.enabled) }}
{{- fail "serviceMonitor.enabled needs metrics.enabled" }}
{{- end }}
{{- if lt (int .Values.terminationGracePeriodSeconds) (int (include "sensor-connector.shutdownSeconds" .)) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be at least preStopSleepSeconds + config.drainPeriod + config.gracePeriod + 2 = %s, or the kubelet kills pods with calls in flight" (int .Values.terminationGracePeriodSeconds) (include "sensor-connector.shutdownSeconds" .)) }}
{{- end }}
{{- if eq .Values.ports.grpc .Values.ports.metrics }}
{{- fail "ports.grpc and ports.metrics must differ" }}
{{- end }}
{{- if and (not .Values.signingKey.existingSecret) (not .Values.signingKey.generate) }}
{{- fail "signingKey: set signingKey.existingSecret to a Secret you manage (required with Argo CD, Flux or `helm template`: they cannot see the cluster, so a generated key would change on every sync and fail every running sensor), or set signingKey.generate=true to let `helm install` generate one and `helm upgrade` keep it" }}
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
