{{/*
The retryd pod: the same container, probes, security context and Secrets for both stores. The
StatefulSet (store.type sqlite) and the Deployment (store.type postgres) include it as their
template; what differs by store is decided here with retryd.postgres.
*/}}
{{- define "retryd.podTemplate" -}}
metadata:
  labels:
    {{- include "retryd.labels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include "retryd.configJson" . | sha256sum }}
    {{- /* The chart's own token Secret: a token change rolls the pod (retryd reads the file at
    start). An auth.existingSecret is not the chart's to watch: restart after changing it. */}}
    {{- if and .Values.auth.tokens (not .Values.auth.existingSecret) }}
    checksum/auth: {{ include "retryd.tokensJson" . | sha256sum }}
    {{- end }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "retryd.serviceAccountName" . }}
  automountServiceAccountToken: false
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  {{- /* Longer than config.shutdownGrace (checked in retryd.validate). */}}
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  containers:
    - name: retryd
      image: {{ include "retryd.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - "--config=/etc/retryd/retryd.json"
        - "--log-format={{ .Values.logFormat }}"
        {{- if include "retryd.authEnabled" . }}
        - "--auth-file={{ include "retryd.authDir" . }}/tokens.json"
        {{- end }}
        {{- if .Values.tls.enabled }}
        - "--tls-cert={{ include "retryd.tlsDir" . }}/tls.crt"
        - "--tls-key={{ include "retryd.tlsDir" . }}/tls.key"
        {{- if ne .Values.tls.clientAuth "none" }}
        - "--tls-client-ca={{ include "retryd.tlsDir" . }}/ca.crt"
        - "--tls-client-auth={{ .Values.tls.clientAuth }}"
        {{- end }}
        {{- end }}
        {{- if include "retryd.postgres" . }}
        - "--store=postgres"
        {{- end }}
        {{- if .Values.console.enabled }}
        - "--console-addr=0.0.0.0:{{ .Values.console.port }}"
        {{- end }}
        {{- range .Values.extraArgs }}
        - {{ . | quote }}
        {{- end }}
      {{- if or .Values.extraEnv (include "retryd.postgres" .) }}
      env:
        {{- if include "retryd.postgres" . }}
        {{- /* The DSN (with its password) only ever comes from the existing Secret. */}}
        - name: RETRYD_POSTGRES_DSN
          valueFrom:
            secretKeyRef:
              name: {{ .Values.store.postgres.existingSecret | quote }}
              key: {{ .Values.store.postgres.secretKey | quote }}
        {{- end }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- end }}
      ports:
        - name: grpc
          containerPort: {{ include "retryd.grpcContainerPort" . }}
          protocol: TCP
        - name: metrics
          containerPort: {{ include "retryd.metricsContainerPort" . }}
          protocol: TCP
        {{- if .Values.console.enabled }}
        - name: console
          containerPort: {{ .Values.console.port }}
          protocol: TCP
        {{- end }}
      {{- /* See retryd.probeHandler: gRPC probes on the numeric port, exec probes with
      `retryctl health` when the port speaks TLS. */}}
      {{- with .Values.probes.startup }}
      {{- if .enabled }}
      startupProbe:
        {{- include "retryd.probeHandler" (dict "root" $ "service" "" "timeout" (.timeoutSeconds | default 2)) | nindent 8 }}
        initialDelaySeconds: {{ .initialDelaySeconds | default 0 }}
        periodSeconds: {{ .periodSeconds | default 2 }}
        timeoutSeconds: {{ .timeoutSeconds | default 2 }}
        failureThreshold: {{ .failureThreshold | default 60 }}
      {{- end }}
      {{- end }}
      {{- with .Values.probes.readiness }}
      {{- if .enabled }}
      readinessProbe:
        {{- include "retryd.probeHandler" (dict "root" $ "service" "retryd.v1.RetryService" "timeout" (.timeoutSeconds | default 2)) | nindent 8 }}
        initialDelaySeconds: {{ .initialDelaySeconds | default 0 }}
        periodSeconds: {{ .periodSeconds | default 5 }}
        timeoutSeconds: {{ .timeoutSeconds | default 2 }}
        failureThreshold: {{ .failureThreshold | default 2 }}
      {{- end }}
      {{- end }}
      {{- with .Values.probes.liveness }}
      {{- if .enabled }}
      livenessProbe:
        {{- include "retryd.probeHandler" (dict "root" $ "service" "" "timeout" (.timeoutSeconds | default 3)) | nindent 8 }}
        initialDelaySeconds: {{ .initialDelaySeconds | default 0 }}
        periodSeconds: {{ .periodSeconds | default 10 }}
        timeoutSeconds: {{ .timeoutSeconds | default 3 }}
        failureThreshold: {{ .failureThreshold | default 3 }}
      {{- end }}
      {{- end }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      volumeMounts:
        - name: data
          mountPath: /data
        - name: config
          mountPath: /etc/retryd
          readOnly: true
        - name: tmp
          mountPath: /tmp
        {{- if include "retryd.authEnabled" . }}
        - name: auth
          mountPath: {{ include "retryd.authDir" . }}
          readOnly: true
        {{- end }}
        {{- if .Values.tls.enabled }}
        - name: tls
          mountPath: {{ include "retryd.tlsDir" . }}
          readOnly: true
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "retryd.fullname" . }}
    {{- if include "retryd.authEnabled" . }}
    - name: auth
      secret:
        secretName: {{ include "retryd.authSecretName" . }}
        items:
          - key: tokens.json
            path: tokens.json
    {{- end }}
    {{- if .Values.tls.enabled }}
    - name: tls
      secret:
        secretName: {{ .Values.tls.existingSecret }}
    {{- end }}
    - name: tmp
      emptyDir: {}
    {{- if include "retryd.postgres" . }}
    {{- /* PostgreSQL keeps the state: /data is scratch, nothing there outlives the pod. */}}
    - name: data
      emptyDir: {}
    {{- else if and .Values.persistence.enabled .Values.persistence.existingClaim }}
    - name: data
      persistentVolumeClaim:
        claimName: {{ .Values.persistence.existingClaim }}
    {{- else if not .Values.persistence.enabled }}
    - name: data
      emptyDir: {}
    {{- end }}
  {{- if and (include "retryd.postgres" .) .Values.store.postgres.spreadAcrossNodes }}
  {{- /* Replicas on different nodes where the scheduler can: one node's loss is not all of them. */}}
  topologySpreadConstraints:
    - maxSkew: 1
      topologyKey: kubernetes.io/hostname
      whenUnsatisfiable: ScheduleAnyway
      labelSelector:
        matchLabels:
          {{- include "retryd.selectorLabels" . | nindent 10 }}
  {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
