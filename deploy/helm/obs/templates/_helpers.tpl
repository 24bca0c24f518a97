{{- define "obs.fullname" -}}
{{- if contains "obs" .Release.Name -}}{{ .Release.Name | trunc 50 | trimSuffix "-" }}{{- else -}}{{ printf "%s-obs" .Release.Name | trunc 50 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "obs.labels" -}}
app.kubernetes.io/name: obs
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "obs.selector" -}}
app.kubernetes.io/name: obs
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "obs.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "obs.gossipSecret" -}}
{{ .Values.gossip.existingSecret | default (printf "%s-gossip" (include "obs.fullname" .)) }}
{{- end -}}

{{- define "obs.backendSecret" -}}
{{ .Values.backend.existingSecret | default (printf "%s-backend" (include "obs.fullname" .)) }}
{{- end -}}

{{/* obs.config: files/<role>.yaml with .Values.<role>.config merged over it. */}}
{{- define "obs.config" -}}
{{- $base := .root.Files.Get (printf "files/%s.yaml" .role) | fromYaml -}}
{{- $over := deepCopy (index .root.Values .role "config") -}}
{{- mustMergeOverwrite $base $over | toYaml -}}
{{- end -}}
