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

{{/* Fixed like the agent's: operator/names.ts names the operator's service account and Lease. */}}
{{- define "emuv.operatorName" -}}
emuv-operator
{{- end -}}

{{/* Selector labels of the agent pods (stable across upgrades: no version labels). */}}
{{- define "emuv.agentSelector" -}}
app.kubernetes.io/name: emuv
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: agent
{{- end -}}

{{/* Selector labels of the operator pods. */}}
{{- define "emuv.operatorSelector" -}}
app.kubernetes.io/name: emuv
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* kubernetesApi.host and .port go together: one without the other would point the in-cluster client at
     a mix of our address and the kubelet's injected Service address. */}}
{{- define "emuv.validateKubernetesApi" -}}
{{- $api := .Values.kubernetesApi -}}
{{- if and $api.host (eq (toString $api.port) "") -}}
{{- fail "kubernetesApi.host is set: set kubernetesApi.port too (the apiserver's port on that address, e.g. 6443)" -}}
{{- end -}}
{{- if and (not $api.host) (ne (toString $api.port) "") -}}
{{- fail "kubernetesApi.port is set: set kubernetesApi.host too (an address of the apiserver that pods can reach)" -}}
{{- end -}}
{{- end -}}

{{/* Env entries (list items, no leading newline) that point @kubernetes/client-node's loadFromCluster at
     kubernetesApi.host:port instead of the `kubernetes` Service. Container env wins over the variables
     the kubelet injects. Empty when kubernetesApi.host is empty. */}}
{{- define "emuv.kubernetesApiEnv" -}}
{{- include "emuv.validateKubernetesApi" . -}}
{{- with .Values.kubernetesApi.host }}
- { name: KUBERNETES_SERVICE_HOST, value: {{ . | quote }} }
- { name: KUBERNETES_SERVICE_PORT, value: {{ toString $.Values.kubernetesApi.port | quote }} }
{{- end -}}
{{- end -}}
