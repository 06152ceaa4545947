#!/usr/bin/env python3
"""Assertions on manifests rendered by `helm template` from helm/retryd.

usage: check_chart.py --chart DIR --manifests FILE [--values FILE]... [--release NAME]
                      [--namespace NS] [--server-root DIR]

Reads the chart's values.yaml merged with the --values files (as Helm merges them) and checks the
rendered manifests against what those values say: exactly one StatefulSet replica on a
ReadWriteOnce volume (or the existing claim / emptyDir asked for), the three probes (gRPC on the
numeric port, or `retryctl health` over TLS when tls.enabled), the restricted security context (and
the security contexts, resources, affinity, nodeSelector and tolerations as the values give them), a
termination grace longer than the drain time, the app.kubernetes.io labels on every object, the
Service ports, and the ServerConfig JSON in the ConfigMap equal to the one the values describe
(computed here independently of the templates). Auth and TLS: the token Secret (its tokens.json
a valid retryd.v1.AuthConfig equal to auth.tokens) or the existing one, the --auth-file/--tls-*
flags, read-only mounts of both Secrets, the checksum that rolls the pod on a token change, and
no --insecure-allow-remote once callers authenticate. The optional objects (ServiceMonitor,
PrometheusRule, dashboard ConfigMap, NetworkPolicy) must be present exactly when enabled, with the
values' settings.

store.type postgres: instead of the StatefulSet, a Deployment of store.postgres.replicaCount pods
that all serve (RollingUpdate with store.postgres.rollingUpdate), a PodDisruptionBudget as the
values give it, no claim (an emptyDir at /data) and no headless Service, --store=postgres, and the connection
string only as RETRYD_POSTGRES_DSN from the existing Secret's key (no DSN or password anywhere in
the manifests). console.enabled: --console-addr, the container, Service and NetworkPolicy port,
and the Ingress exactly when console.ingress.enabled, with its class, host, path, TLS and
annotations.

--postgres-defaults: the render is of store.type postgres with the chart's defaults otherwise; it
must then give, whatever values.yaml says, what the chart promises for several serving replicas:
at least 2 replicas, a rolling update that keeps every replica serving (maxUnavailable 0, a surge
of at least 1), a PodDisruptionBudget that lets a drain evict, and no claim or volume template.

--server-root DIR lays out what the container would see under /etc/retryd, for running the real
binaries on it: DIR/retryd.json (the ConfigMap), DIR/auth/tokens.json (the chart's Secret, when it
renders one), DIR/args (retryd's arguments, one a line, /etc/retryd/ rewritten to DIR/) and
DIR/commands.json (the probes' and the helm test pod's retryctl commands, rewritten the same way).
Files that come from existing Secrets (auth.existingSecret, tls.existingSecret) are left to the
caller.
"""
import argparse
import copy
import hashlib
import json
import os
import re
import sys

import yaml

ap = argparse.ArgumentParser()
ap.add_argument("--chart", required=True)
ap.add_argument("--manifests", required=True)
ap.add_argument("--values", action="append", default=[])
ap.add_argument("--release", default="r")
ap.add_argument("--namespace", default="retryd")
ap.add_argument("--server-root")
ap.add_argument("--postgres-defaults", action="store_true")
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

# Auth and TLS as the values ask for them.
auth, tls = values["auth"], values["tls"]
auth_on = bool(auth["tokens"] or auth["existingSecret"])
own_secret = bool(auth["tokens"]) and not auth["existingSecret"]
auth_secret = auth["existingSecret"] or f"{name}-auth"
tls_on = tls["enabled"]
client_auth = tls["clientAuth"] if tls_on else "none"
certs_required = client_auth == "require"
authenticated = auth_on or certs_required  # retryd may then listen on 0.0.0.0 without the flag
server_name = tls.get("serverName") or f"{name}.{args.namespace}.svc"

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

