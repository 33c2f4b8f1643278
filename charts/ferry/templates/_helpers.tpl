{{/* Release-scoped name prefix: "ferry" for a release named ferry, so the objects carry the
     names deploy/ uses (ferry-operator, ferry-tiers). fullnameOverride replaces it whole;
     nameOverride replaces the chart's name in it. */}}
{{- define "ferry.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "ferry.operatorName" -}}
{{- printf "%s-operator" (include "ferry.fullname" .) -}}
{{- end -}}

{{/* With serviceAccount.create=false the account must exist already and be named. */}}
{{- define "ferry.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ferry.operatorName" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.create is false: set serviceAccount.name to the existing ServiceAccount the operator runs as" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "ferry.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ferry
{{- end -}}

{{/* The Deployment's selector; app.kubernetes.io/name is the one deploy/ selects by. */}}
{{- define "ferry.selectorLabels" -}}
app.kubernetes.io/name: ferry-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ferry.operatorLabels" -}}
{{ include "ferry.labels" . }}
app.kubernetes.io/name: ferry-operator
{{- end -}}

{{- define "ferry.image" -}}
{{- printf "%s:%s" .repository (default .appVersion .tag | toString) -}}
{{- end -}}

{{/* The tiers file, in the operator's --tiers format. */}}
{{- define "ferry.tiersYaml" -}}
{{- range $name := list "small" "medium" "large" "xlarge" }}
{{- $tier := index $.Values.tiers $name }}
{{ $name }}:
  cpuRequest: {{ $tier.cpuRequest | toString | quote }}
  cpuLimit: {{ $tier.cpuLimit | toString | quote }}
  memoryRequest: {{ $tier.memoryRequest | toString | quote }}
  memoryLimit: {{ $tier.memoryLimit | toString | quote }}
  concurrency: {{ $tier.concurrency | int }}
{{- end }}
{{- end -}}

{{- /* The operator's rules: in a ClusterRole, or in a Role per watched namespace. */ -}}
{{- define "ferry.operatorRules" -}}
# Watch the API objects; patch them only to add and remove the finalizer.
- apiGroups: ["ferry.dev"]
  resources: ["migrationsources", "migrationjobs"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["ferry.dev"]
  resources: ["migrationsources/status", "migrationjobs/status"]
  verbs: ["get", "patch"]
# Owner references with blockOwnerDeletion on the worker pods and RBAC objects.
- apiGroups: ["ferry.dev"]
  resources: ["migrationjobs/finalizers"]
  verbs: ["update"]
# Worker pods.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "create", "delete"]
# Check that referenced Secrets exist and connect to sources; recheck when they change.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch"]
# The per-job worker identity (applied with server-side apply, hence patch).
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["get", "create", "patch"]
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles", "rolebindings"]
  verbs: ["get", "create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{- /* The operator's default worker pod template (--worker-pod-template): the values of
worker.podTemplate that are set. */ -}}
{{- define "ferry.workerPodTemplate" -}}
{{- $set := dict }}
{{- range $key, $value := .Values.worker.podTemplate }}
{{- if $value }}
{{- $_ := set $set $key $value }}
{{- end }}
{{- end }}
{{- toYaml $set }}
{{- end }}
