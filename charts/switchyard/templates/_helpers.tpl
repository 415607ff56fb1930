{{- define "switchyard.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "switchyard.labels" -}}
app.kubernetes.io/name: switchyard
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The labels that select one component's pods. Called with (list $ component). */}}
{{- define "switchyard.selectorLabels" -}}
app.kubernetes.io/instance: {{ (index . 0).Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/*
The labels of one component's objects, with `extra` labels beside them (the chart's own win:
selectors rely on them). Called with (list $ component extra).
*/}}
{{- define "switchyard.componentLabels" -}}
{{- $labels := include "switchyard.labels" (index . 0) | fromYaml -}}
{{- $_ := set $labels "app.kubernetes.io/component" (index . 1) -}}
{{- merge $labels (index . 2 | default dict) | toYaml -}}
{{- end -}}

{{/*
Name of one component's RBAC grants (they may live outside the release namespace): with
controller.instanceId, the id is part of it so that a second install beside the first
claims its own ClusterRoles. Called with (list $ component).
*/}}
{{- define "switchyard.grantName" -}}
{{- $root := index . 0 -}}
switchyard-{{ index . 1 }}{{ with $root.Values.controller.instanceId }}-{{ . }}{{ end }}
{{- end -}}

{{/* Restricted Pod Security Standard, for every container the chart runs. */}}
{{- define "switchyard.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities: {drop: [ALL]}
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{/*
A component's pod template metadata: the chart's labels (podLabels cannot replace them, the
selectors rely on them) and the prometheus.io annotations for a Prometheus configured by
hand (podAnnotations may override them). Called with (list $ component port).
*/}}
{{- define "switchyard.podMetadata" -}}
{{- $root := index . 0 -}}
{{- $component := index . 1 -}}
{{- $values := index $root.Values $component -}}
{{- $annotations := dict "prometheus.io/scrape" "true" "prometheus.io/port" (toString (index . 2)) -}}
labels:
  {{- include "switchyard.componentLabels" (list $root $component $values.podLabels) | nindent 2 }}
annotations:
  {{- merge (deepCopy $values.podAnnotations) $annotations | toYaml | nindent 2 }}
{{- end -}}

{{/*
Where a component's pods run: pull secrets, priority, node selection and the spread of its
replicas. A topology spread constraint without a labelSelector gets the component's pods'
selector, and matchLabelKeys [pod-template-hash] so that a rollout's old ReplicaSet does not
count against the new one. Called with (list $ component).
*/}}
{{- define "switchyard.podPlacement" -}}
{{- $root := index . 0 -}}
{{- $component := index . 1 -}}
{{- $values := index $root.Values $component -}}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with $values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- $spread := list }}
{{- range $values.topologySpreadConstraints }}
{{- $c := deepCopy . }}
{{- if not (hasKey $c "labelSelector") }}
{{- $_ := set $c "labelSelector" (dict "matchLabels" (include "switchyard.selectorLabels" (list $root $component) | fromYaml)) }}
{{- if not (hasKey $c "matchLabelKeys") }}
{{- $_ := set $c "matchLabelKeys" (list "pod-template-hash") }}
{{- end }}
{{- end }}
{{- $spread = append $spread $c }}
{{- end }}
{{- with $spread }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
A component's PodDisruptionBudget, when it has more than one replica (or may have, with
autoscaling): a budget over one pod protects nothing and could only hold a drain up. Unhealthy
pods may always be evicted: one that is not ready protects nothing either, and must not block
a drain. Called with (list $ component).
*/}}
{{- define "switchyard.pdb" -}}
{{- $root := index . 0 -}}
{{- $component := index . 1 -}}
{{- $values := index $root.Values $component -}}
{{- $autoscaling := and (hasKey $values "autoscaling") $values.autoscaling.enabled -}}
{{- if and $values.pdb.enabled (or $autoscaling (gt (int $values.replicas) 1)) }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: switchyard-{{ $component }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "switchyard.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ $component }}
spec:
  maxUnavailable: {{ $values.pdb.maxUnavailable }}
  unhealthyPodEvictionPolicy: AlwaysAllow
  selector:
    matchLabels:
      {{- include "switchyard.selectorLabels" (list $root $component) | nindent 6 }}
{{- end }}
{{- end -}}
