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
Mount points of the token and certificate Secrets, nested in the ConfigMap's /etc/retryd (the
kubelet makes mount points inside read-only ConfigMap/Secret volumes since Kubernetes 1.10,
kubernetes/kubernetes#60342).
*/}}
{{- define "retryd.authDir" -}}/etc/retryd/auth{{- end }}
{{- define "retryd.tlsDir" -}}/etc/retryd/tls{{- end }}

{{/*
"true" when the state lives in PostgreSQL (store.type postgres): several stateless replicas that
all serve, in a Deployment with rolling updates and a PodDisruptionBudget, no volume; else ""
(SQLite: one StatefulSet pod).
*/}}
{{- define "retryd.postgres" -}}
{{- if eq .Values.store.type "postgres" }}true{{ end }}
{{- end }}

{{/* "true" when bearer tokens are configured (auth.tokens or auth.existingSecret), else "". */}}
{{- define "retryd.authEnabled" -}}
{{- if or .Values.auth.tokens .Values.auth.existingSecret }}true{{ end }}
{{- end }}

{{/* The Secret holding tokens.json: the existing one, or the chart's own. */}}
{{- define "retryd.authSecretName" -}}
{{- .Values.auth.existingSecret | default (printf "%s-auth" (include "retryd.fullname" .)) }}
{{- end }}

{{/* "true" when every caller must present a client certificate (mTLS), else "". */}}
{{- define "retryd.clientCertsRequired" -}}
{{- if and .Values.tls.enabled (eq .Values.tls.clientAuth "require") }}true{{ end }}
{{- end }}

{{/*
"true" when retryd authenticates its callers, so that it may listen on 0.0.0.0 without
--insecure-allow-remote: tokens, or required client certificates. TLS without a required client
certificate authenticates only the server.
*/}}
{{- define "retryd.callersAuthenticated" -}}
{{- if or (include "retryd.authEnabled" .) (include "retryd.clientCertsRequired" .) }}true{{ end }}
{{- end }}

{{/* The name the probes and `helm test` check the server certificate against. */}}
{{- define "retryd.tlsServerName" -}}
{{- .Values.tls.serverName | default (printf "%s.%s.svc" (include "retryd.fullname" .) .Release.Namespace) }}
{{- end }}

{{/* The auth.tokens map as a retryd.v1.AuthConfig JSON ({"tokens": [...]}), sorted by name. */}}
{{- define "retryd.tokensJson" -}}
{{- $tokens := list }}
{{- range $name := keys .Values.auth.tokens | sortAlpha }}
{{- $t := deepCopy (get $.Values.auth.tokens $name) }}
{{- $_ := set $t "name" $name }}
{{- $tokens = append $tokens $t }}
{{- end }}
{{- dict "tokens" $tokens | toJson }}
{{- end }}

{{/*
Arguments of `retryctl` that reach the local retryd's gRPC port (a probe in the retryd
container) or the Service (`helm test`), over TLS when tls.enabled; then "health" and the health
service to check. Pass a dict: root (the chart context), server (host:port), timeout (seconds),
service (health service name, "" for the server as a whole). Under clientAuth "require" the
caller presents the pod's own certificate (tls.crt, tls.key) as its client certificate.
*/}}
{{- define "retryd.healthCommand" -}}
{{- $root := .root -}}
- /usr/local/bin/retryctl
- --server
- {{ .server | quote }}
- --timeout
- "{{ .timeout }}s"
{{- if $root.Values.tls.enabled }}
- --tls
- --tls-ca
- "{{ include "retryd.tlsDir" $root }}/ca.crt"
- --tls-server-name
- {{ include "retryd.tlsServerName" $root | quote }}
{{- if include "retryd.clientCertsRequired" $root }}
- --tls-cert
- "{{ include "retryd.tlsDir" $root }}/tls.crt"
- --tls-key
- "{{ include "retryd.tlsDir" $root }}/tls.key"
{{- end }}
{{- end }}
- health
{{- if .service }}
- --service-name
- {{ .service | quote }}
{{- end }}
{{- end }}

{{/*
The handler of one probe of the retryd container. Plaintext: Kubernetes' gRPC probe on the
numeric port (health needs no token). TLS: the kubelet's gRPC probe cannot verify the
certificate nor present a client certificate, so `retryctl health` runs in the container against
127.0.0.1 (its deadline the probe's timeout). Pass a dict: root, service, timeout (seconds).
*/}}
{{- define "retryd.probeHandler" -}}
{{- if .root.Values.tls.enabled -}}
exec:
  command:
    {{- include "retryd.healthCommand" (dict "root" .root "server" (printf "127.0.0.1:%s" (include "retryd.grpcContainerPort" .root)) "timeout" .timeout "service" .service) | nindent 4 }}
{{- else -}}
grpc:
  port: {{ include "retryd.grpcContainerPort" .root }}
  service: {{ .service | quote }}
{{- end }}
{{- end }}

