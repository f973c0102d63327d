{{/*
Chart name, truncated to the 63 characters a DNS label allows.
*/}}
{{- define "fonestorm-bridge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: <release>-<chart>, or the release name when it already contains
the chart name. Truncated so that "-receiver"/"-worker" suffixes still fit in 63 characters.
*/}}
{{- define "fonestorm-bridge.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version, as used by the helm.sh/chart label.
*/}}
{{- define "fonestorm-bridge.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels shared by every component (name + instance).
*/}}
{{- define "fonestorm-bridge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fonestorm-bridge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Common labels of every resource.
*/}}
{{- define "fonestorm-bridge.labels" -}}
helm.sh/chart: {{ include "fonestorm-bridge.chart" . }}
{{ include "fonestorm-bridge.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: fonestorm-bridge
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels of one component. Call with (dict "root" $ "component" "receiver").
*/}}
{{- define "fonestorm-bridge.componentSelectorLabels" -}}
{{ include "fonestorm-bridge.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Labels of one component's resources. Call with (dict "root" $ "component" "receiver").
*/}}
{{- define "fonestorm-bridge.componentLabels" -}}
{{ include "fonestorm-bridge.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Name of one component's resources: <fullname>-<component>.
*/}}
{{- define "fonestorm-bridge.componentName" -}}
{{- printf "%s-%s" (include "fonestorm-bridge.fullname" .root) .component }}
{{- end }}

{{/*
ServiceAccount name.
*/}}
{{- define "fonestorm-bridge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "fonestorm-bridge.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Container image reference: repository@digest, else repository:tag (tag default appVersion).
*/}}
{{- define "fonestorm-bridge.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/*
Container port of the bridge's HTTP server (config.http.port, else the bridge default 8080).
*/}}
{{- define "fonestorm-bridge.httpPort" -}}
{{- .Values.config.http.port | default 8080 | int }}
{{- end }}

{{/*
Container port of the operations endpoints (/healthz, /readyz, /metrics) when they have their
own: config.http.adminPort. Empty when unset: then the HTTP port serves them with the callbacks.
*/}}
{{- define "fonestorm-bridge.adminPort" -}}
{{- with .Values.config.http.adminPort }}{{ . | int }}{{ end }}
{{- end }}

{{/*
The container port serving /healthz, /readyz and /metrics: its name (`admin`, else `http`)...
*/}}
{{- define "fonestorm-bridge.opsPortName" -}}
{{- if include "fonestorm-bridge.adminPort" . }}admin{{ else }}http{{ end }}
{{- end }}

{{/*
...and its number.
*/}}
{{- define "fonestorm-bridge.opsPort" -}}
{{- include "fonestorm-bridge.adminPort" . | default (include "fonestorm-bridge.httpPort" .) }}
{{- end }}

{{/*
Name of the receiver's headless metrics Service (only with config.http.adminPort), which keeps
the `admin` port off the receiver's public Service.
*/}}
{{- define "fonestorm-bridge.receiverMetricsName" -}}
{{- printf "%s-metrics" (include "fonestorm-bridge.componentName" (dict "root" . "component" "receiver")) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Names of the Services the ServiceMonitor scrapes (their job label), as a JSON list: the
receiver's metrics Service (its public Service without config.http.adminPort) and the worker's.
*/}}
{{- define "fonestorm-bridge.scrapedServices" -}}
{{- $names := list }}
{{- if .Values.receiver.enabled }}
{{- if include "fonestorm-bridge.adminPort" . }}
{{- $names = append $names (include "fonestorm-bridge.receiverMetricsName" .) }}
{{- else }}
{{- $names = append $names (include "fonestorm-bridge.componentName" (dict "root" . "component" "receiver")) }}
{{- end }}
{{- end }}
{{- if .Values.worker.enabled }}
{{- $names = append $names (include "fonestorm-bridge.componentName" (dict "root" . "component" "worker")) }}
{{- end }}
{{- $names | toJson }}
{{- end }}

