{{/* Chart name, truncated to 63 characters. */}}
{{- define "livekit-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name: the release name when it already contains the chart name, else <release>-<chart>. */}}
{{- define "livekit-operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "livekit-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels that select the operator pods; never change them across upgrades. */}}
{{- define "livekit-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "livekit-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "livekit-operator.labels" -}}
helm.sh/chart: {{ include "livekit-operator.chart" . }}
{{ include "livekit-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: livekit-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "livekit-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "livekit-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "livekit-operator.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The namespace the Lease lives in: the release namespace (the operator's POD_NAMESPACE). */}}
{{- define "livekit-operator.leaseNamespace" -}}
{{- .Release.Namespace -}}
{{- end -}}
