{{/* Chart name, truncated to 63 characters (the DNS label limit). */}}
{{- define "retryd.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified name: the release name alone when it already contains the chart name,
release-chart otherwise; 63 characters at most.
*/}}
{{- define "retryd.fullname" -}}
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

{{/* name-version for the helm.sh/chart label ("+" is not allowed in label values). */}}
{{- define "retryd.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every resource. */}}
{{- define "retryd.labels" -}}
helm.sh/chart: {{ include "retryd.chart" . }}
{{ include "retryd.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: server
app.kubernetes.io/part-of: retryd
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Labels of the `helm test` pod: no app.kubernetes.io/name, so the Services (which select name and
instance) never route to it.
*/}}
{{- define "retryd.testLabels" -}}
helm.sh/chart: {{ include "retryd.chart" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: test
app.kubernetes.io/part-of: retryd
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The stable subset used by selectors (never change these on upgrade). */}}
{{- define "retryd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "retryd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "retryd.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "retryd.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "retryd.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Container ports: fixed, the Service maps its own ports onto them. */}}
{{- define "retryd.grpcContainerPort" -}}50051{{- end }}
{{- define "retryd.metricsContainerPort" -}}9464{{- end }}

{{/*
Checks that values.schema.json cannot express. Included by the StatefulSet and the ConfigMap so
that any render of the chart runs them.
*/}}
{{- define "retryd.validate" -}}
{{- if or .Values.auth.tokens .Values.auth.existingSecret }}
{{- fail "auth: bearer tokens are not supported by this retryd build yet (the server refuses auth.tokens); remove auth.tokens/auth.existingSecret and limit access with networkPolicy" }}
{{- end }}
{{- if .Values.tls.enabled }}
{{- fail "tls: TLS is not supported by this retryd build yet (the server refuses tls); set tls.enabled=false" }}
{{- end }}
{{- if not .Values.insecureAllowRemote }}
{{- fail "insecureAllowRemote: retryd must listen on 0.0.0.0 in a pod, and without auth or TLS (not in this build yet) the server refuses that unless insecureAllowRemote is true" }}
{{- end }}
{{- $grace := .Values.config.shutdownGrace | trimSuffix "s" | float64 }}
{{- if lt (float64 .Values.terminationGracePeriodSeconds) (addf $grace 5) }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must be at least config.shutdownGrace (%s) + 5 s, or Kubernetes kills retryd before it has drained" .Values.terminationGracePeriodSeconds .Values.config.shutdownGrace) }}
{{- end }}
{{- if gt $grace 300.0 }}
{{- fail "config.shutdownGrace: must be between 0s and 300s" }}
{{- end }}
{{- end }}

{{/* The retryd.v1.ServerConfig JSON rendered from the values. */}}
{{- define "retryd.configJson" -}}
{{- $cfg := dict
  "grpcAddr" (printf "0.0.0.0:%s" (include "retryd.grpcContainerPort" .))
  "metricsAddr" (printf "0.0.0.0:%s" (include "retryd.metricsContainerPort" .))
  "dataDir" "/data"
  "shutdownGrace" .Values.config.shutdownGrace
  "insecureAllowRemote" .Values.insecureAllowRemote
  "logLevel" .Values.logLevel }}
{{- with .Values.config.limits }}
{{- $_ := set $cfg "limits" . }}
{{- end }}
{{- $policies := list }}
{{- range $name := keys .Values.config.policies | sortAlpha }}
{{- $p := deepCopy (get $.Values.config.policies $name) | default dict }}
{{- $_ := set $p "name" $name }}
{{- $policies = append $policies $p }}
{{- end }}
{{- if $policies }}
{{- $_ := set $cfg "policies" $policies }}
{{- end }}
{{- toPrettyJson $cfg }}
{{- end }}
