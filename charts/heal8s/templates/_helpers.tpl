{{/* Names and labels. */}}
{{- define "heal8s.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "heal8s.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "heal8s.selectorLabels" -}}
app.kubernetes.io/name: {{ include "heal8s.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "heal8s.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "heal8s.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: heal8s
{{- end -}}

{{- define "heal8s.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "heal8s.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "heal8s.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* The deployed policy: policies[profile]. */}}
{{- define "heal8s.policy" -}}
{{- $p := index .Values.policies .Values.profile -}}
{{- if not $p -}}
{{- fail (printf "policies.%s is missing or empty: profile %q needs a policy" .Values.profile .Values.profile) -}}
{{- end -}}
{{- toYaml $p -}}
{{- end -}}

{{/*
The policy's effective features, as JSON: its explicit `features.<name>`,
else the default of the policy's own `profile` (production when absent),
exactly like heal8s (receiver/core/src/detect/config.rs, Features::for_profile).
*/}}
{{- define "heal8s.effectiveFeatures" -}}
{{- $p := index .Values.policies .Values.profile | default dict -}}
{{- $test := eq (toString ($p.profile | default "production")) "test-cluster" -}}
{{- $defaults := dict "healPods" true "drainNodes" true "deleteNodes" false "cleanupResources" $test "deleteNamespaces" $test "removeFinalizers" $test "strainEviction" false -}}
{{- $given := $p.features | default dict -}}
{{- $out := dict -}}
{{- range $k, $v := $defaults -}}
{{- if hasKey $given $k -}}
{{- $_ := set $out $k (index $given $k) -}}
{{- else -}}
{{- $_ := set $out $k $v -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/*
Which write rule sets are granted, as JSON {feature: bool}: rbac.features.<f>
when true/false, else the effective policy feature. An explicit false while
the policy turns the feature on fails the render.
*/}}
{{- define "heal8s.grantedFeatures" -}}
{{- $effective := include "heal8s.effectiveFeatures" . | fromJson -}}
{{- $toggles := .Values.rbac.features | default dict -}}
{{- $out := dict -}}
{{- range $k, $on := $effective -}}
{{- $t := index $toggles $k -}}
{{- if kindIs "invalid" $t -}}
{{- $_ := set $out $k $on -}}
{{- else if and (not $t) $on -}}
{{- fail (printf "rbac.features.%s is false, but the deployed policy (policies.%s, profile %q) turns features.%s on: heal8s would be refused by the API server. Set rbac.features.%s to null or true, or set policies.%s.features.%s: false." $k $.Values.profile $.Values.profile $k $k $.Values.profile $k) -}}
{{- else -}}
{{- $_ := set $out $k $t -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/*
The custom resource types heal8s reads and cleans up, as JSON
[{apiGroups, resources}]: rbac.customResources plus the types named in the
policy's detectors.customResources.resources (`plural.group/version`).
*/}}
{{- define "heal8s.customResourceRules" -}}
{{- $rules := list -}}
{{- $covered := dict -}}
{{- /* the groups heal8s never cleans up (receiver-core cleanup_resource::FORBIDDEN_GROUPS) */ -}}
{{- $forbidden := list "" "apps" "apiextensions.k8s.io" "apiregistration.k8s.io" "admissionregistration.k8s.io" "rbac.authorization.k8s.io" "authentication.k8s.io" "authorization.k8s.io" "certificates.k8s.io" "coordination.k8s.io" "discovery.k8s.io" "events.k8s.io" "flowcontrol.apiserver.k8s.io" "networking.k8s.io" "node.k8s.io" "policy" "resource.k8s.io" "scheduling.k8s.io" "storage.k8s.io" "autoscaling" "heal8s.io" "config.openshift.io" "security.openshift.io" "operator.openshift.io" "machine.openshift.io" "user.openshift.io" "oauth.openshift.io" -}}
{{- range .Values.rbac.customResources -}}
{{- range $g := .apiGroups -}}
{{- if or (has $g $forbidden) (eq $g "*") -}}
{{- fail (printf "rbac.customResources: API group %q is one heal8s never cleans up (core, workload and API-machinery types, heal8s.io); list custom resource groups only" $g) -}}
{{- end -}}
{{- end -}}
{{- range $r := .resources -}}
{{- if eq $r "*" -}}
{{- fail "rbac.customResources: name each resource; \"*\" is not allowed" -}}
{{- end -}}
{{- end -}}
{{- $rules = append $rules (dict "apiGroups" .apiGroups "resources" .resources) -}}
{{- $rule := . -}}
{{- range $g := .apiGroups }}{{ range $r := $rule.resources }}{{ $_ := set $covered (printf "%s/%s" $g $r) true }}{{ end }}{{ end -}}
{{- end -}}
{{- $p := index .Values.policies .Values.profile | default dict -}}
{{- $listed := list -}}
{{- with $p.detectors -}}{{- with .customResources -}}{{- with .resources -}}{{- $listed = . -}}{{- end -}}{{- end -}}{{- end -}}
{{- range $listed -}}
{{- $pg := (splitList "/" .) | first -}}
{{- $parts := splitList "." $pg -}}
{{- $plural := first $parts -}}
{{- $group := rest $parts | join "." -}}
{{- if not (hasKey $covered (printf "%s/%s" $group $plural)) -}}
{{- $rules = append $rules (dict "apiGroups" (list $group) "resources" (list $plural)) -}}
{{- $_ := set $covered (printf "%s/%s" $group $plural) true -}}
{{- end -}}
{{- end -}}
{{- toJson $rules -}}
{{- end -}}

{{/* Leader election: on iff more than one replica. */}}
{{- define "heal8s.leaderElect" -}}
{{- if and (gt (int .Values.replicas) 1) (not .Values.multiCluster.member) -}}true{{- end -}}
{{- end -}}

{{- define "heal8s.pdbEnabled" -}}
{{- $e := .Values.podDisruptionBudget.enabled -}}
{{- if kindIs "invalid" $e -}}
{{- if gt (int .Values.replicas) 1 -}}true{{- end -}}
{{- else if $e -}}true{{- end -}}
{{- end -}}

{{/* Secrets: name and key of the webhook token, the GitHub App key, the GitHub token. */}}
{{- define "heal8s.webhookSecretName" -}}
{{- default (printf "%s-webhook" (include "heal8s.fullname" .)) .Values.webhook.existingSecret -}}
{{- end -}}

{{- define "heal8s.githubMode" -}}
{{- $g := .Values.github -}}
{{- $app := not (kindIs "invalid" $g.appId) -}}
{{- $key := or $g.privateKey.existingSecret $g.privateKey.value -}}
{{- $tok := or $g.token.existingSecret $g.token.value -}}
{{- if and $app $tok -}}
{{- fail "github.appId and github.token are both set: use a GitHub App (appId + privateKey) or a token, not both" -}}
{{- else if and $app (not $key) -}}
{{- fail "github.appId is set but the App's private key is not: set github.privateKey.existingSecret or github.privateKey.value" -}}
{{- else if and $key (not $app) -}}
{{- fail "github.privateKey is set but github.appId is not: the App id is needed with its key" -}}
{{- else if and $g.privateKey.existingSecret $g.privateKey.value -}}
{{- fail "github.privateKey: set existingSecret or value, not both" -}}
{{- else if and $g.token.existingSecret $g.token.value -}}
{{- fail "github.token: set existingSecret or value, not both" -}}
{{- else if $app -}}app
{{- else if $tok -}}token
{{- end -}}
{{- end -}}

{{- define "heal8s.githubSecretName" -}}
{{- $g := .Values.github -}}
{{- default (printf "%s-github" (include "heal8s.fullname" .)) (or $g.privateKey.existingSecret $g.token.existingSecret) -}}
{{- end -}}

{{- define "heal8s.githubSecretKey" -}}
{{- if eq (include "heal8s.githubMode" .) "app" -}}
{{- .Values.github.privateKey.secretKey -}}
{{- else -}}
{{- .Values.github.token.secretKey -}}
{{- end -}}
{{- end -}}

{{/* Whole seconds of a Prometheus-style duration (1h30m, 7d, 0). */}}
{{- define "heal8s.seconds" -}}
{{- $secs := 0 -}}
{{- range $m := regexFindAll "[0-9]+(ms|s|m|h|d|w|y)" (toString .) -1 -}}
{{- $n := int (regexFind "^[0-9]+" $m) -}}
{{- $u := regexFind "[a-z]+$" $m -}}
{{- $mult := get (dict "ms" 0 "s" 1 "m" 60 "h" 3600 "d" 86400 "w" 604800 "y" 31536000) $u -}}
{{- $secs = add $secs (mul $n $mult) -}}
{{- end -}}
{{- $secs -}}
{{- end -}}

{{/* Render-time checks that span several values. */}}
{{- define "heal8s.validate" -}}
{{- $grace := int .Values.terminationGracePeriodSeconds -}}
{{- $shutdown := .Values.server.shutdownTimeout -}}
{{- $secs := include "heal8s.seconds" $shutdown | int -}}
{{- if le $grace $secs -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be longer than server.shutdownTimeout (%s = %ds): the kubelet would kill heal8s while it finishes queued work" $grace $shutdown $secs) -}}
{{- end -}}
{{- /* heal8s refuses a record TTL that does not exceed the guard's longest window (its defaults when unset) */ -}}
{{- $pol := index .Values.policies .Values.profile | default dict -}}
{{- $g := $pol.guard | default dict -}}
{{- $b := $g.budgets | default dict -}}
{{- $windows := list ($g.cooldown | default "10m") (($g.escalation | default dict).within | default "1h") (($b.global | default dict).per | default "1m") (($b.perNamespace | default dict).per | default "1m") (($b.perWorkload | default dict).per | default "1h") -}}
{{- $ttl := include "heal8s.seconds" .Values.recordTtl | int -}}
{{- range $windows -}}
{{- if and (gt $ttl 0) (le $ttl (include "heal8s.seconds" . | int)) -}}
{{- fail (printf "recordTtl (%s) must be longer than the policy guard's longest window (%s in policies.%s.guard): the guard reads its history from the records" $.Values.recordTtl . $.Values.profile) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.webhook.insecureNoAuth (or .Values.webhook.existingSecret .Values.webhook.token) -}}
{{- fail "webhook.insecureNoAuth is true but a webhook token is configured too (webhook.existingSecret or webhook.token): choose one" -}}
{{- end -}}
{{- if and .Values.webhook.insecureNoAuth .Values.webhook.readToken.existingSecret -}}
{{- fail "webhook.insecureNoAuth is true but webhook.readToken.existingSecret is set: without authentication reads are open; choose one" -}}
{{- end -}}
{{- if and .Values.webhook.existingSecret .Values.webhook.token -}}
{{- fail "webhook: set existingSecret or token, not both" -}}
{{- end -}}
{{- $pdb := .Values.podDisruptionBudget -}}
{{- if and (include "heal8s.pdbEnabled" .) (kindIs "invalid" $pdb.maxUnavailable) (not (kindIs "string" $pdb.minAvailable)) (ge (int $pdb.minAvailable) (int .Values.replicas)) -}}
{{- fail (printf "podDisruptionBudget.minAvailable (%d) must be lower than replicas (%d): the PodDisruptionBudget would refuse every eviction of heal8s, including heal8s's own node drains" (int $pdb.minAvailable) (int .Values.replicas)) -}}
{{- end -}}
{{- $mode := include "heal8s.githubMode" . -}}
{{- $p := index .Values.policies .Values.profile | default dict -}}
{{- with $p.pullRequests -}}
{{- if and .repository (not $mode) -}}
{{- fail (printf "policies.%s.pullRequests.repository is %s but no GitHub credentials are configured: set github.appId with github.privateKey, or github.token (heal8s refuses to start otherwise)" $.Values.profile .repository) -}}
{{- end -}}
{{- end -}}
{{- end -}}
