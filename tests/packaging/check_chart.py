#!/usr/bin/env python3
"""Assertions on manifests rendered by `helm template` from helm/retryd.

usage: check_chart.py --chart DIR --manifests FILE [--values FILE]... [--release NAME]
                      [--config-out FILE]

Reads the chart's values.yaml merged with the --values files (as Helm merges them) and checks the
rendered manifests against what those values say: exactly one StatefulSet replica on a
ReadWriteOnce volume (or the existing claim / emptyDir asked for), the three gRPC probes on the
numeric port, the restricted security context, a termination grace longer than the drain time,
the app.kubernetes.io labels on every object, the Service ports, and the ServerConfig JSON in the
ConfigMap equal to the one the values describe (computed here independently of the templates).
The optional objects (ServiceMonitor, PrometheusRule, dashboard ConfigMap, NetworkPolicy) must be
present exactly when enabled, with the values' settings. --config-out writes the rendered
retryd.json for `retryd --check-config`.
"""
import argparse
import copy
import json
import os
import sys

import yaml

ap = argparse.ArgumentParser()
ap.add_argument("--chart", required=True)
ap.add_argument("--manifests", required=True)
ap.add_argument("--values", action="append", default=[])
ap.add_argument("--release", default="r")
ap.add_argument("--config-out")
args = ap.parse_args()

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
    return cond


def merge(dst, src):
    """Helm's value merge: maps merge recursively, anything else replaces, null deletes."""
    for k, v in (src or {}).items():
        if v is None:
            dst.pop(k, None)
        elif isinstance(v, dict) and isinstance(dst.get(k), dict):
            merge(dst[k], v)
        else:
            dst[k] = copy.deepcopy(v)
    return dst


with open(os.path.join(args.chart, "values.yaml")) as f:
    values = yaml.safe_load(f)
for vf in args.values:
    with open(vf) as f:
        merge(values, yaml.safe_load(f))
with open(os.path.join(args.chart, "Chart.yaml")) as f:
    chart = yaml.safe_load(f)

with open(args.manifests) as f:
    docs = [d for d in yaml.safe_load_all(f) if d]
by_kind = {}
for d in docs:
    by_kind.setdefault(d["kind"], []).append(d)


def one(kind, name_suffix=""):
    objs = [d for d in by_kind.get(kind, []) if d["metadata"]["name"].endswith(name_suffix)]
    check(len(objs) == 1, f"expected one {kind}{' *' + name_suffix if name_suffix else ''}, found {len(objs)}")
    return objs[0] if objs else {}


name = values.get("fullnameOverride") or (
    args.release if chart["name"] in args.release else f"{args.release}-{values.get('nameOverride') or chart['name']}")
selector = {"app.kubernetes.io/name": values.get("nameOverride") or chart["name"],
            "app.kubernetes.io/instance": args.release}

# Labels on every object, through _helpers.tpl.
for d in docs:
    labels = d["metadata"].get("labels", {})
    what = f"{d['kind']}/{d['metadata']['name']}"
    check(labels.get("helm.sh/chart") == f"{chart['name']}-{chart['version']}", f"{what}: helm.sh/chart label")
    check(labels.get("app.kubernetes.io/managed-by") == "Helm", f"{what}: managed-by label")
    check(labels.get("app.kubernetes.io/instance") == args.release, f"{what}: instance label")
    check(labels.get("app.kubernetes.io/version") == str(chart["appVersion"]), f"{what}: version label")
    if d["kind"] == "Pod":  # the helm test pod must not be selected by the Services
        check("app.kubernetes.io/name" not in labels, f"{what}: test pod carries the selector labels")
    else:
        check(labels.get("app.kubernetes.io/name") == selector["app.kubernetes.io/name"], f"{what}: name label")

# The StatefulSet: one replica, one volume that is ReadWriteOnce.
check(not by_kind.get("Deployment"), "the chart must not render a Deployment")
sts = one("StatefulSet")
spec = sts.get("spec", {})
check(spec.get("replicas") == 1, f"StatefulSet replicas must be 1, got {spec.get('replicas')}")
check(spec.get("selector", {}).get("matchLabels") == selector, "StatefulSet selector must be the stable name+instance")
pod = spec.get("template", {}).get("spec", {})
check(spec.get("template", {}).get("metadata", {}).get("labels", {}).items() >= selector.items(),
      "pod template labels must include the selector labels")