{{/*
Checks that values.schema.json cannot express. Included by the StatefulSet and the ConfigMap so
that any render of the chart runs them.
*/}}
{{- define "retryd.validate" -}}
{{- if and .Values.auth.tokens .Values.auth.existingSecret }}
{{- fail "auth: set auth.tokens (rendered into the chart's Secret) or auth.existingSecret (a Secret with the key tokens.json), not both" }}
{{- end }}
{{- $digests := dict }}
{{- range $name := keys .Values.auth.tokens | sortAlpha }}
{{- $t := get $.Values.auth.tokens $name }}
{{- if and (eq $t.role "OPERATOR") $t.services }}
{{- fail (printf "auth.tokens.%s.services: only a WORKER token is limited to services; an OPERATOR may do everything" $name) }}
{{- end }}
{{- with get $digests $t.sha256 }}
{{- fail (printf "auth.tokens.%s.sha256: the same digest as auth.tokens.%s; each token needs its own secret" $name .) }}
{{- end }}
{{- $_ := set $digests $t.sha256 $name }}
{{- end }}
{{- if and .Values.tls.enabled (not .Values.tls.existingSecret) }}
{{- fail "tls.enabled: set tls.existingSecret to a kubernetes.io/tls Secret in the release's namespace (keys tls.crt, tls.key and ca.crt, e.g. from cert-manager); the chart does not make certificates" }}
{{- end }}
{{- if and (not .Values.tls.enabled) (ne .Values.tls.clientAuth "none") }}
{{- fail (printf "tls.clientAuth: %q needs tls.enabled=true (client certificates are a TLS feature); without it the port would be plaintext" .Values.tls.clientAuth) }}
{{- end }}
{{- if and (not (include "retryd.callersAuthenticated" .)) (not .Values.insecureAllowRemote) }}
{{- fail "insecureAllowRemote: retryd listens on 0.0.0.0 in the pod and refuses that when callers are not authenticated; configure auth.tokens or auth.existingSecret, or tls.enabled with tls.clientAuth=require, or set insecureAllowRemote=true to serve it unauthenticated" }}
{{- end }}
{{- $grace := .Values.config.shutdownGrace | trimSuffix "s" | float64 }}
{{- if lt (float64 .Values.terminationGracePeriodSeconds) (addf $grace 5) }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must be at least config.shutdownGrace (%s) + 5 s, or Kubernetes kills retryd before it has drained" .Values.terminationGracePeriodSeconds .Values.config.shutdownGrace) }}
{{- end }}
{{- if gt $grace 300.0 }}
{{- fail "config.shutdownGrace: must be between 0s and 300s" }}
{{- end }}
{{- include "retryd.validateStore" . }}
{{- include "retryd.validateConsole" . }}
{{- end }}

{{/* store.*: what the schema cannot say about PostgreSQL mode. */}}
{{- define "retryd.validateStore" -}}
{{- if include "retryd.postgres" . }}
{{- $pg := .Values.store.postgres }}
{{- if not $pg.existingSecret }}
{{- fail "store.postgres.existingSecret: store.type postgres needs a Secret in the release's namespace whose key store.postgres.secretKey holds the connection string (passed as RETRYD_POSTGRES_DSN; the chart never takes a password in its values)" }}
{{- end }}
{{- if .Values.persistence.existingClaim }}
{{- fail "persistence.existingClaim: store.type postgres keeps no state in the pod (there is no volume); the claim is for store.type sqlite" }}
{{- end }}
{{- $ru := $pg.rollingUpdate }}
{{- if and (has (toString $ru.maxUnavailable) (list "0" "0%")) (has (toString $ru.maxSurge) (list "0" "0%")) }}
{{- fail "store.postgres.rollingUpdate: maxUnavailable and maxSurge cannot both be 0, or an update could never replace a pod (Kubernetes refuses it too); keep maxSurge 1 to roll without losing capacity" }}
{{- end }}
{{- $pdb := $pg.podDisruptionBudget }}
{{- if and $pdb.enabled (eq (toString $pdb.maxUnavailable) "") (not (kindIs "string" $pdb.minAvailable)) }}
{{- if ge (int $pdb.minAvailable) (int $pg.replicaCount) }}
{{- fail (printf "store.postgres.podDisruptionBudget.minAvailable (%v) must be below store.postgres.replicaCount (%v), or no node drain can ever evict a retryd pod" $pdb.minAvailable $pg.replicaCount) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* console.*: the web console's port and Ingress. */}}
{{- define "retryd.validateConsole" -}}
{{- $c := .Values.console }}
{{- if and $c.enabled (has (int $c.port) (list 50051 9464)) }}
{{- fail (printf "console.port: %v is taken by gRPC (50051) or metrics (9464) in the pod" $c.port) }}
{{- end }}
{{- if and $c.enabled (not (include "retryd.authEnabled" .)) (include "retryd.callersAuthenticated" .) }}
{{- fail "console.enabled: the console signs operators in with bearer tokens and listens on 0.0.0.0, which retryd refuses without auth.tokens or auth.existingSecret (required client certificates cover the gRPC port only)" }}
{{- end }}
{{- if and $c.ingress.enabled (not $c.enabled) }}
{{- fail "console.ingress.enabled: needs console.enabled=true (there is no console port to route to)" }}
{{- end }}
{{- if and $c.enabled $c.ingress.enabled (not $c.ingress.host) }}
{{- fail "console.ingress.host: set the host name the Ingress serves the console on" }}
{{- end }}
{{- if and $c.enabled $c.ingress.enabled $c.ingress.tls.enabled (not $c.ingress.tls.secretName) }}
{{- fail "console.ingress.tls.secretName: console.ingress.tls.enabled needs a kubernetes.io/tls Secret for console.ingress.host" }}
{{- end }}
{{- end }}

{{/* The retryd.v1.ServerConfig JSON rendered from the values. */}}
{{- define "retryd.configJson" -}}
{{- $cfg := dict
  "grpcAddr" (printf "0.0.0.0:%s" (include "retryd.grpcContainerPort" .))
  "metricsAddr" (printf "0.0.0.0:%s" (include "retryd.metricsContainerPort" .))
  "dataDir" "/data"
  "shutdownGrace" .Values.config.shutdownGrace
  "insecureAllowRemote" (and .Values.insecureAllowRemote (not (include "retryd.callersAuthenticated" .)))
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
