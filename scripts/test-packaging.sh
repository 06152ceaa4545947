#!/usr/bin/env bash
# Packaging checks, without a Docker engine or a cluster (fresh Debian 12, as root):
#   0. every program the scripts call is on a new machine or installed by install-deps.sh, no
#      function hides a program, tool checks use `type -P` (tests/packaging/check_fresh_machine.py),
#      and the check catches those mistakes (mutated copies must fail);
#   1. the Dockerfile builds the way CI does (tests/packaging/check_dockerfile.py), and the check
#      catches drift (mutated copies must fail);
#   2. every library the built binaries load is installed by the image's runtime stage
#      (tests/packaging/check_runtime_libs.py, on build/server/retryd and build/client/cli/retryctl;
#      they are built first if missing);
#   3. helm/retryd: helm lint --strict and helm template for the defaults and for each values file
#      (helm/retryd/ci/*-values.yaml, among them tokens, TLS and mTLS, plus the PrometheusRule and
#      dashboard ones), assertions on the manifests (tests/packaging/check_chart.py), the rendered
#      arguments, ServerConfig and tokens.json accepted by `retryd --check-config`, and a retryd
#      started with them answering the probes' and the helm test pod's `retryctl health` commands
#      (tests/packaging/check_probes.py; test certificates made with openssl stand in for the TLS
#      Secret, tests/packaging/fixtures/existing-tokens.json for an existing token Secret); the
#      store.type postgres defaults (a rolling update that keeps every replica serving, a
#      PodDisruptionBudget, no claim; chart copies that lose one of them must fail);
#   4. what must fail does, with a clear message: schema typos and wrong types (helm lint), a bad
#      token digest, TLS without a Secret, client certificates without TLS, tokens twice, an
#      OPERATOR token limited to services, two tokens with one digest, no auth without
#      insecureAllowRemote, a termination grace shorter than the drain, a bad rolling update
#      (a wrong type, or maxUnavailable and maxSurge both 0), and the
#      PrometheusRule/dashboard of a chart whose files are missing;
#   5. the alert rules (helm/retryd/files/retryd-rules.yaml): promtool check rules and promtool
#      test rules (tests/prometheus/retryd-rules-test.yaml);
#   6. the image built for real and smoke-tested: scripts/build-image.sh --clean (buildah, vfs,
#      chroot; --help, ldd, --check-config, health, /metrics, SIGTERM drain), bounded by
#      RETRYD_IMAGE_TIMEOUT seconds (default 2100: a fresh machine under load took 1265 s), then
#      its containers and images removed; the
#      debootstrapped base image stays cached on the machine (made from scratch on a fresh one).
#      The slowest step (about 8-10 minutes): RETRYD_SKIP_IMAGE=1 skips it locally; CI
#      (.ci/run) always runs it.
# Installs its Debian packages with `scripts/install-deps.sh packaging` (python3-yaml, binutils,
# openssl, prometheus for promtool, git) and helm (HELM_VERSION, via the Go module proxy into
# build/tools/bin); build-image.sh installs buildah and debootstrap (install-deps.sh image).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
helm_version="${HELM_VERSION:-v3.16.4}"
tools="$root/build/tools/bin"
helm="$tools/helm"
# A helm built by `go install` has no version stamp and assumes Kubernetes 1.20; the chart needs
# 1.24 or later (gRPC probes), so renders state the version explicitly.
kube="${KUBE_VERSION:-1.30.0}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
t0=$(date +%s)
pass=0
say() { echo "== test-packaging: $*"; }
ok() { pass=$((pass + 1)); echo "   ok: $*"; }
die() { echo "FAIL: $*" >&2; exit 1; }

# --- Tools ---------------------------------------------------------------------------------------
bash scripts/install-deps.sh packaging
# A machine of this project's kind has Go in /usr/local/go, not always on PATH.
if ! type -P go >/dev/null && [ -x /usr/local/go/bin/go ]; then
  export PATH="/usr/local/go/bin:$PATH"
fi
# type -P finds programs only (never a function or an alias of this shell).
for tool in python3 readelf git openssl promtool curl; do
  type -P "$tool" >/dev/null || die "$tool is missing after install-deps.sh packaging"
