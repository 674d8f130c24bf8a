{{/*
Names, labels and the pieces every pod of the chart shares. Object names are
fixed, not derived from the release: clients, OpenBao's bootstrap and the
runbooks know the database as the Service `postgres` and its passwords as the
Secret `postgres-credentials`.
*/}}

{{- define "postgres.chart" -}}
{{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select this release's pods of one component. Call with (dict "ctx" $ "component" "database"). */}}
{{- define "postgres.selectorLabels" -}}
app.kubernetes.io/name: postgres
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Every object's labels. Call with (dict "ctx" $ "component" "database"). */}}
{{- define "postgres.labels" -}}
{{ include "postgres.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: student-api
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
helm.sh/chart: {{ include "postgres.chart" .ctx }}
{{- end }}

{{- define "postgres.image" -}}
{{ printf "%s:%s@%s" .Values.image.repository .Values.image.tag .Values.image.digest }}
{{- end }}

{{- define "postgres.credentialsSecret" -}}
{{ .Values.credentials.existingSecret | default "postgres-credentials" }}
{{- end }}

{{- define "postgres.superuserSecret" -}}
{{ .Values.cnpg.superuserSecret.existingSecret | default "postgres-superuser" }}
{{- end }}

{{- define "postgres.s3Secret" -}}
{{ .Values.cnpg.backup.s3Credentials.existingSecret | default "postgres-backup-s3" }}
{{- end }}

{{/* cnpg: the Barman Cloud plugin, as the Cluster and the backups name it. */}}
{{- define "postgres.backupPlugin" -}}
barman-cloud.cloudnative-pg.io
{{- end }}

{{/* cnpg: the ObjectStore of the Cluster's backups. */}}
{{- define "postgres.objectStore" -}}
{{ printf "%s-backups" .Values.cnpg.clusterName }}
{{- end }}

{{/* The host the chart's Jobs connect to: the standalone Service, or the Cluster's read-write Service. */}}
{{- define "postgres.primaryHost" -}}
{{- if eq .Values.mode "cnpg" -}}
{{ printf "%s-rw" .Values.cnpg.clusterName }}
{{- else -}}
postgres
{{- end }}
{{- end }}

{{/*
Pod security context of the chart's pods: the postgres user and group of the
official image (uid and gid 999 own its directories), volumes group-owned by
it, the runtime's default seccomp profile.
*/}}
{{- define "postgres.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 999
runAsGroup: 999
fsGroup: 999
# Only a volume whose root has another owner is walked and re-owned, not the
# whole data directory at every start.
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
Why the pods keep uid 999 (checkov's CKV_K8S_40 asks for 10000 or more): the
official image's postgres user owns its directories and every data file, and
runAsNonRoot, no privilege escalation, no capabilities and the RuntimeDefault
seccomp profile confine it. Short, to fit the annotation on one line.
*/}}
{{- define "postgres.uidReason" -}}
uid 999 is the image's postgres user, owner of its files; non-root, no caps, seccomp
{{- end }}

{{- define "postgres.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 999
runAsGroup: 999
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Required node affinity to nodes whose `type` label is one of the list. Call with the list. */}}
{{- define "postgres.nodeAffinity" -}}
nodeAffinity:
  requiredDuringSchedulingIgnoredDuringExecution:
    nodeSelectorTerms:
      - matchExpressions:
          - key: type
            operator: In
            values:
              {{- toYaml . | nindent 14 }}
{{- end }}

{{/* A NetworkPolicy peer: pods with these labels in this namespace. Call with a value of the shape {namespace, podLabels}. */}}
{{- define "postgres.peer" -}}
- namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: {{ .namespace }}
  podSelector:
    matchLabels:
      {{- toYaml .podLabels | nindent 6 }}
{{- end }}

{{/*
A file of the chart, indented for a block scalar, with blank lines left empty
(nindent would fill them with spaces). Call with (dict "ctx" $ "path" "files/x" "indent" 4).
*/}}
{{- define "postgres.fileBlock" -}}
{{- $pad := repeat (int .indent) " " }}
{{- range (.ctx.Files.Get .path | trimSuffix "\n" | splitList "\n") }}
{{ if . }}{{ $pad }}{{ . }}{{ end }}
{{- end }}
{{- end }}
