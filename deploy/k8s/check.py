#!/usr/bin/env python3
"""Offline checks of the Kubernetes manifests, run by scripts/check-deploy.sh.

  check.py prometheusrule RULES PROMETHEUSRULE [--write]
      the PrometheusRule's spec.groups equal the groups of RULES (deploy/prometheus/rules.yml);
      --write regenerates PROMETHEUSRULE from RULES
  check.py adapter ADAPTER OUT
      the Prometheus adapter's metricsQuery templates, filled in as the adapter does, as
      recording rules in OUT for `promtool check rules`
  check.py rendered ADAPTER OUTDIR NAME=RENDERED...
      each overlay's `kubectl kustomize` output: every object against the Kubernetes schemas
      of 1.28 and 1.37 (kubernetes-validate, strict), the ServiceMonitor and PrometheusRule against the
      prometheus-operator models (cloudcoil), and the invariants the server needs (ports and
      probes agree with the configuration, the grace period covers the drain, the secrets,
      the autoscaler's metric served by the adapter). Writes the ConfigMap's umbrald.toml and
      the container's UMBRALD_* environment to OUTDIR/NAME/ for `umbrald config check`.

Needs PyYAML; `rendered` also kubernetes-validate and cloudcoil-models-prometheus-operator.
"""

import json
import os
import sys
import tomllib

import yaml

# The oldest Kubernetes the manifests are checked against, and the newest the package knows.
KUBERNETES_VERSIONS = ("1.28.0", "1.37.0")
OPERATOR_KINDS = ("ServiceMonitor", "PrometheusRule")
PROMETHEUSRULE_HEADER = """\
# Generated from deploy/prometheus/rules.yml, the one source of umbrald's alerting rules:
#   scripts/check-deploy.sh --write-prometheusrule
# scripts/check-deploy.sh fails when the two differ.
"""


class BlockStyle(yaml.SafeDumper):
    """Multi-line strings (PromQL) as literal blocks."""


BlockStyle.add_representer(
    str,
    lambda dumper, s: dumper.represent_scalar(
        "tag:yaml.org,2002:str", s, style="|" if "\n" in s else None
    ),
)


