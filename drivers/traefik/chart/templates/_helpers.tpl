{{/*
Name of the namespaced objects (ServiceAccount, Role, Deployment, Service), at
most 63 characters.
*/}}
{{- define "traefik.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/*
Name of the cluster-scoped RBAC objects: every environment runs its own
controller, so the namespace is part of the name.
*/}}
{{- define "traefik.clusterName" -}}
{{- printf "%s-%s" .Release.Namespace (include "traefik.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "traefik.ingressClassName" -}}
{{- .Values.ingressClass.name | default (printf "traefik-%s" .Release.Namespace) -}}
{{- end -}}

{{- define "traefik.watchNamespace" -}}
{{- .Values.watchNamespace | default .Release.Namespace -}}
{{- end -}}

{{- define "traefik.labels" -}}
app.kubernetes.io/name: traefik
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trimPrefix "v" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/*
Selector labels. Styrmin identifies the "traefik" component by
app.kubernetes.io/name alone (see driver.styrmin.yml). Selectors are immutable.
*/}}
{{- define "traefik.selectorLabels" -}}
app.kubernetes.io/name: traefik
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