store = values["store"]
postgres = store["type"] == "postgres"
pg_values = store["postgres"]
console = values["console"]
if postgres:
    # A Deployment of stateless replicas on PostgreSQL, no claim, a PodDisruptionBudget.
    check(not by_kind.get("StatefulSet"), "store.type postgres must not render a StatefulSet")
    workload = one("Deployment")
    spec = workload.get("spec", {})
    check(spec.get("replicas") == pg_values["replicaCount"],
          f"Deployment replicas {spec.get('replicas')}, expected {pg_values['replicaCount']}")
    ru = pg_values["rollingUpdate"]
    want_strategy = {"type": "RollingUpdate",
                     "rollingUpdate": {"maxUnavailable": ru["maxUnavailable"], "maxSurge": ru["maxSurge"]}}
    check(spec.get("strategy") == want_strategy,
          f"Deployment strategy {spec.get('strategy')}, expected {want_strategy} (every replica serves: updates roll)")
    check("volumeClaimTemplates" not in spec, "no claim template with store.type postgres")
    check(not by_kind.get("PersistentVolumeClaim"), "no PersistentVolumeClaim with store.type postgres")
    pdb_values = pg_values["podDisruptionBudget"]
    pdbs = by_kind.get("PodDisruptionBudget", [])
    if check(len(pdbs) == (1 if pdb_values["enabled"] else 0), f"PodDisruptionBudget count {len(pdbs)}") and pdbs:
        pspec = pdbs[0]["spec"]
        want = ({"maxUnavailable": pdb_values["maxUnavailable"]} if pdb_values["maxUnavailable"] != ""
                else {"minAvailable": pdb_values["minAvailable"]})
        check({k: v for k, v in pspec.items() if k != "selector"} == want, f"PodDisruptionBudget {pspec}, expected {want}")
        check(pspec.get("selector", {}).get("matchLabels") == selector, "PodDisruptionBudget selects the pods")
        check(pdbs[0]["metadata"]["name"] == name, "PodDisruptionBudget name")
    want_spread = ([{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
                     "labelSelector": {"matchLabels": selector}}] if pg_values["spreadAcrossNodes"] else None)
    check(spec.get("template", {}).get("spec", {}).get("topologySpreadConstraints") == want_spread,
          f"topologySpreadConstraints {spec.get('template', {}).get('spec', {}).get('topologySpreadConstraints')}, expected {want_spread}")
else:
    # The StatefulSet: one replica, one volume that is ReadWriteOnce.
    check(not by_kind.get("Deployment"), "store.type sqlite must not render a Deployment")
    check(not by_kind.get("PodDisruptionBudget"), "store.type sqlite must not render a PodDisruptionBudget")
    workload = one("StatefulSet")
    spec = workload.get("spec", {})
    check(spec.get("replicas") == 1, f"StatefulSet replicas must be 1, got {spec.get('replicas')}")
    check("topologySpreadConstraints" not in spec.get("template", {}).get("spec", {}), "no spread constraint for one pod")
check(spec.get("selector", {}).get("matchLabels") == selector, "workload selector must be the stable name+instance")
pod = spec.get("template", {}).get("spec", {})
check(spec.get("template", {}).get("metadata", {}).get("labels", {}).items() >= selector.items(),
      "pod template labels must include the selector labels")
vols = {v["name"]: v for v in pod.get("volumes", [])}
persistence = values["persistence"]
if postgres:
    check(vols.get("data") == {"name": "data", "emptyDir": {}}, f"store.type postgres: /data must be an emptyDir: {vols.get('data')}")
elif persistence["enabled"] and not persistence["existingClaim"]:
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
want_args = ["--config=/etc/retryd/retryd.json", f"--log-format={values['logFormat']}"]
if auth_on:
    want_args.append("--auth-file=/etc/retryd/auth/tokens.json")
