{{/* Name of the release's objects: "<release>-emuv", or the release name when it already says emuv. */}}
{{- define "emuv.fullname" -}}
{{- if contains "emuv" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-emuv" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "emuv.labels" -}}
app.kubernetes.io/name: emuv
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "emuv.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Fixed: the operator's ValidatingAdmissionPolicy names the agent's service account
     (system:serviceaccount:<namespace>:emuv-agent, operator/names.ts). One emuv per cluster. */}}
{{- define "emuv.agentName" -}}
emuv-agent
{{- end -}}