{{/*
Seconds the bridge gives in-flight requests after SIGTERM (config.http.shutdownTimeout, else
the bridge default 25), rounded up.
*/}}
{{- define "fonestorm-bridge.shutdownTimeout" -}}
{{- .Values.config.http.shutdownTimeout | default 25 | float64 | ceil | int }}
{{- end }}

{{/*
Seconds a worker's create-call requests out at SIGTERM get: as long as a rebalance gives them
(80% of config.worker.rebalanceTimeout, else of the bridge default 60), or the shutdown timeout
if longer; rounded up.
*/}}
{{- define "fonestorm-bridge.workerDrainTimeout" -}}
{{- $revoke := mulf (.Values.config.worker.rebalanceTimeout | default 60 | float64) 0.8 | ceil | int }}
{{- max $revoke (include "fonestorm-bridge.shutdownTimeout" . | int) }}
{{- end }}

{{/*
The Secret of one group of secret settings (callbacks, receiver, worker): its existingSecret,
else the chart's own <fullname>-<group>. Call with (dict "root" $ "group" "worker").
*/}}
{{- define "fonestorm-bridge.secretName" -}}
{{- (index .root.Values.secrets .group).existingSecret | default (printf "%s-%s" (include "fonestorm-bridge.fullname" .root) .group) }}
{{- end }}

{{/*
Whether the Kafka protocol uses SASL.
*/}}
{{- define "fonestorm-bridge.kafkaSasl" -}}
{{- if hasPrefix "SASL_" .Values.config.kafka.securityProtocol }}true{{ end }}
{{- end }}

{{/*
The secret settings by group, as JSON: group → [env var, key name, literal value, needs SASL,
optional] entries. One group per identity: the callback basic-auth pair (FoneStorm's, shared by
the receiver that checks it and the worker that registers it), the receiver's Kafka user and
callback dead-letter signing key (and schema registry user), and the worker's FoneStorm token,
Kafka user, command dead-letter signing key (and schema registry user) (never the receiver's: it would let a forged dead letter be replayed
onto the command topic). An optional setting's reference into an existing Secret is optional,
so a Secret made before the setting existed leaves it unset instead of keeping pods from
starting.
*/}}
{{- define "fonestorm-bridge.secretGroups" -}}
{{- $s := .Values.secrets -}}
{{- dict
  "callbacks" (list
    (list "BRIDGE_CALLBACKS__USERNAME" $s.callbacks.keys.username $s.callbacks.username false false)
    (list "BRIDGE_CALLBACKS__PASSWORD" $s.callbacks.keys.password $s.callbacks.password false false))
  "receiver" (list
    (list "BRIDGE_KAFKA__SASL_USERNAME" $s.receiver.keys.kafkaSaslUsername $s.receiver.kafkaSaslUsername true false)
    (list "BRIDGE_KAFKA__SASL_PASSWORD" $s.receiver.keys.kafkaSaslPassword $s.receiver.kafkaSaslPassword true false)
    (list "BRIDGE_DEAD_LETTERS__CALLBACK_SIGNING_KEY" $s.receiver.keys.deadLetterSigningKey $s.receiver.deadLetterSigningKey false true)
    (list "BRIDGE_SCHEMAS__REGISTRY_USERNAME" $s.receiver.keys.schemaRegistryUsername $s.receiver.schemaRegistryUsername false true)
    (list "BRIDGE_SCHEMAS__REGISTRY_PASSWORD" $s.receiver.keys.schemaRegistryPassword $s.receiver.schemaRegistryPassword false true))
  "worker" (list
    (list "BRIDGE_FONESTORM__TOKEN" $s.worker.keys.fonestormToken $s.worker.fonestormToken false false)
    (list "BRIDGE_KAFKA__SASL_USERNAME" $s.worker.keys.kafkaSaslUsername $s.worker.kafkaSaslUsername true false)
    (list "BRIDGE_KAFKA__SASL_PASSWORD" $s.worker.keys.kafkaSaslPassword $s.worker.kafkaSaslPassword true false)
    (list "BRIDGE_DEAD_LETTERS__COMMAND_SIGNING_KEY" $s.worker.keys.deadLetterSigningKey $s.worker.deadLetterSigningKey false true)
    (list "BRIDGE_SCHEMAS__REGISTRY_USERNAME" $s.worker.keys.schemaRegistryUsername $s.worker.schemaRegistryUsername false true)
    (list "BRIDGE_SCHEMAS__REGISTRY_PASSWORD" $s.worker.keys.schemaRegistryPassword $s.worker.schemaRegistryPassword false true))
  | toJson }}
{{- end }}

