{{/*
Names, labels and the values several templates derive from. Nothing here
renders an object on its own.
*/}}

{{/* The chart's name, or nameOverride. */}}
{{- define "student-api.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The base name of every object: fullnameOverride, else the release name when
it already contains the chart's name (release student-api gives
student-api), else <release>-<chart>. 63 characters at most (DNS label).
*/}}
{{- define "student-api.fullname" -}}
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

{{/* helm.sh/chart: name-version, "+" is not allowed in a label value. */}}
{{- define "student-api.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The image tag: image.tag, else the chart's appVersion. */}}
{{- define "student-api.imageTag" -}}
{{- .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* repository:tag, or repository:tag@digest when a digest is pinned. */}}
{{- define "student-api.image" -}}
{{- $ref := printf "%s:%s" .Values.image.repository (include "student-api.imageTag" .) }}
{{- if .Values.image.digest }}
{{- $ref = printf "%s@%s" $ref .Values.image.digest }}
{{- end }}
{{- $ref }}
{{- end }}

{{/* Labels that select the pods; they never change between releases. */}}
{{- define "student-api.selectorLabels" -}}
app.kubernetes.io/name: {{ include "student-api.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of every object but app.kubernetes.io/component. */}}
{{- define "student-api.commonLabels" -}}
helm.sh/chart: {{ include "student-api.chart" . }}
{{ include "student-api.selectorLabels" . }}
app.kubernetes.io/version: {{ include "student-api.imageTag" . | trunc 63 | quote }}
app.kubernetes.io/part-of: student-api
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels of every object: component api, except the metrics Service. */}}
{{- define "student-api.labels" -}}
{{ include "student-api.commonLabels" . }}
app.kubernetes.io/component: api
{{- end }}

{{- define "student-api.serviceAccountName" -}}
{{- default (include "student-api.fullname" .) .Values.serviceAccount.name }}
{{- end }}

{{/* The Secret holding the database login (externalSecret, existingSecret). */}}
{{- define "student-api.dbSecretName" -}}
{{- $creds := .Values.database.credentials }}
{{- if eq $creds.source "existingSecret" }}
{{- required "database.credentials.existingSecret.name is required with source existingSecret" $creds.existingSecret.name }}
{{- else }}
{{- default (printf "%s-db" (include "student-api.fullname" .)) $creds.externalSecret.name }}
{{- end }}
{{- end }}

{{/* Whether the database login comes from a mounted Secret ("true" or ""). */}}
{{- define "student-api.usesSecretFiles" -}}
{{- if has .Values.database.credentials.source (list "externalSecret" "existingSecret") }}true{{ end }}
{{- end }}

{{/* Mount points inside the containers. */}}
{{- define "student-api.vaultTokenDir" -}}/var/run/secrets/student-api/vault-token{{- end }}
{{- define "student-api.vaultCaDir" -}}/var/run/secrets/student-api/vault-ca{{- end }}

{{/*
Checks of combinations the schema cannot express, run by every template
that depends on them.
*/}}
{{- define "student-api.validate" -}}
{{- $vault := .Values.database.credentials.vault }}
{{- if eq .Values.database.credentials.source "vault" }}
{{- if and $vault.dbCredsPath $vault.kvPath }}
{{- fail "database.credentials.vault: set only one of dbCredsPath and kvPath" }}
{{- end }}
{{- if not (or $vault.dbCredsPath $vault.kvPath) }}
{{- fail "database.credentials.vault: dbCredsPath or kvPath is required with source vault" }}
{{- end }}
{{- end }}
{{- $drain := add .Values.lifecycle.preStopSleepSeconds .Values.config.shutdownDelaySeconds .Values.config.shutdownTimeoutSeconds }}
{{- if le (int .Values.terminationGracePeriodSeconds) (int $drain) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed lifecycle.preStopSleepSeconds + config.shutdownDelaySeconds + config.shutdownTimeoutSeconds (%d)" (int .Values.terminationGracePeriodSeconds) (int $drain)) }}
{{- end }}
{{- if and .Values.faultInjection.enabled (not .Values.faultInjection.allowed) }}
{{- fail "faultInjection.enabled: fault injection is refused with these values (faultInjection.allowed is false, as in production)" }}
{{- end }}
{{- if and .Values.tracing.enabled (not (regexMatch (printf ":%d(/.*)?$" (int .Values.networkPolicy.otlpCollector.port)) .Values.tracing.endpoint)) }}
{{- fail (printf "tracing.endpoint %s is not at networkPolicy.otlpCollector.port %d: the NetworkPolicy would drop the spans" .Values.tracing.endpoint (int .Values.networkPolicy.otlpCollector.port)) }}
{{- end }}
{{- if eq .Values.ports.http .Values.ports.metrics }}
{{- fail "ports.http and ports.metrics must differ" }}
{{- end }}
{{- if and .Values.route.enabled (eq .Values.route.httpsRedirectFrom .Values.route.gateway.listener) }}
{{- fail "route.httpsRedirectFrom must name another listener than route.gateway.listener, which serves the API" }}
{{- end }}
{{- end }}

{{/*
Security context of every container: the image's nonroot user (distroless,
UID/GID 65532), nothing writable but mounted volumes, no privileges.
*/}}
{{- define "student-api.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The credential mounts, the same in the init container and the service. */}}
{{- define "student-api.credentialMounts" -}}
{{- if include "student-api.usesSecretFiles" . }}
- name: db-credentials
  mountPath: {{ .Values.database.credentials.mountPath }}
  readOnly: true
{{- else }}
- name: vault-token
  mountPath: {{ include "student-api.vaultTokenDir" . }}
  readOnly: true
{{- if .Values.database.credentials.vault.caCert.configMapName }}
- name: vault-ca
  mountPath: {{ include "student-api.vaultCaDir" . }}
  readOnly: true
{{- end }}
{{- end }}
{{- end }}

{{/*
A ParentReference to one listener of the route's Gateway. Arguments: a map
with route (.Values.route) and listener (the sectionName).
*/}}
{{- define "student-api.gatewayRef" -}}
- group: gateway.networking.k8s.io
  kind: Gateway
  name: {{ .route.gateway.name }}
  namespace: {{ .route.gateway.namespace }}
  sectionName: {{ .listener }}
{{- end }}

{{/*
A NetworkPolicyPeer: pods with these labels in the namespace of this name
(kubernetes.io/metadata.name is set on every namespace by the API server).
Argument: a map with namespace and podLabels.
*/}}
{{- define "student-api.peer" -}}
- namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: {{ .namespace }}
  podSelector:
    matchLabels:
      {{- toYaml .podLabels | nindent 6 }}
{{- end }}
