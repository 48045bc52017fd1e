{{/* The release's name for dais's objects. */}}
{{- define "dais.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "dais.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "dais.labels" -}}
{{ include "dais.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The Secret holding the PostgreSQL password, and its key. */}}
{{- define "dais.secretName" -}}
{{- .Values.postgres.existingSecret | default (printf "%s-postgres" (include "dais.fullname" .)) -}}
{{- end -}}
{{- define "dais.secretKey" -}}
{{- if .Values.postgres.existingSecret -}}{{ .Values.postgres.existingSecretKey }}{{- else -}}password{{- end -}}
{{- end -}}

{{- define "dais.claimName" -}}
{{- .Values.sharedStorage.existingClaim | default (printf "%s-data" (include "dais.fullname" .)) -}}
{{- end -}}

{{/* The configuration file: the chart's settings, then the user's lines. */}}
{{- define "dais.gcfg" -}}
; rstudio-connect.gcfg of the {{ .Release.Name }} release (charts/dais).
; CONNECT_* environment variables set on the pod override it.
[Server]
DataDir = /data
StopTimeout = {{ .Values.stopTimeoutSeconds }}s
{{- with .Values.serverAddress }}
Address = {{ . }}
{{- end }}

[HTTP]
Listen = :3939

[Database]
Provider = postgres

[Postgres]
URL = {{ required "postgres.url is required: dais nodes share one PostgreSQL (postgres://user@host:5432/db?sslmode=require, no password)" .Values.postgres.url | quote }}

[Cluster]
DrainDelay = {{ .Values.drainDelaySeconds }}s

[Authentication]
Provider = password

[Applications]
RunAs = rstudio-connect
{{ with .Values.config }}
{{ . }}
{{- end }}
{{- end -}}
