{{/* Chart name (also the Prometheus job label: keep it "chatload" for the alert rules). */}}
{{- define "chatload.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name, at most 63 characters (DNS names). */}}
{{- define "chatload.fullname" -}}
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

{{- define "chatload.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "chatload.selectorLabels" -}}
app.kubernetes.io/name: {{ include "chatload.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "chatload.labels" -}}
helm.sh/chart: {{ include "chatload.chart" . }}
{{ include "chatload.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: chatload
{{- end }}

{{/* The Secret the pods read CHATLOAD_* variables from, or "" when there is none. */}}
{{- define "chatload.secretName" -}}
{{- if .Values.secrets.existingSecret }}
{{- .Values.secrets.existingSecret }}
{{- else if or .Values.secrets.scyllaPassword .Values.secrets.redisPassword }}
{{- include "chatload.fullname" . }}
{{- end }}
{{- end }}

{{/*
A probe from values (dict "probe" PROBE "root" $). With web.existingSecret an httpGet probe gets
scheme HTTPS (web.tls) and the Authorization header web.probeAuthorization; other probes (tcpSocket,
exec) are rendered as given. The kubelet cannot read probe headers from a Secret.
*/}}
{{- define "chatload.probe" -}}
{{- $probe := deepCopy .probe -}}
{{- $web := .root.Values.web -}}
{{- if and $web.existingSecret $probe.httpGet -}}
{{- if $web.tls -}}
{{- $_ := set $probe.httpGet "scheme" "HTTPS" -}}
{{- end -}}
{{- with $web.probeAuthorization -}}
{{- $headers := default list $probe.httpGet.httpHeaders -}}
{{- $_ := set $probe.httpGet "httpHeaders" (append $headers (dict "name" "Authorization" "value" .)) -}}
{{- end -}}
{{- end -}}
{{- toYaml $probe -}}
{{- end }}

{{/* Path of a file in a mounted Secret: (list MOUNTPATH FILE). */}}
{{- define "chatload.mountedFile" -}}
{{- printf "%s/%s" (trimSuffix "/" (index . 0)) (index . 1) -}}
{{- end }}

{{/*
The ca_file, cert_file and key_file lines of [scylla.tls] / [redis.tls] (argument: tls.backends),
one per line, for the files named; nothing without tls.backends.existingSecret.
*/}}
{{- define "chatload.tlsFiles" -}}
{{- if .existingSecret -}}
{{- $lines := list -}}
{{- range $key, $file := dict "ca_file" .caFile "cert_file" .certFile "key_file" .keyFile -}}
{{- if $file -}}
{{- $lines = append $lines (printf "%s = %s" $key (include "chatload.mountedFile" (list $.mountPath $file) | toJson)) -}}
{{- end -}}
{{- end -}}
{{- join "\n" $lines -}}
{{- end -}}
{{- end }}

{{- define "chatload.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
The pod template shared by the Deployment (replicaCount 1) and the StatefulSet (replicaCount > 1).
*/}}
{{- define "chatload.podTemplate" -}}
{{- $scaleOut := gt (int .Values.replicaCount) 1 -}}
metadata:
  labels:
    {{- include "chatload.selectorLabels" . | nindent 4 }}
    app.kubernetes.io/component: load-generator
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    # Restart the pods when the rendered configuration changes.
    checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.podSecurityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: chatload
      image: {{ include "chatload.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args: ["run", "--config", "/etc/chatload/chatload.toml"]
      ports:
        - name: http-metrics
          containerPort: 9742
          protocol: TCP
      {{- if or $scaleOut .Values.env }}
      env:
        {{- if $scaleOut }}
        # instance.index: the trailing ordinal of the pod name; instance.count: the replicas.
        - name: CHATLOAD_POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        - name: CHATLOAD_INSTANCE__COUNT
          value: {{ .Values.replicaCount | int | quote }}
        {{- end }}
        {{- with .Values.env }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- end }}
      {{- with (include "chatload.secretName" .) }}
      envFrom:
        - secretRef:
            name: {{ . }}
      {{- end }}
      {{- with .Values.livenessProbe }}
      livenessProbe:
        {{- include "chatload.probe" (dict "probe" . "root" $) | nindent 8 }}
      {{- end }}
      {{- with .Values.readinessProbe }}
      readinessProbe:
        {{- include "chatload.probe" (dict "probe" . "root" $) | nindent 8 }}
      {{- end }}
      {{- with .Values.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.securityContext }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumeMounts:
        - name: config
          mountPath: /etc/chatload
          readOnly: true
        {{- if .Values.tls.backends.existingSecret }}
        # TLS files for the backends (read when chatload starts).
        - name: backend-tls
          mountPath: {{ .Values.tls.backends.mountPath }}
          readOnly: true
        {{- end }}
        {{- if .Values.web.existingSecret }}
        # The web config of chatload's endpoints and its files (re-read on SIGHUP or POST /-/reload).
        - name: web-config
          mountPath: {{ .Values.web.mountPath }}
          readOnly: true
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "chatload.fullname" . }}
    {{- with .Values.tls.backends.existingSecret }}
    - name: backend-tls
      secret:
        secretName: {{ . }}
    {{- end }}
    {{- with .Values.web.existingSecret }}
    - name: web-config
      secret:
        secretName: {{ . }}
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
