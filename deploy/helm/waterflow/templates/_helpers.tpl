{{/* Common names and labels. */}}
{{- define "waterflow.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "waterflow.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "waterflow.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "waterflow.natsUrl" -}}
{{- if .Values.nats.enabled -}}
nats://{{ .Release.Name }}-nats:4222
{{- else -}}
{{ required "set externalNats.url or nats.enabled=true" .Values.externalNats.url }}
{{- end -}}
{{- end -}}

{{/* Environment shared by every service. */}}
{{- define "waterflow.env" -}}
- name: WATERFLOW_NATS_URL
  value: {{ include "waterflow.natsUrl" . | quote }}
- name: WATERFLOW_LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
- name: WATERFLOW_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: WATERFLOW_STREAM_REPLICAS
  value: {{ .Values.streamReplicas | quote }}
{{- if .Values.externalNats.credsSecret }}
- name: WATERFLOW_NATS_CREDS
  value: /etc/waterflow/nats/creds
{{- end }}
{{- end -}}

{{- define "waterflow.credsVolume" -}}
{{- if .Values.externalNats.credsSecret }}
- name: nats-creds
  secret:
    secretName: {{ .Values.externalNats.credsSecret }}
{{- end }}
{{- end -}}

{{- define "waterflow.credsMount" -}}
{{- if .Values.externalNats.credsSecret }}
- name: nats-creds
  mountPath: /etc/waterflow/nats
  readOnly: true
{{- end }}
{{- end -}}