if tls_on:
    want_args += ["--tls-cert=/etc/retryd/tls/tls.crt", "--tls-key=/etc/retryd/tls/tls.key"]
    if client_auth != "none":
        want_args += ["--tls-client-ca=/etc/retryd/tls/ca.crt", f"--tls-client-auth={client_auth}"]
if postgres:
    want_args.append("--store=postgres")
if console["enabled"]:
    want_args.append(f"--console-addr=0.0.0.0:{console['port']}")
want_args += values["extraArgs"]
check(c.get("args") == want_args, f"retryd args {c.get('args')}, expected {want_args}")
if authenticated:
    check(not any(a.startswith("--insecure-allow-remote") for a in c.get("args", [])),
          "--insecure-allow-remote passed although callers authenticate")
check(c.get("resources") == values["resources"], "resources as in the values")
# The schema-checked objects render exactly as the values give them (empty ones not at all).
check(psc == values["podSecurityContext"], "pod securityContext as in the values")
check(sc == values["securityContext"], "container securityContext as in the values")
for key in ("affinity", "nodeSelector", "tolerations"):
    check(pod.get(key) == (values[key] or None), f"{key} as in the values")
ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
want_ports = {"grpc": 50051, "metrics": 9464}
if console["enabled"]:
    want_ports["console"] = console["port"]
check(ports == want_ports, f"container ports {ports}, expected {want_ports}")
# The environment: the DSN from the existing Secret (postgres), then extraEnv.
want_env = []
if postgres:
    want_env.append({"name": "RETRYD_POSTGRES_DSN", "valueFrom": {"secretKeyRef": {
        "name": pg_values["existingSecret"], "key": pg_values["secretKey"]}}})
want_env += values["extraEnv"]
check(c.get("env", []) == want_env, f"container env {c.get('env')}, expected {want_env}")
# No connection string in clear anywhere: it only comes from the Secret.
for d in docs:
    check(not re.search(r"postgres(ql)?://|password=", json.dumps(d)),
          f"{d['kind']}/{d['metadata']['name']}: a connection string in clear")

# Secret volumes: tokens (only the tokens.json key) and the TLS Secret, both mounted read-only.
if auth_on:
    check(mounts.get("/etc/retryd/auth", {}).get("name") == "auth" and
          mounts["/etc/retryd/auth"].get("readOnly") is True, "tokens mounted read-only at /etc/retryd/auth")
    check(vols.get("auth", {}).get("secret") == {
        "secretName": auth_secret, "items": [{"key": "tokens.json", "path": "tokens.json"}]},
        f"auth volume must be Secret {auth_secret} (tokens.json): {vols.get('auth')}")
else:
    check("auth" not in vols and "/etc/retryd/auth" not in mounts, "auth volume without tokens")
if tls_on:
    check(mounts.get("/etc/retryd/tls", {}).get("name") == "tls" and
          mounts["/etc/retryd/tls"].get("readOnly") is True, "TLS Secret mounted read-only at /etc/retryd/tls")
    check(vols.get("tls", {}).get("secret") == {"secretName": tls["existingSecret"]},
          f"tls volume must be Secret {tls['existingSecret']}: {vols.get('tls')}")
else:
    check("tls" not in vols and "/etc/retryd/tls" not in mounts, "tls volume without tls.enabled")


def health_command(server, timeout, service):
    """retryctl health as the chart must run it (probes under TLS, the helm test pod)."""
    cmd = ["/usr/local/bin/retryctl", "--server", server, "--timeout", f"{timeout}s"]
    if tls_on:
        cmd += ["--tls", "--tls-ca", "/etc/retryd/tls/ca.crt", "--tls-server-name", server_name]
        if certs_required:  # the pod's own certificate is the probe's client certificate
            cmd += ["--tls-cert", "/etc/retryd/tls/tls.crt", "--tls-key", "/etc/retryd/tls/tls.key"]
    cmd.append("health")
    if service:
        cmd += ["--service-name", service]
    return cmd


