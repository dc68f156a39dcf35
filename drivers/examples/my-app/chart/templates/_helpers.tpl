{{/*
Name prefix of every object of the release, at most 63 characters (label and
DNS-1123 limit). Suffixes such as "-postgresql" are added after truncation to
53 characters so the full name still fits.
*/}}
{{- define "my-app.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 53 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 53 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 53 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/*
Labels of every object. The component is added per object.
*/}}
{{- define "my-app.labels" -}}
app.kubernetes.io/name: my-app
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.server.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/*
Selector labels of one component: call with (dict "root" $ "component" "server").
Styrmin finds the component's pods with its identifier labels (name + component,
see driver.styrmin.yml); the instance label keeps two releases in one namespace
apart. Selectors are immutable: never change these.
*/}}
{{- define "my-app.selectorLabels" -}}
app.kubernetes.io/name: my-app
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{- define "my-app.postgresql.secretName" -}}
{{- .Values.postgresql.existingSecret | default (printf "%s-postgresql" (include "my-app.fullname" .)) -}}
{{- end -}}
