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
{{- else if .Values.secrets.scyllaPassword }}
{{- include "chatload.fullname" . }}
{{- end }}
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
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.readinessProbe }}
      readinessProbe:
        {{- toYaml . | nindent 8 }}
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
  volumes:
    - name: config
      configMap:
        name: {{ include "chatload.fullname" . }}
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