{{/*
The secret groups a component's pods read, as a JSON list. The receiver never reads the
worker's group (the FoneStorm token); the worker reads the callback pair because registering
the callbacks sends it to FoneStorm.
*/}}
{{- define "fonestorm-bridge.componentSecretGroups" -}}
{{- if eq . "receiver" }}["callbacks","receiver"]{{ else }}["worker","callbacks"]{{ end }}
{{- end }}

{{/*
The data of the chart's own Secret of one group (base64 values by key name), as JSON; `{}`
when the group has an existingSecret or no literal value. Call with (dict "root" $ "group" ...).
*/}}
{{- define "fonestorm-bridge.secretData" -}}
{{- $data := dict }}
{{- if not (index .root.Values.secrets .group).existingSecret }}
{{- range $setting := index (include "fonestorm-bridge.secretGroups" .root | fromJson) .group }}
{{- $key := index $setting 1 }}
{{- $value := index $setting 2 }}
{{- if and $key $value }}
{{- $_ := set $data $key ($value | b64enc) }}
{{- end }}
{{- end }}
{{- end }}
{{- $data | toJson }}
{{- end }}

{{/*
The secretKeyRef env entries of one component, as a JSON list. Call with
(dict "root" $ "component" "receiver").
*/}}
{{- define "fonestorm-bridge.secretEnv" -}}
{{- $root := .root }}
{{- $sasl := include "fonestorm-bridge.kafkaSasl" $root }}
{{- $groups := include "fonestorm-bridge.secretGroups" $root | fromJson }}
{{- $env := list }}
{{- range $group := include "fonestorm-bridge.componentSecretGroups" .component | fromJsonArray }}
{{- $existing := (index $root.Values.secrets $group).existingSecret }}
{{- $name := include "fonestorm-bridge.secretName" (dict "root" $root "group" $group) }}
{{- range $setting := index $groups $group }}
{{- $key := index $setting 1 }}
{{- if and $key (or $existing (index $setting 2)) (or (not (index $setting 3)) $sasl) }}
{{- $ref := dict "name" $name "key" $key }}
{{- if and $existing (index $setting 4) }}
{{- $_ := set $ref "optional" true }}
{{- end }}
{{- $env = append $env (dict "name" (index $setting 0) "valueFrom" (dict "secretKeyRef" $ref)) }}
{{- end }}
{{- end }}
{{- end }}
{{- $env | toJson }}
{{- end }}

{{/*
Checksum of the chart-made secret data one component reads (restarts its pods when that data
changes, and only then): never a digest of another component's secrets.
*/}}
{{- define "fonestorm-bridge.secretChecksum" -}}
{{- $root := .root }}
{{- $data := dict }}
{{- range $group := include "fonestorm-bridge.componentSecretGroups" .component | fromJsonArray }}
{{- $_ := set $data $group (include "fonestorm-bridge.secretData" (dict "root" $root "group" $group) | fromJson) }}
{{- end }}
{{- $data | toJson | sha256sum }}
{{- end }}

{{/*
The Secret of one component's Kafka TLS files: its own kafkaTls.<component>Secret (its own client
certificate: its own Kafka identity with SSL), else the shared kafkaTls.existingSecret; empty
when neither. Call with (dict "root" $ "component" "receiver").
*/}}
{{- define "fonestorm-bridge.kafkaTlsSecret" -}}
{{- $tls := .root.Values.kafkaTls }}
{{- index $tls (printf "%sSecret" .component) | default $tls.existingSecret }}
{{- end }}