vols = {v["name"]: v for v in pod.get("volumes", [])}
persistence = values["persistence"]
if persistence["enabled"] and not persistence["existingClaim"]:
    vcts = spec.get("volumeClaimTemplates", [])
    check(len(vcts) == 1 and vcts[0]["metadata"]["name"] == "data", "one volumeClaimTemplate named data")
    if vcts:
        vs = vcts[0]["spec"]
        check(vs["accessModes"] == [persistence["accessMode"]] and persistence["accessMode"] != "ReadWriteMany",
              f"claim accessModes {vs['accessModes']}")
        check(vs["resources"]["requests"]["storage"] == persistence["size"], "claim size")
        sc = persistence["storageClass"]
        if sc == "-":
            check(vs.get("storageClassName") == "", "storageClass '-' must render storageClassName: \"\"")
        elif sc:
            check(vs.get("storageClassName") == sc, "claim storageClassName")
        else:
            check("storageClassName" not in vs, "empty storageClass must leave storageClassName unset")
    check(spec.get("persistentVolumeClaimRetentionPolicy") == {"whenDeleted": "Retain", "whenScaled": "Retain"},
          "claims must be retained")
    check("data" not in vols, "data must come from the claim template, not a pod volume")
elif persistence["enabled"]:
    check(vols.get("data", {}).get("persistentVolumeClaim", {}).get("claimName") == persistence["existingClaim"],
          "data must be the existing claim")
    check(not spec.get("volumeClaimTemplates"), "no claim template with an existing claim")
else:
    check("emptyDir" in vols.get("data", {}), "persistence disabled: data must be an emptyDir")

