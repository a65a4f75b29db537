{{/*
Names and labels shared by every template.
*/}}

{{/* The chart name, overridable; DNS labels end at 63 characters. */}}
{{- define "kubesweep.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The object name prefix: <release>-<chart>, or just <release> when the release name
already contains the chart name (helm install kubesweep ...).
*/}}
{{- define "kubesweep.fullname" -}}
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

{{/* chart-version, as the helm.sh/chart label wants it. */}}
{{- define "kubesweep.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The recommended app.kubernetes.io labels on every object. */}}
{{- define "kubesweep.labels" -}}
helm.sh/chart: {{ include "kubesweep.chart" . }}
{{ include "kubesweep.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: kubesweep
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the operator pod: immutable once a Deployment exists. */}}
{{- define "kubesweep.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubesweep.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount the operator runs as. */}}
{{- define "kubesweep.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kubesweep.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The operator image reference; the tag defaults to the chart's appVersion. */}}
{{- define "kubesweep.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
The rules of the operator's Role (watchNamespaces set) or ClusterRole (cluster-wide):
exactly the YAML block of docs/rbac.md, which the operator's tests prove sufficient and a
chart test keeps identical to this list. Nothing cluster-scoped: the operator turns off
kopf's CRD and namespace scanning.
*/}}
{{- define "kubesweep.rules" -}}
- apiGroups: ["kubesweep.io"]
  resources: ["sweeps"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["kubesweep.io"]
  resources: ["sweeps/status"]
  verbs: ["patch"]
# Jobs carry blockOwnerDeletion ownerReferences to their Sweep: clusters enforcing
# OwnerReferencesPermissionEnforcement (e.g. OpenShift) check this.
- apiGroups: ["kubesweep.io"]
  resources: ["sweeps/finalizers"]
  verbs: ["update"]
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["list", "watch", "create", "delete", "patch"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
- apiGroups: [""]
  resources: ["pods/log"]
  verbs: ["get"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end }}

{{/* The operator's command-line arguments. */}}
{{- define "kubesweep.args" -}}
{{- if .Values.watchNamespaces }}
{{- range .Values.watchNamespaces }}
- {{ printf "--namespace=%s" . | quote }}
{{- end }}
{{- else }}
- --all-namespaces
{{- end }}
- {{ printf "--metrics-port=%v" .Values.operator.metricsPort | quote }}
- {{ printf "--liveness-port=%v" .Values.operator.livenessPort | quote }}
- {{ printf "--metrics-address=%s" .Values.operator.metricsAddress | quote }}
- {{ printf "--liveness-address=%s" .Values.operator.livenessAddress | quote }}
- {{ printf "--gpu-resource-name=%s" .Values.operator.gpuResourceName | quote }}
- {{ printf "--trial-start-timeout=%v" .Values.operator.trialStartTimeout | quote }}
- {{ printf "--workers=%v" .Values.operator.workers | quote }}
{{- if .Values.leaderElection.enabled }}
- "--leader-elect"
- {{ printf "--lease-namespace=%s" .Release.Namespace | quote }}
{{- end }}
{{- if .Values.operator.verbose }}
- "--verbose"
{{- end }}
{{- range .Values.operator.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}