def load(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def prometheusrule(rules_path, rule_path, write):
    groups = load(rules_path)["groups"]
    if write:
        document = {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PrometheusRule",
            "metadata": {"name": "umbrald", "labels": {"app.kubernetes.io/name": "umbrald"}},
            "spec": {"groups": groups},
        }
        with open(rule_path, "w", encoding="utf-8") as out:
            out.write(PROMETHEUSRULE_HEADER)
            yaml.dump(document, out, Dumper=BlockStyle, sort_keys=False, width=1000)
        print(f"{rule_path}: written from {rules_path}")
        return []
    rule = load(rule_path)
    if rule.get("kind") != "PrometheusRule":
        return [f"{rule_path}: not a PrometheusRule"]
    if rule.get("spec", {}).get("groups") != groups:
        return [
            f"{rule_path}: spec.groups differ from {rules_path}; "
            "run scripts/check-deploy.sh --write-prometheusrule"
        ]
    print(f"{rule_path}: the groups of {rules_path}")
    return []


def adapter_rules(adapter_path):
    return load(adapter_path)["rules"]["custom"]


def adapter(adapter_path, out_path):
    lines = ["groups:", "  - name: prometheus-adapter", "    rules:"]
    for i, rule in enumerate(adapter_rules(adapter_path)):
        query = (
            rule["metricsQuery"]
            .replace("<<.GroupBy>>", "namespace, pod")
            .replace("<<.LabelMatchers>>", 'namespace="umbrald", pod=~"umbrald-.*"')
            .replace("<<.Series>>", rule["name"]["matches"].strip("^$"))
        )
        if "<<" in query:
            return [f"{adapter_path}: rule {i}: template left in {query}"]
        lines.append(f"      - record: adapter:{rule['name']['as']}")
        lines.append(f"        expr: {json.dumps(query)}")
        lines.append(f"      - record: adapter:series_{i}")
        lines.append(f"        expr: {json.dumps(rule['seriesQuery'])}")
    with open(out_path, "w", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")
    return []


def strict_keys(given, dumped, path=""):
    """Keys in `given` that the model dropped: fields the CRD does not have."""
    unknown = []
    if isinstance(given, dict) and isinstance(dumped, dict):
        for key, value in given.items():
            if key not in dumped:
                unknown.append(f"{path}.{key}")
            else:
                unknown += strict_keys(value, dumped[key], f"{path}.{key}")
    elif isinstance(given, list) and isinstance(dumped, list):
        for i, (a, b) in enumerate(zip(given, dumped)):
            unknown += strict_keys(a, b, f"{path}[{i}]")
    return unknown


def validate_schemas(name, objects):
    import kubernetes_validate
    from cloudcoil.models.prometheus_operator import v1 as operator

    problems = []
    for obj in objects:
        what = f"{name}: {obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] in OPERATOR_KINDS:
            model = getattr(operator, obj["kind"])
            try:
                parsed = model.model_validate(obj)
            except Exception as error:  # pydantic's ValidationError, spelled out in the message
                problems.append(f"{what}: {error}")
                continue
            dumped = parsed.model_dump(by_alias=True, exclude_none=True, mode="json")
            for key in strict_keys(obj, dumped):
                problems.append(f"{what}: unknown field {key}")
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                path = ".".join(map(str, error.path))
                problems.append(f"{what} (Kubernetes {version}): {path}: {error.message}")
            except Exception as error:
                problems.append(f"{what} (Kubernetes {version}): {error}")
    return problems


def port_of(address):
    return int(address.rsplit(":", 1)[1])


def invariants(name, objects, adapter_path, outdir):
    problems = []
    by_kind = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], []).append(obj)

    def one(kind):
        found = by_kind.get(kind, [])
        if len(found) != 1:
            problems.append(f"{name}: {len(found)} {kind} objects, expected 1")
            return None
        return found[0]

    deployment = one("Deployment")
    config_map = one("ConfigMap")
    for kind in ("PodDisruptionBudget", "HorizontalPodAutoscaler", "ServiceMonitor",
                 "PrometheusRule", "ServiceAccount"):
        one(kind)
    if deployment is None or config_map is None:
        return problems
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    config = tomllib.loads(config_map["data"]["umbrald.toml"])
    with open(f"{outdir}/umbrald.toml", "w", encoding="utf-8") as out:
        out.write(config_map["data"]["umbrald.toml"])
    with open(f"{outdir}/env", "w", encoding="utf-8") as out:
        for key, value in env.items():
            if key.startswith("UMBRALD_") and value is not None:
                out.write(f"{key}={value}\n")

    # The ConfigMap mounted is the one rendered (its name carries the content hash).
    volumes = {v["name"]: v for v in pod["volumes"]}
    if volumes.get("config", {}).get("configMap", {}).get("name") != config_map["metadata"]["name"]:
        problems.append(f"{name}: the config volume does not mount {config_map['metadata']['name']}")
    for volume, secret in (("tls", "umbrald-tls"), ("node-keys", "umbrald-node-keys"),
                           ("node-keys-passphrase", "umbrald-node-keys-passphrase")):
        if volumes.get(volume, {}).get("secret", {}).get("secretName") != secret:
            problems.append(f"{name}: volume {volume} is not the Secret {secret}")

    # Ports: the container's named ports are the configured listeners.
    ports = {p["name"]: p for p in container["ports"]}
    server, metrics = config.get("server", {}), config.get("metrics", {})
    expected = {
        "quic": (port_of(server.get("listen", "127.0.0.1:4433")), "UDP"),
        "metrics": (port_of(metrics.get("listen", "127.0.0.1:9464")), "TCP"),
    }
    if "https_listen" in config.get("nucypher", {}):
        expected["https"] = (port_of(config["nucypher"]["https_listen"]), "TCP")
    for port_name, (number, protocol) in expected.items():
        port = ports.get(port_name)
        if port is None or port["containerPort"] != number or port.get("protocol", "TCP") != protocol:
            problems.append(f"{name}: container port {port_name} is not {number}/{protocol}")
    for listener in (server.get("listen", ""), metrics.get("listen", "")):
        if listener.startswith("127."):
            problems.append(f"{name}: {listener} listens on loopback only")

    # Probes on the metrics port: ready on /readyz, alive on /healthz.
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz"),
                        ("startupProbe", "/healthz")):
        get = container.get(probe, {}).get("httpGet", {})
        if get.get("path") != path or get.get("port") not in ("metrics", expected["metrics"][0]):
            problems.append(f"{name}: {probe} is not GET {path} on the metrics port")

    # The grace period covers the drain and the in-flight grace.
    drain = int(env.get("UMBRALD_SERVER_DRAIN_DELAY_MS") or server.get("drain_delay_ms", 0))
    grace = int(env.get("UMBRALD_SERVER_SHUTDOWN_GRACE_MS") or server.get("shutdown_grace_ms", 30000))
    period = pod.get("terminationGracePeriodSeconds", 30)
    if drain <= 0:
        problems.append(f"{name}: no drain delay ([server] drain_delay_ms)")
    if period * 1000 <= drain + grace:
        problems.append(
            f"{name}: terminationGracePeriodSeconds {period} is not above drain {drain} ms "
            f"+ grace {grace} ms"
        )

    # Every replica presents the same certificate: from the Secret, never generated.
    tls = config.get("tls", {})
    mount = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    for key in ("cert", "key"):
        path = env.get(f"UMBRALD_TLS_{key.upper()}") or tls.get(key, "")
        if not path.startswith(mount.get("tls", "?") + "/"):
            problems.append(f"{name}: [tls] {key} is not a file of the umbrald-tls Secret")

    # Services select the pods and target named container ports.
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    for service in by_kind.get("Service", []):
        selector = service["spec"].get("selector", {})
        if not selector or any(labels.get(k) != v for k, v in selector.items()):
            problems.append(f"{name}: Service {service['metadata']['name']} does not select the pods")
        for port in service["spec"]["ports"]:
            target = ports.get(port["targetPort"])
            if target is None or target.get("protocol", "TCP") != port.get("protocol", "TCP"):
                problems.append(
                    f"{name}: Service {service['metadata']['name']} port {port['name']} "
                    "targets no container port of its protocol"
                )

    # The autoscaler's metrics are served by the adapter's rules.
    served = {rule["name"]["as"] for rule in adapter_rules(adapter_path)}
    for hpa in by_kind.get("HorizontalPodAutoscaler", []):
        for metric in hpa["spec"]["metrics"]:
            metric_name = metric.get("pods", {}).get("metric", {}).get("name")
            if metric_name not in served:
                problems.append(f"{name}: HPA metric {metric_name} is not served by {adapter_path}")
        if hpa["spec"]["minReplicas"] < 2:
            problems.append(f"{name}: HPA minReplicas below 2 leaves no replica during a drain")

    # The GPU overlay: a GPU, its nodes, the GPU backend and profile.
    if name == "gpu":
        limits = container["resources"]["limits"]
        if str(limits.get("nvidia.com/gpu")) != "1":
            problems.append(f"{name}: no nvidia.com/gpu: 1 limit")
        if not pod.get("nodeSelector") or not any(
            t.get("key") == "nvidia.com/gpu" for t in pod.get("tolerations", [])
        ):
            problems.append(f"{name}: no GPU node selector and toleration")
        if env.get("UMBRALD_WORKERS_BACKEND") != "gpu" or env.get("UMBRALD_GPU_PROFILE") != "throughput":
            problems.append(f"{name}: not backend gpu with the throughput profile")
    return problems


def rendered(adapter_path, outdir, overlays):
    problems = []
    for overlay in overlays:
        name, rendered_path = overlay.split("=", 1)
        with open(rendered_path, encoding="utf-8") as f:
            objects = [o for o in yaml.safe_load_all(f) if o]
        os.makedirs(f"{outdir}/{name}", exist_ok=True)
        found = validate_schemas(name, objects)
        found += invariants(name, objects, adapter_path, f"{outdir}/{name}")
        kinds = ", ".join(sorted({o["kind"] for o in objects}))
        print(f"{name}: {len(objects)} objects ({kinds}), {len(found)} problems")
        problems += found
    return problems


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    if argv[1] == "prometheusrule" and len(argv) in (4, 5):
        problems = prometheusrule(argv[2], argv[3], argv[4:] == ["--write"])
    elif argv[1] == "adapter" and len(argv) == 4:
        problems = adapter(argv[2], argv[3])
    elif argv[1] == "rendered" and len(argv) >= 5:
        problems = rendered(argv[2], argv[3], argv[4:])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