# Security context: Pod Security "restricted".
psc = pod.get("securityContext", {})
check(psc.get("runAsNonRoot") is True, "pod runAsNonRoot")
check(isinstance(psc.get("runAsUser"), int) and psc["runAsUser"] != 0, "pod runAsUser non-zero")
check(psc.get("fsGroup") == psc.get("runAsGroup"), "pod fsGroup (data volume writable by the user)")
check(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", "pod seccompProfile RuntimeDefault")
check(pod.get("automountServiceAccountToken") is False, "no service account token in the pod")
containers = pod.get("containers", [])
check(len(containers) == 1, "one container")
c = containers[0] if containers else {}
sc = c.get("securityContext", {})
check(sc.get("allowPrivilegeEscalation") is False, "container allowPrivilegeEscalation false")
check(sc.get("readOnlyRootFilesystem") is True, "container readOnlyRootFilesystem")
check(sc.get("capabilities", {}).get("drop") == ["ALL"], "container drops ALL capabilities")
check(sc.get("privileged") in (None, False), "container not privileged")
mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
check("/data" in mounts and "/tmp" in mounts, "/data and /tmp mounted (read-only root filesystem)")
check(mounts.get("/etc/retryd", {}).get("readOnly") is True, "config mounted read-only at /etc/retryd")
check("emptyDir" in vols.get("tmp", {}), "/tmp is an emptyDir")
check(vols.get("config", {}).get("configMap", {}).get("name") == name, "config volume is the chart's ConfigMap")
check(c.get("image") == f"{values['image']['repository']}:{values['image']['tag'] or chart['appVersion']}", "image")
check("--config=/etc/retryd/retryd.json" in c.get("args", []), "retryd reads the rendered config")
for extra in values["extraArgs"]:
    check(extra in c.get("args", []), f"extraArgs {extra}")
check(c.get("resources") == values["resources"], "resources as in the values")
ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
check(ports == {"grpc": 50051, "metrics": 9464}, f"container ports {ports}")

# Probes: gRPC on the numeric port.
want_service = {"startupProbe": "", "readinessProbe": "retryd.v1.RetryService", "livenessProbe": ""}
for key, probe_values in (("startupProbe", "startup"), ("readinessProbe", "readiness"), ("livenessProbe", "liveness")):
    pv = values["probes"][probe_values]
    if pv["enabled"]:
        p = c.get(key)
        if check(p, f"{key} missing"):
            check(p.get("grpc") == {"port": 50051, "service": want_service[key]}, f"{key} must be grpc on 50051: {p}")
            for k in ("periodSeconds", "timeoutSeconds", "failureThreshold"):
                if k in pv:
                    check(p.get(k) == pv[k], f"{key}.{k}")
    else:
        check(key not in c, f"{key} disabled in values but rendered")

# Termination grace exceeds the drain time.
grace = float(values["config"]["shutdownGrace"].rstrip("s"))
tgps = pod.get("terminationGracePeriodSeconds")
check(tgps == values["terminationGracePeriodSeconds"] and tgps >= grace + 5,
      f"terminationGracePeriodSeconds {tgps} must be >= shutdownGrace {grace} + 5")

# Services.
svc = one("Service", name)
check(svc.get("spec", {}).get("selector") == selector, "Service selector")
sports = {p["name"]: (p["port"], p["targetPort"]) for p in svc.get("spec", {}).get("ports", [])}
check(sports == {"grpc": (values["service"]["grpcPort"], "grpc"), "metrics": (values["service"]["metricsPort"], "metrics")},
      f"Service ports {sports}")
check(svc.get("spec", {}).get("type") == values["service"]["type"], "Service type")
hl = one("Service", "-headless")
check(hl.get("spec", {}).get("clusterIP") == "None" and spec.get("serviceName") == hl["metadata"]["name"],
      "headless governing Service")

# The ServerConfig JSON equals what the values say.
expected = {
    "grpcAddr": "0.0.0.0:50051", "metricsAddr": "0.0.0.0:9464", "dataDir": "/data",
    "shutdownGrace": values["config"]["shutdownGrace"], "insecureAllowRemote": values["insecureAllowRemote"],
    "logLevel": values["logLevel"],
}
if values["config"]["limits"]:
    expected["limits"] = values["config"]["limits"]
if values["config"]["policies"]:
    expected["policies"] = [dict(p or {}, name=n) for n, p in sorted(values["config"]["policies"].items())]
cm = one("ConfigMap", name)
rendered = json.loads(cm.get("data", {}).get("retryd.json", "null"))
check(rendered == expected, "ConfigMap retryd.json differs from the values:\n  rendered " +
      json.dumps(rendered, sort_keys=True) + "\n  expected " + json.dumps(expected, sort_keys=True))
if args.config_out and rendered is not None:
    with open(args.config_out, "w") as f:
        json.dump(rendered, f, indent=2)

# No Secret is rendered while auth/TLS are unsupported.
check(not by_kind.get("Secret"), "no Secret expected (auth/TLS unsupported)")

# Optional objects.
sm_values = values["metrics"]["serviceMonitor"]
sms = by_kind.get("ServiceMonitor", [])
if check(len(sms) == (1 if sm_values["enabled"] else 0), f"ServiceMonitor count {len(sms)}") and sms:
    sm = sms[0]
    check(sm["metadata"]["labels"].items() >= sm_values["additionalLabels"].items(), "ServiceMonitor additionalLabels")
    check(sm["spec"]["selector"]["matchLabels"] == selector, "ServiceMonitor selects the chart's Service")
    ep = sm["spec"]["endpoints"][0]
    check(ep["port"] == "metrics" and ep["interval"] == sm_values["interval"] and
          ep["scrapeTimeout"] == sm_values["scrapeTimeout"], f"ServiceMonitor endpoint {ep}")
pr_values = values["metrics"]["prometheusRule"]
prs = by_kind.get("PrometheusRule", [])
if check(len(prs) == (1 if pr_values["enabled"] else 0), f"PrometheusRule count {len(prs)}") and prs:
    with open(os.path.join(args.chart, pr_values["rulesFile"])) as f:
        check(prs[0]["spec"]["groups"] == yaml.safe_load(f)["groups"], "PrometheusRule groups equal the rules file")
    check(prs[0]["metadata"]["labels"].items() >= pr_values["additionalLabels"].items(), "PrometheusRule labels")
gd = values["grafanaDashboard"]
dcms = [d for d in by_kind.get("ConfigMap", []) if d["metadata"]["name"] == name + "-dashboard"]
if check(len(dcms) == (1 if gd["enabled"] else 0), f"dashboard ConfigMap count {len(dcms)}") and dcms:
    with open(os.path.join(args.chart, gd["file"])) as f:
        check(json.loads(dcms[0]["data"]["retryd.json"]) == json.load(f), "dashboard JSON equals the file")
    check(dcms[0]["metadata"]["labels"].items() >= gd["labels"].items(), "dashboard sidecar labels")
np_values = values["networkPolicy"]
nps = by_kind.get("NetworkPolicy", [])
if check(len(nps) == (1 if np_values["enabled"] else 0), f"NetworkPolicy count {len(nps)}") and nps:
    check(nps[0]["spec"]["podSelector"]["matchLabels"] == selector, "NetworkPolicy selects the pod")
    check(nps[0]["spec"]["ingress"][0]["from"] == np_values["from"], "NetworkPolicy peers")
sas = by_kind.get("ServiceAccount", [])
check(len(sas) == (1 if values["serviceAccount"]["create"] else 0), "ServiceAccount count")

if failures:
    for f in failures:
        print("FAIL:", f)
    sys.exit(1)
print(f"check_chart: OK ({', '.join(os.path.basename(v) for v in args.values) or 'defaults'}: "
      f"{len(docs)} objects)")