done
# The packaging checks read YAML with Debian's python3-yaml: PyYAML of the default python3 (a
# pyenv build does not see Debian's modules) or Debian's own python3.
if ! python3 -c 'import yaml' 2>/dev/null; then
  PATH="/usr/bin:$PATH"
  python3 -c 'import yaml' || die "no python3 with PyYAML (python3-yaml) found"
fi
if [ ! -x "$helm" ] || ! "$helm" version --short 2>/dev/null | grep -q "${helm_version%.*}"; then
  type -P go >/dev/null || die "go is needed to install helm ($helm_version) from the Go module proxy"
  say "installing helm $helm_version with go install (a few minutes the first time)"
  GOBIN="$tools" GOFLAGS=-mod=mod go install "helm.sh/helm/v3/cmd/helm@$helm_version"
fi
"$helm" version --short

# --- 0. A new machine has every program the scripts call ----------------------------------------
say "programs the scripts call: on a new machine or installed by install-deps.sh"
bash scripts/install-deps.sh image  # buildah and debootstrap present, so check 1 can place them
python3 tests/packaging/check_fresh_machine.py "$root"
ok "check_fresh_machine"
# The check must catch what once broke a new machine: each mutated copy of the scripts must fail.
fm="$work/fresh-mutant"
fresh_mutate() {  # fresh_mutate DESCRIPTION FILE SED-EXPRESSION
  rm -rf "$fm" && mkdir -p "$fm/scripts" "$fm/.ci" && cp scripts/*.sh "$fm/scripts/" && cp .ci/run "$fm/.ci/"
  ln -s "$root/tests" "$fm/tests"
  sed -i -e "$3" "$fm/$2"
  cmp -s "$2" "$fm/$2" && die "mutation '$1' changed nothing (update the test)"
  if python3 tests/packaging/check_fresh_machine.py "$fm" >"$work/fm.out" 2>&1; then
    die "check_fresh_machine.py accepted scripts with $1"
  fi
  ok "rejects $1: $(grep -m1 FAIL "$work/fm.out")"
}
fresh_mutate "a function named like the program it wraps" scripts/build-image.sh 's/^bah() {/buildah() {/'
fresh_mutate "a tool check that also sees functions" scripts/build-image.sh 's/type -P "\$tool"/command\x20-v "$tool"/'
fresh_mutate "buildah missing from install-deps.sh" scripts/install-deps.sh 's/^  buildah debootstrap/  debootstrap/'
# The project's before-stop hook, when this clone sits beside it (a developer's checkout).
if [ -x "$root/../shared/hooks/fresh-machine-tools" ]; then
  "$root/../shared/hooks/fresh-machine-tools" || die "../shared/hooks/fresh-machine-tools found programs no script installs"
  ok "../shared/hooks/fresh-machine-tools"
fi

# --- 1. Dockerfile vs CI -------------------------------------------------------------------------
say "Dockerfile builds as CI does"
python3 tests/packaging/check_dockerfile.py "$root"
ok "check_dockerfile"
# The check must catch drift: each mutated copy of the Dockerfile has to fail.
mut="$work/mutant"
mkdir -p "$mut"
for f in .ci scripts tests .dockerignore; do ln -s "$root/$f" "$mut/$f"; done
mutate() {  # mutate DESCRIPTION SED-EXPRESSION
  sed -e "$2" Dockerfile >"$mut/Dockerfile"
  cmp -s Dockerfile "$mut/Dockerfile" && die "mutation '$1' changed nothing (update the test)"
  if python3 tests/packaging/check_dockerfile.py "$mut" >"$work/mut.out" 2>&1; then
    die "check_dockerfile.py accepted a Dockerfile with $1"
  fi
  ok "rejects $1: $(head -1 "$work/mut.out")"
}
mutate "other CMake options" 's/build.sh -DRETRYD_BUILD_TESTS=ON/build.sh -DRETRYD_BUILD_TESTS=OFF/'
mutate "its own cmake configure" 's|bash scripts/build.sh -DRETRYD_BUILD_TESTS=ON|cmake -S . -B build -DRETRYD_BUILD_TESTS=ON \&\& cmake --build build|'
mutate "a dependency mode CI does not use" 's|install-deps.sh build|install-deps.sh bench|'
mutate "a dependency mode without the build packages" 's|install-deps.sh build|install-deps.sh runtime|'
mutate "a build without the unit tests" 's| retryd_unit_tests"|"|'
mutate "apt-get in the runtime stage" 's|bash /tmp/install-deps.sh runtime|apt-get install -y libsqlite3-0|'
mutate "a root user" 's|^USER 10001:10001|USER root|'
mutate "a shell-form entrypoint" 's|^ENTRYPOINT .*|ENTRYPOINT /usr/local/bin/retryd|'
mutate "no unit tests" 's|tests/server tests/cli|tests/server|'

# --- 2. Runtime libraries ------------------------------------------------------------------------
say "runtime libraries (ldd of the built binaries vs install-deps.sh runtime)"
if [ ! -x build/server/retryd ] || [ ! -x build/client/cli/retryctl ]; then
  bash scripts/install-deps.sh test
  bash scripts/build.sh -DRETRYD_BUILD_TESTS=ON
fi
python3 tests/packaging/check_runtime_libs.py build/server/retryd build/client/cli/retryctl
ok "check_runtime_libs"
if RUNTIME_PKGS="$(bash scripts/install-deps.sh list-runtime | grep -v '^libsqlite3-0$' | tr '\n' ' ')" \
    python3 tests/packaging/check_runtime_libs.py >"$work/libs.out" 2>&1; then
  die "check_runtime_libs.py accepted a runtime list without libsqlite3-0"
fi
ok "rejects a runtime list without libsqlite3-0: $(grep -m1 FAIL "$work/libs.out")"

# --- 3. Helm chart -------------------------------------------------------------------------------
chart=helm/retryd
# Test certificates standing in for tls.existingSecret: a CA (ca.crt, also the client CA) and a
# certificate for the release "r" in namespace "retryd" (the default tls.serverName) and for
# ci/mtls-values.yaml's serverName, usable as server and client certificate (the probes present it
# under clientAuth require).
certs="$work/certs"
mkdir -p "$certs"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -noenc -days 2 -subj /CN=retryd-test-ca \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign \
  -keyout "$certs/ca.key" -out "$certs/ca.crt" >"$work/openssl.out" 2>&1 \
  && openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -noenc -subj /CN=r-retryd \
    -keyout "$certs/tls.key" -out "$certs/tls.csr" >>"$work/openssl.out" 2>&1 \
  && printf '%s\n' "subjectAltName=DNS:r-retryd.retryd.svc,DNS:retryd.example.internal" \
    "extendedKeyUsage=serverAuth,clientAuth" "keyUsage=critical,digitalSignature" >"$certs/ext.cnf" \
  && openssl x509 -req -in "$certs/tls.csr" -CA "$certs/ca.crt" -CAkey "$certs/ca.key" -CAcreateserial \
    -days 2 -extfile "$certs/ext.cnf" -out "$certs/tls.crt" >>"$work/openssl.out" 2>&1 \
  || { cat "$work/openssl.out"; die "openssl could not make the test certificates"; }
ci_token=retryd-ci-operator-token  # its SHA-256 is the ci-operator token of the ci/*-values.yaml files
render_and_check() {  # render_and_check CHART_DIR LABEL VALUES_FILE...
  local dir="$1" label="$2"; shift 2
  local vargs=() cargs=() f sargs=()
  local sroot="$work/server"
  for f in "$@"; do vargs+=(-f "$f"); cargs+=(--values "$f"); done
  "$helm" lint --strict --kube-version "$kube" "$dir" "${vargs[@]}" >"$work/lint.out" 2>&1 \
    || { cat "$work/lint.out"; die "helm lint --strict ($label)"; }
  "$helm" template r "$dir" --namespace retryd --kube-version "$kube" "${vargs[@]}" >"$work/out.yaml" \
    || die "helm template ($label)"
  rm -rf "$sroot"
  python3 tests/packaging/check_chart.py --chart "$dir" --manifests "$work/out.yaml" --release r \
    --namespace retryd --server-root "$sroot" "${cargs[@]}"
  # What existing Secrets would hold: an existing token Secret, the TLS Secret.
  if grep -q '^--auth-file=' "$sroot/args" && [ ! -f "$sroot/auth/tokens.json" ]; then
    mkdir -p "$sroot/auth" && cp tests/packaging/fixtures/existing-tokens.json "$sroot/auth/tokens.json"
  fi
  if grep -q '^--tls-cert=' "$sroot/args"; then
    mkdir -p "$sroot/tls" && cp "$certs/tls.crt" "$certs/tls.key" "$certs/ca.crt" "$sroot/tls/"
  fi
  mapfile -t sargs <"$sroot/args"
  # The server steps run the rendered arguments on this build of retryd. A store.type postgres
  # render runs against a fresh database of a test cluster (scripts/pg-cluster.sh), its DSN in
  # RETRYD_POSTGRES_DSN as the chart's Secret would give it. A flag this build does not have yet
  # (--console-addr before the console lands, --store before the PostgreSQL store) cannot be
  # run: that is said, never passed silently.
  local a skip="" dsn_env=()
  for a in "${sargs[@]}"; do
    case "$a" in
      --*) grep -q -- "${a%%=*}\b" "$work/retryd-help" || skip="this retryd has no ${a%%=*}" ;;
    esac
  done
  if [ -n "$skip" ]; then
    ok "$label: lint --strict, template, assertions (server steps skipped: $skip)"
    return 0
  fi
  if printf '%s\n' "${sargs[@]}" | grep -qx -- --store=postgres; then
    chart_pg_database
    dsn_env=("RETRYD_POSTGRES_DSN=$chart_dsn")
  fi
  env "${dsn_env[@]}" build/server/retryd --check-config "${sargs[@]}" >/dev/null 2>"$work/check.err" \
    || { cat "$work/check.err"; die "retryd --check-config rejected the arguments/config rendered for $label"; }
  env "${dsn_env[@]}" python3 tests/packaging/check_probes.py --server-root "$sroot" --retryd build/server/retryd \
    --retryctl build/client/cli/retryctl --operator-token "$ci_token" >"$work/probes.out" 2>&1 \
    || { cat "$work/probes.out"; die "the probes rendered for $label do not pass against retryd"; }
  ok "$label: lint --strict, template, assertions, retryd --check-config, probes against retryd"
}
say "helm lint/template/assertions"
build/server/retryd --help >"$work/retryd-help" 2>&1 || true
# chart_pg_database: sets chart_dsn to a fresh database on a test PostgreSQL (started on first
# use, stopped on exit), for the store.type postgres renders.
chart_pg=""
chart_pg_n=0
chart_dsn=""
chart_pg_database() {
  if [ -z "$chart_pg" ]; then
    bash scripts/install-deps.sh postgres
    chart_pg="$work/pg"
    bash scripts/pg-cluster.sh start "$chart_pg" >/dev/null || die "scripts/pg-cluster.sh start failed"
    trap 'bash scripts/pg-cluster.sh stop "$chart_pg" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
  fi
  chart_pg_n=$((chart_pg_n + 1))
  psql "$(cat "$chart_pg/dsn")" -qAtX -v ON_ERROR_STOP=1 -c "CREATE DATABASE chart_$chart_pg_n" >/dev/null \
    || die "could not create a database on the test PostgreSQL"
  chart_dsn="$(sed 's/dbname=[^ ]*//' "$chart_pg/dsn") dbname=chart_$chart_pg_n"
}
render_and_check "$chart" "defaults"
for v in "$chart"/ci/*-values.yaml; do
  render_and_check "$chart" "$(basename "$v")" "$v"
done
# PrometheusRule and dashboard: the chart embeds helm/retryd/files/retryd-{rules.yaml,dashboard.json}.
render_and_check "$chart" "prometheusrule-values.yaml" tests/packaging/values/prometheusrule-values.yaml
render_and_check "$chart" "dashboard-values.yaml" tests/packaging/values/dashboard-values.yaml
# store.type postgres with the chart's defaults: several serving replicas that roll without losing
# capacity, a PodDisruptionBudget, no claim (checked against literals, not values.yaml); and chart
# copies whose defaults lose that must fail the check.
postgres_defaults() {  # postgres_defaults CHART_DIR OUT_FILE: helm template + check_chart.py --postgres-defaults
  "$helm" template r "$1" --namespace retryd --kube-version "$kube" \
    -f tests/packaging/values/postgres-defaults-values.yaml >"$work/pgdef.yaml" || die "helm template ($1, postgres defaults)"
  python3 tests/packaging/check_chart.py --chart "$1" --manifests "$work/pgdef.yaml" --release r --namespace retryd \
    --values tests/packaging/values/postgres-defaults-values.yaml --postgres-defaults >"$2" 2>&1
}
postgres_defaults "$chart" "$work/pgdef.out" || { cat "$work/pgdef.out"; die "store.type postgres defaults"; }
ok "store.type postgres defaults: RollingUpdate (maxUnavailable 0), a PodDisruptionBudget, no claim"
pgmut="$work/chart-pg-mutant/retryd"
pg_defaults_mutate() {  # pg_defaults_mutate DESCRIPTION FILE SED-EXPRESSION
  rm -rf "$(dirname "$pgmut")" && mkdir -p "$(dirname "$pgmut")" && cp -a "$chart" "$pgmut"
  sed -i -e "$3" "$pgmut/$2"
  cmp -s "$chart/$2" "$pgmut/$2" && die "mutation '$1' changed nothing (update the test)"
  postgres_defaults "$pgmut" "$work/pgmut.out" && die "check_chart.py --postgres-defaults accepted a chart with $1"
  ok "rejects a chart with $1: $(grep -m1 FAIL "$work/pgmut.out")"
}
pg_defaults_mutate "the PodDisruptionBudget off by default" values.yaml '/^    podDisruptionBudget:/,/enabled:/s/enabled: true/enabled: false/'
pg_defaults_mutate "updates that drop a replica" values.yaml 's/^      maxUnavailable: 0$/      maxUnavailable: 1/'
pg_defaults_mutate "Recreate updates" templates/deployment.yaml '/^  strategy:/,/^  selector:/{/^  strategy:/!{/^  selector:/!d}};s/^  strategy:/  strategy:\n    type: Recreate/'

# --- 4. What must fail ---------------------------------------------------------------------------
say "refusals"
expect_fail() {  # expect_fail LINT|TEMPLATE VALUES_FILE REGEX
  local how="$1" v="$2" re="$3"
  if [ "$how" = lint ]; then
    "$helm" lint --strict --kube-version "$kube" "$chart" -f "$v" >"$work/fail.out" 2>&1 && die "helm lint accepted $v"
  else
    "$helm" template r "$chart" --kube-version "$kube" -f "$v" >"$work/fail.out" 2>&1 && die "helm template accepted $v"
  fi
  grep -Eq "$re" "$work/fail.out" || { cat "$work/fail.out"; die "$v failed without a message matching /$re/"; }
  ok "$(basename "$v"): $(grep -Eo "$re" "$work/fail.out" | head -1)"
}
V=tests/packaging/values
expect_fail lint "$V/bad-typo-values.yaml" "Additional property persistance is not allowed"
expect_fail lint "$V/bad-nested-typo-values.yaml" "Additional property maxAttempt is not allowed"
expect_fail lint "$V/bad-type-values.yaml" "grpcPort: Invalid type"
expect_fail lint "$V/bad-duration-values.yaml" "shutdownGrace: Does not match pattern"
expect_fail lint "$V/bad-replicas-values.yaml" "Additional property replicaCount is not allowed"
expect_fail lint "$V/bad-sha256-values.yaml" "sha256: Does not match pattern"
# Kubernetes objects in the values have real schemas: a typo in any of them is refused.
expect_fail lint "$V/bad-security-context-values.yaml" "Additional property readOnlyRootFileSystem is not allowed"
expect_fail lint "$V/bad-pod-security-context-values.yaml" "Additional property runAsUSer is not allowed"
expect_fail lint "$V/bad-resources-values.yaml" "Additional property limit is not allowed"
expect_fail lint "$V/bad-affinity-values.yaml" "Additional property nodeAfinity is not allowed"
expect_fail template "$V/tls-no-secret-values.yaml" "tls.enabled: set tls.existingSecret"
expect_fail template "$V/clientauth-without-tls-values.yaml" "tls.clientAuth: \"require\" needs tls.enabled=true"
expect_fail template "$V/auth-both-values.yaml" "auth: set auth.tokens .* or auth.existingSecret .*, not both"
expect_fail template "$V/operator-services-values.yaml" "auth.tokens.ops.services: only a WORKER token is limited to services"
expect_fail template "$V/duplicate-digest-values.yaml" "auth.tokens.worker.sha256: the same digest as auth.tokens.ops"
expect_fail template "$V/no-auth-values.yaml" "insecureAllowRemote: retryd listens on 0.0.0.0 in the pod and refuses that when callers are not authenticated"
expect_fail template "$V/short-grace-values.yaml" "must be at least config.shutdownGrace"
# store.type postgres and the console (helm/retryd/ci/postgres*-values.yaml, console-values.yaml
# render above): what they must refuse.
expect_fail lint "$V/bad-store-type-values.yaml" 'store.type must be one of the following: "sqlite", "postgres"'
expect_fail lint "$V/postgres-no-secret-values.yaml" "store.postgres.existingSecret: String length must be greater than or equal to 1"
expect_fail lint "$V/bad-pdb-values.yaml" "store.postgres.podDisruptionBudget.maxUnavailable: Must validate one and only one schema"
expect_fail lint "$V/bad-rolling-update-values.yaml" "store.postgres.rollingUpdate.maxSurge: Must validate one and only one schema"
expect_fail template "$V/rolling-update-zero-values.yaml" "store.postgres.rollingUpdate: maxUnavailable and maxSurge cannot both be 0"
expect_fail template "$V/pdb-blocks-drains-values.yaml" "minAvailable \\(2\\) must be below store.postgres.replicaCount \\(2\\)"
expect_fail template "$V/postgres-claim-values.yaml" "persistence.existingClaim: store.type postgres keeps no state in the pod"
expect_fail lint "$V/bad-console-port-values.yaml" "console.port: Must not validate the schema"
expect_fail lint "$V/ingress-no-host-values.yaml" "console.ingress.host: String length must be greater than or equal to 1"
expect_fail template "$V/ingress-without-console-values.yaml" "console.ingress.enabled: needs console.enabled=true"
expect_fail template "$V/console-mtls-only-values.yaml" "console.enabled: the console signs operators in with bearer tokens"
# A chart copy without its files/ refuses the PrometheusRule and the dashboard with a message.
nofiles="$work/chart-without-files/retryd"
mkdir -p "$(dirname "$nofiles")" && cp -a "$chart" "$nofiles" && rm -rf "$nofiles/files"
chart="$nofiles"
expect_fail template "$V/prometheusrule-values.yaml" "rules file files/retryd-rules.yaml is missing"
expect_fail template "$V/dashboard-values.yaml" "dashboard file files/retryd-dashboard.json is missing"
chart=helm/retryd

# --- 5. Alert rules ------------------------------------------------------------------------------
say "alert rules (promtool)"
promtool check rules "$chart/files/retryd-rules.yaml" >"$work/promtool.out" 2>&1 \
  || { cat "$work/promtool.out"; die "promtool check rules"; }
ok "promtool check rules: $(grep -o '[0-9]* rules found' "$work/promtool.out")"
promtool test rules tests/prometheus/retryd-rules-test.yaml >"$work/promtool.out" 2>&1 \
  || { cat "$work/promtool.out"; die "promtool test rules"; }
ok "promtool test rules tests/prometheus/retryd-rules-test.yaml"

# --- 6. The image, built for real ---------------------------------------------------------------
image_timeout="${RETRYD_IMAGE_TIMEOUT:-2100}"
if [ "${RETRYD_SKIP_IMAGE:-0}" = 1 ]; then
  say "image build SKIPPED (RETRYD_SKIP_IMAGE=1; CI always runs it)"
else
  say "image: scripts/build-image.sh --clean (buildah; at most $image_timeout s)"
  [ "$(id -u)" -eq 0 ] || die "the image build needs root (buildah, chroot isolation); RETRYD_SKIP_IMAGE=1 skips it"
  ti=$(date +%s)
  # timeout signals the whole process group (buildah and the build inside it); whatever a killed
  # run leaves behind is removed by --clean-only.
  rc=0
  timeout --kill-after=60 "$image_timeout" bash scripts/build-image.sh --clean || rc=$?
  if [ "$rc" -ne 0 ]; then
    took=$(($(date +%s) - ti))
    bash scripts/build-image.sh --clean-only >/dev/null 2>&1 || true
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
      die "the image build was stopped after $took s: it did not finish within the limit of $image_timeout s (RETRYD_IMAGE_TIMEOUT; scripts/build-image.sh, output above)"
    fi
    die "scripts/build-image.sh failed (exit $rc) after $took s; its last '== build-image:' line above names the step"
  fi
  ok "image built and smoke-tested in $(($(date +%s) - ti)) s"
fi

say "all $pass checks passed in $(($(date +%s) - t0)) s"