# Probes: gRPC on the numeric port in plaintext; with TLS, exec `retryctl health` over TLS (the
# kubelet's gRPC probe can neither verify the certificate nor present one).
want_service = {"startupProbe": "", "readinessProbe": "retryd.v1.RetryService", "livenessProbe": ""}
commands = []  # for --server-root: what each probe runs, as a retryctl command
for key, probe_values in (("startupProbe", "startup"), ("readinessProbe", "readiness"), ("livenessProbe", "liveness")):
    pv = values["probes"][probe_values]
    if pv["enabled"]:
        p = c.get(key)
        if check(p, f"{key} missing"):
            want_cmd = health_command("127.0.0.1:50051", pv["timeoutSeconds"], want_service[key])
            if tls_on:
                check("grpc" not in p and p.get("exec") == {"command": want_cmd},
                      f"{key} must exec {want_cmd} under TLS: {p}")
            else:
                check("exec" not in p and p.get("grpc") == {"port": 50051, "service": want_service[key]},
                      f"{key} must be grpc on 50051: {p}")
            # A plaintext gRPC probe asks what this plaintext command asks.
            commands.append({"name": key, "command": want_cmd})
            for k in ("periodSeconds", "timeoutSeconds", "failureThreshold"):
                if k in pv:
                    check(p.get(k) == pv[k], f"{key}.{k}")
    else:
        check(key not in c, f"{key} disabled in values but rendered")

# The helm test pod: retryctl health against the Service, over TLS as the probes are.
pods = [d for d in by_kind.get("Pod", []) if d["metadata"]["name"] == f"{name}-test-health"]
if check(len(pods) == 1, f"one helm test pod, found {len(pods)}"):
    tpod = pods[0]["spec"]
    tc = tpod["containers"][0]
    want_cmd = health_command(f"{name}.{args.namespace}.svc:{values['service']['grpcPort']}", 5, "")
    check(tc.get("command") == want_cmd, f"helm test command {tc.get('command')}, expected {want_cmd}")
    commands.append({"name": "helm-test", "command": want_cmd})
    tmounts = {m["mountPath"]: m for m in tc.get("volumeMounts", [])}
    tvols = {v["name"]: v for v in tpod.get("volumes", [])}
    if tls_on:
        check(tmounts.get("/etc/retryd/tls", {}).get("readOnly") is True and
              tvols.get("tls", {}).get("secret") == {"secretName": tls["existingSecret"]},
              "helm test pod mounts the TLS Secret read-only")
    else:
        check(not tmounts and not tvols, "helm test pod has no volumes without TLS")

# Termination grace exceeds the drain time.
grace = float(values["config"]["shutdownGrace"].rstrip("s"))
tgps = pod.get("terminationGracePeriodSeconds")
check(tgps == values["terminationGracePeriodSeconds"] and tgps >= grace + 5,
      f"terminationGracePeriodSeconds {tgps} must be >= shutdownGrace {grace} + 5")

# Services.
svc = one("Service", name)
check(svc.get("spec", {}).get("selector") == selector, "Service selector")
sports = {p["name"]: (p["port"], p["targetPort"]) for p in svc.get("spec", {}).get("ports", [])}
want_sports = {"grpc": (values["service"]["grpcPort"], "grpc"), "metrics": (values["service"]["metricsPort"], "metrics")}
if console["enabled"]:
    want_sports["console"] = (console["port"], "console")
check(sports == want_sports, f"Service ports {sports}, expected {want_sports}")
check(svc.get("spec", {}).get("type") == values["service"]["type"], "Service type")
if postgres:
    check(not [d for d in by_kind.get("Service", []) if d["metadata"]["name"].endswith("-headless")],
          "no headless Service without a StatefulSet")
else:
    hl = one("Service", "-headless")
    check(hl.get("spec", {}).get("clusterIP") == "None" and spec.get("serviceName") == hl["metadata"]["name"],
          "headless governing Service")

