{{/* Names, labels and the shared pod pieces of the dayzero chart. */}}

{{- define "dayzero.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* A component's name: dayzero.name (dict "root" $ "component" "gateway"). */}}
{{- define "dayzero.name" -}}
{{- printf "%s-%s" (include "dayzero.fullname" .root | trunc 50 | trimSuffix "-") .component -}}
{{- end -}}

{{- define "dayzero.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: dayzero
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: dayzero
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end -}}

{{- define "dayzero.selectorLabels" -}}
app.kubernetes.io/name: dayzero
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "dayzero.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "dayzero.routingConfigMap" -}}
{{- .Values.gateway.routingConfigMap | default (include "dayzero.name" (dict "root" . "component" "routing")) -}}
{{- end -}}

{{- define "dayzero.gatewayURL" -}}
{{- printf "http://%s.%s.svc:%v" (include "dayzero.name" (dict "root" . "component" "gateway")) .Release.Namespace .Values.gateway.service.port -}}
{{- end -}}

{{- define "dayzero.redisURL" -}}
{{- if .Values.redis.enabled -}}
{{- printf "redis://%s.%s.svc:6379/0" (include "dayzero.name" (dict "root" . "component" "redis")) .Release.Namespace -}}
{{- else -}}
{{- .Values.gateway.redisUrl -}}
{{- end -}}
{{- end -}}

{{/* The pod-level fields every dayzero pod shares. */}}
{{- define "dayzero.podCommon" -}}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Fails the render when the gateway would run several replicas without shared state. */}}
{{- define "dayzero.checkGatewayReplicas" -}}
{{- $g := .Values.gateway -}}
{{- $many := or (gt (int $g.replicas) 1) (and $g.autoscaling.enabled (gt (int $g.autoscaling.maxReplicas) 1)) -}}
{{- if and $many (not .Values.redis.enabled) (not $g.redisUrl) -}}
{{- fail "gateway: several replicas (gateway.replicas > 1 or gateway.autoscaling) share budgets and circuits through Redis: set redis.enabled=true or gateway.redisUrl" -}}
{{- end -}}
{{- end -}}
