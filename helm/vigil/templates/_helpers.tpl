{{- define "vigil.fullname" -}}
{{- printf "%s-vigil" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "vigil.labels" -}}
app.kubernetes.io/name: vigil
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{- define "vigil.selector" -}}
app.kubernetes.io/name: vigil
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Flags every Vigil container gets. */}}
{{- define "vigil.commonArgs" -}}
- -data-dir=/data
- -server.http-listen-address=0.0.0.0
- -server.grpc-listen-address=0.0.0.0
- -memberlist.bind-addr=0.0.0.0
- -auth.mode={{ .Values.auth.mode }}
{{- if eq .Values.auth.mode "none" }}
- -auth.none-allow-non-loopback=true
{{- else }}
- -auth.credentials-file=/etc/vigil/auth/credentials.yaml
{{- end }}
- -memberlist.join=dns+{{ include "vigil.fullname" . }}-gossip.{{ .Release.Namespace }}.svc.cluster.local:7946
{{- if eq .Values.mode "microservices" }}
- -ingester.ring.replication-factor=3
- -ingester.ring.zone-awareness-enabled=true
- -store-gateway.ring.replication-factor=3
- -store-gateway.ring.zone-awareness-enabled=true
{{- end }}
{{- if eq .Values.storage.backend "s3" }}
- -storage.backend=s3
- -storage.s3.endpoint={{ required "storage.s3.endpoint is required" .Values.storage.s3.endpoint }}
- -storage.s3.bucket-name={{ required "storage.s3.bucketName is required" .Values.storage.s3.bucketName }}
- -storage.s3.region={{ .Values.storage.s3.region }}
- -storage.s3.access-key-id={{ .Values.storage.s3.accessKeyId }}
- -storage.s3.secret-access-key=$(S3_SECRET_ACCESS_KEY)
- -storage.s3.insecure={{ .Values.storage.s3.insecure }}
{{- end }}
{{- range .Values.extraArgs }}
- {{ . }}
{{- end }}
{{- end -}}

{{- define "vigil.env" -}}
{{- if and (eq .Values.storage.backend "s3") .Values.storage.s3.secretName }}
env:
  - name: S3_SECRET_ACCESS_KEY
    valueFrom:
      secretKeyRef:
        name: {{ .Values.storage.s3.secretName }}
        key: secret-access-key
{{- end }}
{{- end -}}

{{- define "vigil.ports" -}}
ports:
  - {name: http, containerPort: 9009}
  - {name: grpc, containerPort: 9095}
  - {name: gossip, containerPort: 7946}
readinessProbe:
  httpGet: {path: /ready, port: http}
  periodSeconds: 5
{{- end -}}

{{/* The credentials file of -auth.mode=sigv4, from a Secret. */}}
{{- define "vigil.authMount" -}}
{{- if eq .Values.auth.mode "sigv4" }}
- {name: auth, mountPath: /etc/vigil/auth, readOnly: true}
{{- end }}
{{- end -}}

{{- define "vigil.authVolume" -}}
{{- if eq .Values.auth.mode "sigv4" }}
- name: auth
  secret: {secretName: {{ .Values.auth.credentialsSecret }}}
{{- end }}
{{- end -}}