# The console's Ingress, exactly when enabled.
ing_values = console["ingress"]
ings = by_kind.get("Ingress", [])
if check(len(ings) == (1 if console["enabled"] and ing_values["enabled"] else 0), f"Ingress count {len(ings)}") and ings:
    ing = ings[0]
    ispec = ing["spec"]
    check(ing["metadata"]["name"] == f"{name}-console", "Ingress name")
    check(ing["metadata"].get("annotations", {}) == ing_values["annotations"], "Ingress annotations")
    check(ispec.get("ingressClassName") == (ing_values["className"] or None), "Ingress class")
    want_rule = {"host": ing_values["host"], "http": {"paths": [{
        "path": ing_values["path"], "pathType": ing_values["pathType"],
        "backend": {"service": {"name": name, "port": {"name": "console"}}}}]}}
    check(ispec.get("rules") == [want_rule], f"Ingress rules {ispec.get('rules')}, expected {[want_rule]}")
    want_tls = ([{"hosts": [ing_values["host"]], "secretName": ing_values["tls"]["secretName"]}]
                if ing_values["tls"]["enabled"] else None)
    check(ispec.get("tls") == want_tls, f"Ingress tls {ispec.get('tls')}, expected {want_tls}")

# The ServerConfig JSON equals what the values say.
expected = {
    "grpcAddr": "0.0.0.0:50051", "metricsAddr": "0.0.0.0:9464", "dataDir": "/data",
    "shutdownGrace": values["config"]["shutdownGrace"],
    "insecureAllowRemote": values["insecureAllowRemote"] and not authenticated,
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


def check_auth_config(doc):
    """Checks `doc` as retryd.v1.AuthConfig JSON the way retryd's TokenTable does."""
    if not check(isinstance(doc, dict) and set(doc) == {"tokens"} and isinstance(doc["tokens"], list),
                 f"tokens.json must be {{\"tokens\": [...]}}: {doc}"):
        return
    names, digests = set(), set()
    for i, t in enumerate(doc["tokens"]):
        where = f"tokens.json tokens[{i}]"
        check(set(t) <= {"name", "sha256", "role", "services"}, f"{where}: unknown fields {sorted(t)}")
        check(re.fullmatch(r"[A-Za-z0-9._:@-]{1,64}", t.get("name", "")) and t["name"] not in names,
              f"{where}.name: {t.get('name')!r} invalid or duplicate")
        check(re.fullmatch(r"[0-9a-f]{64}", t.get("sha256", "")) and t["sha256"] not in digests,
              f"{where}.sha256: not 64 hex digits, or a duplicate")
        check(t.get("role") in ("WORKER", "OPERATOR"), f"{where}.role: {t.get('role')!r}")
        services = t.get("services", [])
        check(not services or t.get("role") == "WORKER", f"{where}.services: only for WORKER")
        for svc_name in services:
            check(re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,63}(\.\*)?", svc_name), f"{where}.services: {svc_name!r}")
        names.add(t.get("name"))
        digests.add(t.get("sha256"))


# The token Secret: rendered only from auth.tokens; tokens.json an AuthConfig equal to the values.
secrets = by_kind.get("Secret", [])
tokens_json = None
annotations = spec.get("template", {}).get("metadata", {}).get("annotations", {})
if own_secret:
    if check(len(secrets) == 1 and secrets[0]["metadata"]["name"] == auth_secret,
             f"expected one Secret {auth_secret}, found {[d['metadata']['name'] for d in secrets]}"):
        data = secrets[0].get("stringData", {})
        check(set(data) == {"tokens.json"}, f"the Secret holds only tokens.json: {sorted(data)}")
        tokens_json = data.get("tokens.json", "null")
        doc = json.loads(tokens_json)
        check_auth_config(doc)
        want_tokens = [dict(t, name=n) for n, t in sorted(auth["tokens"].items())]
        check(doc == {"tokens": want_tokens}, f"tokens.json {doc} differs from auth.tokens {want_tokens}")
        check(annotations.get("checksum/auth") == hashlib.sha256(tokens_json.encode()).hexdigest(),
              "checksum/auth must be the SHA-256 of tokens.json (a token change rolls the pod)")
else:
    check(not secrets, f"no Secret expected without auth.tokens: {[d['metadata']['name'] for d in secrets]}")
    check("checksum/auth" not in annotations, "checksum/auth only for the chart's own Secret")

if args.server_root and rendered is not None:
    root = args.server_root.rstrip("/")

    def local(arg):
        return arg.replace("/etc/retryd/", root + "/")

    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "retryd.json"), "w") as f:
        json.dump(rendered, f, indent=2)
    if tokens_json is not None:
        os.makedirs(os.path.join(root, "auth"), exist_ok=True)
        with open(os.path.join(root, "auth", "tokens.json"), "w") as f:
            f.write(tokens_json)
    with open(os.path.join(root, "args"), "w") as f:
        f.write("".join(local(a) + "\n" for a in c.get("args", [])))
    with open(os.path.join(root, "commands.json"), "w") as f:
        json.dump([{"name": cmd["name"], "command": [local(a) for a in cmd["command"]]} for cmd in commands],
                  f, indent=2)

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
    want_np_ports = [{"port": p, "protocol": "TCP"} for p in ["grpc", "metrics"] + (["console"] if console["enabled"] else [])]
    check(nps[0]["spec"]["ingress"][0]["ports"] == want_np_ports, f"NetworkPolicy ports {nps[0]['spec']['ingress'][0]['ports']}")
