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

{{/* dra.*: the agent refuses --dra=on without --node-status=on and --allocation=DRA without --dra=on
     (plugin/config/plugin.ts), so the chart refuses them before a crash-looping DaemonSet would; and DRA
     needs resource.k8s.io/v1 (GA in Kubernetes 1.34). Helm's own API list (helm template) has the group
     version, a live cluster's discovery has it only where it is served. */}}
{{- define "emuv.validateDra" -}}
{{- if and (eq .Values.dra.allocation "DRA") (not .Values.dra.enabled) -}}
{{- fail "dra.allocation is DRA: set dra.enabled=true too (the agents serve DRA only when it is enabled)" -}}
{{- end -}}
{{- if and .Values.defaultPolicy.enabled (eq (.Values.defaultPolicy.spec.allocation | default "DevicePlugin") "DRA") (not .Values.dra.enabled) -}}
{{- fail "defaultPolicy.spec.allocation is DRA: set dra.enabled=true too (the agents serve DRA only when it is enabled)" -}}
{{- end -}}
{{- if .Values.dra.enabled -}}
{{- if not .Values.agent.nodeStatus -}}
{{- fail "dra.enabled needs agent.nodeStatus=true: the agents publish ResourceSlices and read ResourceClaims through the Kubernetes API" -}}
{{- end -}}
{{- if or (not (.Capabilities.APIVersions.Has "resource.k8s.io/v1")) (semverCompare "<1.34.0-0" .Capabilities.KubeVersion.Version) -}}
{{- fail (printf "dra.enabled needs Kubernetes 1.34 or later (resource.k8s.io/v1: DeviceClass, ResourceSlice, ResourceClaim); this cluster is %s%s. Set dra.enabled=false to use the device plugin only" .Capabilities.KubeVersion.Version (ternary "" " and does not serve resource.k8s.io/v1" (.Capabilities.APIVersions.Has "resource.k8s.io/v1"))) -}}
{{- end -}}
{{- end -}}
{{- end -}}
