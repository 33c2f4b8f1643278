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