sas = by_kind.get("ServiceAccount", [])
check(len(sas) == (1 if values["serviceAccount"]["create"] else 0), "ServiceAccount count")

# The chart's defaults for store.type postgres, checked against literals rather than values.yaml
# (a changed default must fail here, not pass because the render follows it).
if args.postgres_defaults:
    check(postgres, "--postgres-defaults needs a render with store.type postgres")
    deps = by_kind.get("Deployment", [])
    dspec = deps[0].get("spec", {}) if deps else {}
    check(isinstance(dspec.get("replicas"), int) and dspec["replicas"] >= 2,
          f"default replicas {dspec.get('replicas')}: at least 2, so one pod's loss leaves one serving")
    strategy = dspec.get("strategy", {})
    ru_out = strategy.get("rollingUpdate", {})
    check(strategy.get("type") == "RollingUpdate" and ru_out.get("maxUnavailable") == 0
          and isinstance(ru_out.get("maxSurge"), int) and ru_out["maxSurge"] >= 1,
          f"default strategy {strategy}: RollingUpdate with maxUnavailable 0 and maxSurge >= 1 keeps every replica serving")
    pdbs = by_kind.get("PodDisruptionBudget", [])
    if check(len(pdbs) == 1, f"default PodDisruptionBudget count {len(pdbs)}, expected 1 (every replica is ready)"):
        pspec = pdbs[0].get("spec", {})
        lets_go = (isinstance(pspec.get("maxUnavailable"), int) and pspec["maxUnavailable"] >= 1) or (
            isinstance(pspec.get("minAvailable"), int) and pspec["minAvailable"] < dspec.get("replicas", 0))
        check(lets_go, f"default PodDisruptionBudget {pspec} must let a drain evict a pod")
    check(not by_kind.get("StatefulSet") and not by_kind.get("PersistentVolumeClaim")
          and "volumeClaimTemplates" not in dspec, "no StatefulSet, claim or claim template by default")
    pvols = dspec.get("template", {}).get("spec", {}).get("volumes", [])
    check(not [v for v in pvols if "persistentVolumeClaim" in v], f"no claim mounted by default: {pvols}")

if failures:
    for f in failures:
        print("FAIL:", f)
    sys.exit(1)
print(f"check_chart: OK ({', '.join(os.path.basename(v) for v in args.values) or 'defaults'}: "
      f"{len(docs)} objects)")
