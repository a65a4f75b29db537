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
The rules the operator needs on namespaced objects, shared by the ClusterRole
(cluster-wide mode) and each Role (watchNamespaces mode): exactly the calls of
kubesweep.k8s.api plus kopf's watches and events (docs/helm.md explains each; a test
checks every call in the operator's code is granted).
*/}}
{{- define "kubesweep.namespacedRules" -}}
- apiGroups: ["kubesweep.io"]
  resources: ["sweeps"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["kubesweep.io"]
  resources: ["sweeps/status"]
  verbs: ["patch"]
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["create", "delete", "list", "watch", "patch"]
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

{{/*
What kopf reads cluster-wide in cluster-wide mode: CRDs, to notice the Sweep CRD being
created or changed. (It lists namespaces only when given namespaces, so no grant here.)
*/}}
{{- define "kubesweep.clusterRules" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
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
- {{ printf "--gpu-resource-name=%s" .Values.operator.gpuResourceName | quote }}
- {{ printf "--trial-start-timeout=%v" .Values.operator.trialStartTimeout | quote }}
- {{ printf "--workers=%v" .Values.operator.workers | quote }}
{{- if .Values.operator.verbose }}
- "--verbose"
{{- end }}
{{- range .Values.operator.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}