{{/*
Whether callback basic-auth credentials reach the pods: both key names set, and either an
existing Secret (trusted to hold them) or both literal values. Empty when not.
*/}}
{{- define "fonestorm-bridge.callbackAuth" -}}
{{- $c := .Values.secrets.callbacks }}
{{- if and $c.keys.username $c.keys.password (or $c.existingSecret (and $c.username $c.password)) }}true{{ end }}
{{- end }}

{{/*
Refuse values that would deploy something broken or leak a secret.
*/}}
{{- define "fonestorm-bridge.validate" -}}
{{- $s := .Values.secrets }}
{{- range $group := list "callbacks" "receiver" "worker" }}
{{- $g := index $s $group }}
{{- $literal := false }}
{{- range $setting := index (include "fonestorm-bridge.secretGroups" $ | fromJson) $group }}
{{- if index $setting 2 }}{{ $literal = true }}{{ end }}
{{- end }}
{{- if and $g.existingSecret $literal }}
{{- fail (printf "secrets.%s.existingSecret is set: leave the literal values of secrets.%s empty, they would be ignored" $group $group) }}
{{- end }}
{{- end }}
{{- /* Least privilege: with both components on, no Secret may serve two groups, or the
receiver's pods would be handed the Secret holding the FoneStorm token (or the worker's the
receiver's Kafka user). */}}
{{- if and .Values.receiver.enabled .Values.worker.enabled }}
{{- $seen := dict }}
{{- range $group := list "callbacks" "receiver" "worker" }}
{{- with (index $s $group).existingSecret }}
{{- if hasKey $seen . }}
{{- fail (printf "secrets.%s.existingSecret and secrets.%s.existingSecret are both %q: give each group its own Secret, so the internet-facing receiver never gets the Secret holding the FoneStorm token and each component keeps its own Kafka identity" (get $seen .) $group .) }}
{{- end }}
{{- $_ := set $seen . $group }}
{{- end }}
{{- end }}
{{- if and $s.receiver.kafkaSaslUsername (eq $s.receiver.kafkaSaslUsername $s.worker.kafkaSaslUsername) }}
{{- fail "secrets.receiver.kafkaSaslUsername and secrets.worker.kafkaSaslUsername are the same Kafka user: give each component its own, with ACLs for only the topics it uses" }}
{{- end }}
{{- if and $s.receiver.deadLetterSigningKey (eq $s.receiver.deadLetterSigningKey $s.worker.deadLetterSigningKey) }}
{{- fail "secrets.receiver.deadLetterSigningKey and secrets.worker.deadLetterSigningKey are the same key: with it the internet-facing receiver could sign a forged command dead letter that replay puts on the command topic; give each its own" }}
{{- end }}
{{- end }}
{{- /* Callback basic auth. Every component loads the callback settings, and the bridge refuses
a user without a password (or the reverse) anywhere: check the pair whatever is enabled. */}}
{{- $c := $s.callbacks }}
{{- if $c.existingSecret }}
{{- if and (or $c.keys.username $c.keys.password) (not (and $c.keys.username $c.keys.password)) }}
{{- fail "secrets.callbacks.keys.username and secrets.callbacks.keys.password go together: name both keys of secrets.callbacks.existingSecret (the bridge refuses a callback user without a password and the reverse)" }}
{{- end }}
{{- else }}
{{- if and (or $c.username $c.password) (not (and $c.username $c.password)) }}
{{- fail "secrets.callbacks.username and secrets.callbacks.password go together: set both (the bridge refuses a callback user without a password and the reverse)" }}
{{- end }}
{{- if and $c.username (not (and $c.keys.username $c.keys.password)) }}
{{- fail "secrets.callbacks.username/password are set but secrets.callbacks.keys.username or keys.password is empty: the credentials would not reach the pods" }}
{{- end }}
{{- end }}
{{- $callbackAuth := include "fonestorm-bridge.callbackAuth" . }}
{{- if .Values.receiver.enabled }}
{{- if and (not $callbackAuth) (not .Values.config.callbacks.allowUnauthenticated) }}
{{- fail "the callback receiver needs basic-auth credentials (it refuses to start without them): set secrets.callbacks.username and secrets.callbacks.password, or secrets.callbacks.existingSecret holding the keys secrets.callbacks.keys.username and secrets.callbacks.keys.password; or set config.callbacks.allowUnauthenticated=true to accept callbacks from anyone who reaches the receiver (dangerous)" }}
{{- end }}
{{- if and $callbackAuth .Values.receiver.ingress.enabled (not .Values.receiver.ingress.tls) (not .Values.receiver.ingress.tlsTerminatedUpstream) }}
{{- fail "receiver.ingress is enabled without receiver.ingress.tls: FoneStorm would send the callback basic-auth credentials over plain HTTP; add a receiver.ingress.tls entry (secretName, hosts), or set receiver.ingress.tlsTerminatedUpstream=true when HTTPS ends in front of the Ingress" }}
{{- end }}
{{- end }}
{{- if and (not .Values.receiver.enabled) (not .Values.worker.enabled) }}
{{- fail "enable at least one of receiver.enabled and worker.enabled" }}
{{- end }}
{{- $drains := dict "receiver" (include "fonestorm-bridge.shutdownTimeout" .) "worker" (include "fonestorm-bridge.workerDrainTimeout" .) }}
{{- $what := dict "receiver" "config.http.shutdownTimeout" "worker" "the worker's drain (max of config.http.shutdownTimeout and 80% of config.worker.rebalanceTimeout)" }}
{{- range $component := list "receiver" "worker" }}
{{- $c := index $.Values $component }}
{{- $budget := add $.Values.lifecycle.preStopSleepSeconds (index $drains $component | int) }}
{{- if and $c.enabled (le (int $c.terminationGracePeriodSeconds) (int $budget)) }}
{{- fail (printf "%s.terminationGracePeriodSeconds (%d) must exceed lifecycle.preStopSleepSeconds + %s (%d)" $component (int $c.terminationGracePeriodSeconds) (index $what $component) (int $budget)) }}
{{- end }}
{{- if and $c.enabled $c.autoscaling.enabled (lt (int $c.autoscaling.maxReplicas) (int $c.autoscaling.minReplicas)) }}
{{- fail (printf "%s.autoscaling.maxReplicas must be >= minReplicas" $component) }}
{{- end }}
{{- end }}
{{- if and (eq .Values.lifecycle.preStopMode "sleepAction") (semverCompare "<1.30-0" .Capabilities.KubeVersion.Version) }}
{{- fail "lifecycle.preStopMode=sleepAction needs Kubernetes >= 1.30 (PodLifecycleSleepAction); use exec" }}
{{- end }}
{{- $adminPort := include "fonestorm-bridge.adminPort" . }}
{{- if and $adminPort (eq (int $adminPort) (include "fonestorm-bridge.httpPort" . | int)) }}
{{- fail (printf "config.http.adminPort (%s) must differ from config.http.port (%s, the callback port): the admin port keeps /metrics and /readyz off the port the callbacks come in on; pick another port, or set config.http.adminPort=null to serve everything on one port" $adminPort (include "fonestorm-bridge.httpPort" .)) }}
{{- end }}
{{- if and (or .Values.kafkaTls.certKey .Values.kafkaTls.keyKey) (not (and .Values.kafkaTls.certKey .Values.kafkaTls.keyKey)) }}
{{- fail "kafkaTls.certKey and kafkaTls.keyKey go together (mTLS needs both)" }}
{{- end }}
{{- $tls := .Values.kafkaTls }}
{{- if and (or $tls.certKey $tls.keyKey) (not (or $tls.existingSecret $tls.receiverSecret $tls.workerSecret)) }}
{{- fail "kafkaTls.certKey/keyKey need kafkaTls.existingSecret (or kafkaTls.receiverSecret and kafkaTls.workerSecret)" }}
{{- end }}
{{- /* The ConfigMap names the TLS files for every component: each enabled one needs them. */}}
{{- if or $tls.existingSecret $tls.receiverSecret $tls.workerSecret }}
{{- range $component := list "receiver" "worker" }}
{{- if and (index $.Values $component).enabled (not (include "fonestorm-bridge.kafkaTlsSecret" (dict "root" $ "component" $component))) }}
{{- fail (printf "kafkaTls: the %s has no TLS files: set kafkaTls.%sSecret or kafkaTls.existingSecret" $component $component) }}
{{- end }}
{{- end }}
{{- end }}
{{- /* With SSL the client certificate is the Kafka identity: one for both would be one user. */}}
{{- if and (eq .Values.config.kafka.securityProtocol "SSL") $tls.certKey .Values.receiver.enabled .Values.worker.enabled }}
{{- if eq (include "fonestorm-bridge.kafkaTlsSecret" (dict "root" . "component" "receiver")) (include "fonestorm-bridge.kafkaTlsSecret" (dict "root" . "component" "worker")) }}
{{- fail "with SSL the client certificate is the Kafka identity, and the receiver and the worker would share one: give each its own (kafkaTls.receiverSecret, kafkaTls.workerSecret) with ACLs for only the topics it uses" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Pod template of one component. Call with (dict "root" $ "component" "receiver").
*/}}
{{- define "fonestorm-bridge.podTemplate" -}}
{{- $root := .root }}
{{- $component := .component }}
{{- $values := index $root.Values $component }}
{{- $port := include "fonestorm-bridge.httpPort" $root | int }}
{{- $adminPort := include "fonestorm-bridge.adminPort" $root }}
{{- $opsPort := include "fonestorm-bridge.opsPortName" $root }}
{{- $tlsSecret := include "fonestorm-bridge.kafkaTlsSecret" . }}
metadata:
  labels:
    {{- include "fonestorm-bridge.componentLabels" . | nindent 4 }}
    {{- with $values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
    checksum/secret: {{ include "fonestorm-bridge.secretChecksum" . }}
    {{- if $root.Values.metrics.podAnnotations }}
    prometheus.io/scrape: "true"
    prometheus.io/port: {{ include "fonestorm-bridge.opsPort" $root | quote }}
    prometheus.io/path: /metrics
    {{- end }}
    {{- with $values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "fonestorm-bridge.serviceAccountName" $root }}
  automountServiceAccountToken: false
  enableServiceLinks: false
  terminationGracePeriodSeconds: {{ $values.terminationGracePeriodSeconds }}
  {{- with $values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml $root.Values.podSecurityContext | nindent 4 }}
  containers:
    - name: {{ $component }}
      image: {{ include "fonestorm-bridge.image" $root | quote }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      args:
        {{- toYaml $values.args | nindent 8 }}
      ports:
        # Callbacks (the receiver's /callbacks/calls); also /healthz, /readyz and /metrics
        # unless config.http.adminPort gives them their own port.
        - name: http
          containerPort: {{ $port }}
          protocol: TCP
        {{- if $adminPort }}
        # /healthz, /readyz and /metrics only: probes, scraping, `helm test`.
        - name: admin
          containerPort: {{ $adminPort }}
          protocol: TCP
        {{- end }}
      envFrom:
        - configMapRef:
            name: {{ include "fonestorm-bridge.fullname" $root }}
      {{- $env := include "fonestorm-bridge.secretEnv" . | fromJsonArray }}
      {{- $env = concat $env $root.Values.extraEnv }}
      {{- with $env }}
      env:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      livenessProbe:
        httpGet:
          path: /healthz
          port: {{ $opsPort }}
        {{- toYaml $values.livenessProbe | nindent 8 }}
      readinessProbe:
        httpGet:
          path: /readyz
          port: {{ $opsPort }}
        {{- toYaml $values.readinessProbe | nindent 8 }}
      startupProbe:
        httpGet:
          path: /healthz
          port: {{ $opsPort }}
        {{- toYaml $values.startupProbe | nindent 8 }}
      lifecycle:
        preStop:
          {{- if eq $root.Values.lifecycle.preStopMode "sleepAction" }}
          sleep:
            seconds: {{ $root.Values.lifecycle.preStopSleepSeconds }}
          {{- else }}
          exec:
            command: ["sleep", {{ $root.Values.lifecycle.preStopSleepSeconds | quote }}]
          {{- end }}
      {{- with $values.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        {{- if $tlsSecret }}
        - name: kafka-tls
          mountPath: {{ $root.Values.kafkaTls.mountPath }}
          readOnly: true
        {{- end }}
  volumes:
    - name: tmp
      emptyDir:
        sizeLimit: {{ $root.Values.tmpSizeLimit }}
    {{- if $tlsSecret }}
    - name: kafka-tls
      secret:
        secretName: {{ $tlsSecret }}
        defaultMode: 0440
        items:
          {{- range $key := list $root.Values.kafkaTls.caKey $root.Values.kafkaTls.certKey $root.Values.kafkaTls.keyKey }}
          {{- if $key }}
          - key: {{ $key }}
            path: {{ $key }}
          {{- end }}
          {{- end }}
    {{- end }}
  {{- with $values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $values.topologySpreadConstraints }}
  {{- $constraints := list }}
  {{- range . }}
  {{- $constraint := . }}
  {{- if not .labelSelector }}
  {{- $constraint = merge (dict "labelSelector" (dict "matchLabels" (include "fonestorm-bridge.componentSelectorLabels" $ | fromYaml))) . }}
  {{- end }}
  {{- $constraints = append $constraints $constraint }}
  {{- end }}
  topologySpreadConstraints:
    {{- toYaml $constraints | nindent 4 }}
  {{- end }}
{{- end }}

{{/*
The Deployment of one component. Call with (dict "root" $ "component" "receiver").
*/}}
{{- define "fonestorm-bridge.deployment" -}}
{{- $root := .root }}
{{- $values := index $root.Values .component }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "fonestorm-bridge.componentName" . }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "fonestorm-bridge.componentLabels" . | nindent 4 }}
spec:
  {{- if not $values.autoscaling.enabled }}
  replicas: {{ $values.replicas }}
  {{- end }}
  revisionHistoryLimit: {{ $values.revisionHistoryLimit }}
  strategy:
    type: {{ $values.strategy.type }}
    {{- if and (eq $values.strategy.type "RollingUpdate") $values.strategy.rollingUpdate }}
    rollingUpdate:
      {{- toYaml $values.strategy.rollingUpdate | nindent 6 }}
    {{- end }}
  selector:
    matchLabels:
      {{- include "fonestorm-bridge.componentSelectorLabels" . | nindent 6 }}
  template:
    {{- include "fonestorm-bridge.podTemplate" . | nindent 4 }}
{{- end }}

{{/*
The bridge's topic plan (bridge/kafka/topic_plan.py, `fonestorm-bridge topics show`): per
`config.topics` key, the topic's default name and the configs it needs besides
min.insync.replicas. Call with the ledger's retention.ms. tests/chart/test_kafka_topics.py
keeps it in step with the bridge's own plan.
*/}}
{{- define "fonestorm-bridge.topicPlan" -}}
callEvents:
  name: fonestorm.call-events.v1
  config: {cleanup.policy: delete}
deadLetters:
  name: fonestorm.dead-letters.v1
  config: {cleanup.policy: delete}
deadLetterReplays:
  name: fonestorm.dead-letter-replays.v1
  config: {cleanup.policy: compact}
deadLetterAudit:
  name: fonestorm.dead-letter-audit.v1
  config: {cleanup.policy: delete}
placeCall:
  name: fonestorm.place-call.v1
  config: {cleanup.policy: delete}
placeCallResults:
  name: fonestorm.place-call-results.v1
  config: {cleanup.policy: delete}
commandLedger:
  name: fonestorm.place-call-ledger.v1
  config:
    cleanup.policy: compact,delete
    retention.ms: {{ . | quote }}
    min.compaction.lag.ms: "3600000"
{{- end }}
