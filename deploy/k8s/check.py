#!/usr/bin/env python3
"""Renders the kustomize overlays and checks them against the services.

No cluster is needed. The renderer implements the subset of kustomize these
manifests use (resources, namespace, images, strategic-merge patches by
kind/name, secretGenerator without name hashes) and refuses anything else;
when `kubectl` is installed, its `kubectl kustomize` output must equal ours.

Checks, per overlay:
- probes: liveness GET /healthz and readiness GET /readyz (routes of
  services/lib/runtime/src/admin.rs) on the container port that the service's
  *_ADMIN_ADDR variable listens on;
- every CITYBRAIN_* variable a container receives (env, envFrom) is read by
  its binary (services/<crate>/src or the shared libraries in services/lib);
- every ConfigMap and Secret referenced exists with the keys used, unless the
  overlay declares it external (created from the operators' vault);
- selectors of Deployments, Services and PodDisruptionBudgets match pod
  labels; HPAs target existing Deployments; ingest has an HPA;
- sink replicas <= its citybrain.io/topic-partitions annotation, a PDB covers
  the sink, and no HPA scales it;
- resources (cpu/memory requests, memory limit) and a non-root user on every
  container; the API key file path lies in a mounted Secret.
Usage: check.py [overlay ...] (default: every overlay). Exits 1 on problems.
"""
import base64
import copy
import hashlib
import pathlib
import re
import shutil
import subprocess
import sys
import tomllib

import yaml

K8S = pathlib.Path(__file__).resolve().parent
ROOT = K8S.parents[1]
BINARIES = {"citybrain-ingest": "ingest", "citybrain-sink": "sink",
            "citybrain-query": "query", "citybrain-simulator": "simulator"}
SERVES_ADMIN = {"citybrain-ingest", "citybrain-sink", "citybrain-query"}
# Secrets the overlay expects to exist in the namespace, made outside git.
EXTERNAL_SECRETS = {
    "staging": {"citybrain-clickhouse": {"sink-password", "query-password"}},
    "production": {
        "citybrain-clickhouse": {"sink-password", "query-password"},
        "citybrain-api-keys": {"api-keys.toml"},
    },
}
KUSTOMIZATION_FIELDS = {"apiVersion", "kind", "resources", "namespace", "images",
                        "patches", "secretGenerator", "generatorOptions"}


class Unsupported(Exception):
    pass


# --- rendering ---------------------------------------------------------------

def merge(base, patch):
    """Strategic merge as kustomize does it for these manifests: maps merge,
    lists of named maps (containers, env, ports, volumes) merge by name,
    volumeMounts by mountPath, other lists are replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            out[key] = merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    if isinstance(base, list) and isinstance(patch, list) and patch and all(isinstance(i, dict) for i in patch + base):
        key = "name" if all("name" in i for i in patch + base) else \
              "mountPath" if all("mountPath" in i for i in patch + base) else None
        if key:
            out = [copy.deepcopy(i) for i in base]
            for item in patch:
                match = [n for n, b in enumerate(out) if b[key] == item[key]]
                if match:
                    out[match[0]] = merge(out[match[0]], item)
                else:
                    out.append(copy.deepcopy(item))
            return out
    return copy.deepcopy(patch)


def load_docs(path):
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def render(folder):
    kust = yaml.safe_load((folder / "kustomization.yaml").read_text())
    extra = set(kust) - KUSTOMIZATION_FIELDS
    if extra:
        raise Unsupported(f"{folder}: kustomization fields {sorted(extra)} are not implemented in check.py")
    objects = []
    for resource in kust.get("resources", []):
        path = (folder / resource).resolve()
        objects += render(path) if path.is_dir() else load_docs(path)
    options = kust.get("generatorOptions", {})
    for gen in kust.get("secretGenerator", []):
        if not options.get("disableNameSuffixHash"):
            raise Unsupported(f"{folder}: secretGenerator needs generatorOptions.disableNameSuffixHash: true")
        data = {}
        for entry in gen.get("files", []):
            key, _, file = entry.partition("=") if "=" in entry else (pathlib.Path(entry).name, "", entry)
            data[key] = base64.b64encode((folder / file).read_bytes()).decode()
        for entry in gen.get("literals", []):
            key, value = entry.split("=", 1)
            data[key] = base64.b64encode(value.encode()).decode()
        objects.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": gen["name"]},
                        "type": gen.get("type", "Opaque"), "data": data})
    for patch in kust.get("patches", []):
        if set(patch) != {"path"}:
            raise Unsupported(f"{folder}: only `patches: - path:` (strategic merge) is implemented")
        for doc in load_docs(folder / patch["path"]):
            target = [o for o in objects if o["kind"] == doc["kind"]
                      and o["metadata"]["name"] == doc["metadata"]["name"]]
            if len(target) != 1:
                raise Unsupported(f"{folder / patch['path']}: {doc['kind']}/{doc['metadata']['name']} matches {len(target)} objects")
            objects[objects.index(target[0])] = merge(target[0], doc)
    for image in kust.get("images", []):
        for obj in objects:
            for container in pod_containers(obj):
                name, _, _ = container["image"].partition(":")
                if name == image["name"]:
                    container["image"] = f"{image.get('newName', name)}:{image['newTag']}"
    if "namespace" in kust:
        for obj in objects:
            obj["metadata"]["namespace"] = kust["namespace"]
    return objects


def pod_spec(obj):
    return obj.get("spec", {}).get("template", {}).get("spec") if obj["kind"] == "Deployment" else None


def pod_containers(obj):
    spec = pod_spec(obj)
    return spec.get("containers", []) if spec else []


def canonical(objects):
    out = []
    for obj in objects:
        if obj["kind"] == "Secret":
            # kustomize folds long base64 lines; the value is the same.
            obj = dict(obj, data={k: re.sub(r"\s", "", v) for k, v in obj.get("data", {}).items()})
        out.append(yaml.safe_dump(obj, sort_keys=True, width=float("inf")))
    return sorted(out)


def kubectl_render(folder):
    if not shutil.which("kubectl"):
        return None
    out = subprocess.run(["kubectl", "kustomize", str(folder)], capture_output=True, text=True)
    if out.returncode != 0:
        raise Unsupported(f"kubectl kustomize {folder} failed: {out.stderr.strip()}")
    return [d for d in yaml.safe_load_all(out.stdout) if d]


# --- checks ------------------------------------------------------------------

def env_vars_read(crate):
    text = ""
    for folder in (ROOT / "services" / crate / "src", ROOT / "services/lib"):
        text += "".join(p.read_text() for p in folder.rglob("*.rs"))
    return set(re.findall(r'"(CITYBRAIN_[A-Z0-9_]+)"', text))


def admin_routes():
    return set(re.findall(r'\.route\("(/[a-z]+)"', (ROOT / "services/lib/runtime/src/admin.rs").read_text()))


def check(overlay, objects):
    problems = []
    say = problems.append
    by = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    external = EXTERNAL_SECRETS.get(overlay, {})
    routes = admin_routes()
    deployments = [o for o in objects if o["kind"] == "Deployment"]

    def labels_match(selector, labels):
        return all(labels.get(k) == v for k, v in selector.items())

    def config_data(name):
        obj = by.get(("ConfigMap", name))
        return None if obj is None else obj.get("data", {})

    def secret_keys(name):
        if name in external:
            return external[name]
        obj = by.get(("Secret", name))
        return None if obj is None else set(obj.get("data", {})) | set(obj.get("stringData", {}))

    for dep in deployments:
        name = dep["metadata"]["name"]
        spec = dep["spec"]
        pod_labels = spec["template"]["metadata"].get("labels", {})
        if not labels_match(spec["selector"]["matchLabels"], pod_labels):
            say(f"{name}: selector {spec['selector']['matchLabels']} does not match its pod labels {pod_labels}")
        pod = pod_spec(dep)
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        if not pod.get("securityContext", {}).get("runAsNonRoot"):
            say(f"{name}: pods do not set runAsNonRoot")
        for container in pod["containers"]:
            where = f"{name}/{container['name']}"
            binary = (container.get("command") or [None])[0]
            if binary not in BINARIES:
                say(f"{where}: command {container.get('command')} is not a citybrain binary")
                continue
            env = {}
            for e in container.get("env", []):
                env[e["name"]] = e.get("value")
                ref = e.get("valueFrom", {}).get("secretKeyRef") or e.get("valueFrom", {}).get("configMapKeyRef")
                if ref:
                    kind = "Secret" if "secretKeyRef" in e["valueFrom"] else "ConfigMap"
                    keys = secret_keys(ref["name"]) if kind == "Secret" else set(config_data(ref["name"]) or {})
                    if keys is None or (kind == "ConfigMap" and config_data(ref["name"]) is None):
                        say(f"{where}: {e['name']} refers to {kind} {ref['name']}, which is neither rendered nor declared external")
                    elif ref["key"] not in keys:
                        say(f"{where}: {e['name']} refers to key {ref['key']!r} missing from {kind} {ref['name']}")
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    data = config_data(source["configMapRef"]["name"])
                    if data is None:
                        say(f"{where}: envFrom ConfigMap {source['configMapRef']['name']} does not exist")
                        continue
                    env.update(data)
                else:
                    say(f"{where}: envFrom {list(source)} is not checked; use configMapRef")
            read = env_vars_read(BINARIES[binary])
            for var in env:
                if var.startswith("CITYBRAIN_") and var not in read:
                    say(f"{where}: sets {var}, which {binary} never reads")
                elif not var.startswith("CITYBRAIN_") and var != "RUST_LOG":
                    say(f"{where}: sets {var}, which is not a citybrain setting")
            resources = container.get("resources", {})
            if not {"cpu", "memory"} <= set(resources.get("requests", {})) or "memory" not in resources.get("limits", {}):
                say(f"{where}: needs cpu/memory requests and a memory limit")
            mounts = container.get("volumeMounts", [])
            for mount in mounts:
                if mount["name"] not in volumes:
                    say(f"{where}: mounts volume {mount['name']}, which the pod does not define")
            for vol in volumes.values():
                if "secret" in vol and secret_keys(vol["secret"]["secretName"]) is None:
                    say(f"{name}: volume {vol['name']} uses Secret {vol['secret']['secretName']}, which is neither rendered nor declared external")
                if "configMap" in vol and config_data(vol["configMap"]["name"]) is None:
                    say(f"{name}: volume {vol['name']} uses ConfigMap {vol['configMap']['name']}, which does not exist")
            for var, path in env.items():
                if not var.endswith("_API_KEYS"):
                    continue
                mount = [m for m in mounts if path and path.startswith(m["mountPath"].rstrip("/") + "/")]
                secret = volumes.get(mount[0]["name"], {}).get("secret") if mount else None
                if not secret:
                    say(f"{where}: {var}={path} is not inside a mounted Secret")
                    continue
                file = path[len(mount[0]["mountPath"].rstrip("/")) + 1:]
                keys = secret_keys(secret["secretName"])
                if keys is not None and file not in keys:
                    say(f"{where}: {var} reads {file}, which Secret {secret['secretName']} does not hold")
                rendered = by.get(("Secret", secret["secretName"]))
                if rendered and file in rendered.get("data", {}):
                    check_key_file(where, base64.b64decode(rendered["data"][file]).decode(), env, objects, say)
            if binary in SERVES_ADMIN:
                admin_var = next((v for v in env if v.endswith("_ADMIN_ADDR")), None)
                if not admin_var or not env[admin_var]:
                    say(f"{where}: no *_ADMIN_ADDR set, so the admin port is loopback only")
                    continue
                host, port = env[admin_var].rsplit(":", 1)
                if host in ("127.0.0.1", "localhost", "::1"):
                    say(f"{where}: {admin_var}={env[admin_var]} is unreachable for probes")
                ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
                for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
                    get = container.get(probe, {}).get("httpGet")
                    if not get:
                        say(f"{where}: no {probe} with httpGet")
                        continue
                    probe_port = ports.get(get["port"], get["port"])
                    if probe_port != int(port):
                        say(f"{where}: {probe} targets port {get['port']} ({probe_port}) but the admin server listens on {port}")
                    if get["path"] != path or get["path"] not in routes:
                        say(f"{where}: {probe} path {get['path']} should be {path} (admin routes: {sorted(routes)})")

    for obj in objects:
        kind, name = obj["kind"], obj["metadata"]["name"]
        if kind in ("Service", "PodDisruptionBudget"):
            selector = obj["spec"]["selector"] if kind == "Service" else obj["spec"]["selector"]["matchLabels"]
            if not any(labels_match(selector, d["spec"]["template"]["metadata"]["labels"]) for d in deployments):
                say(f"{kind} {name}: selector {selector} matches no pods")
            if kind == "Service":
                for port in obj["spec"].get("ports", []):
                    target = port.get("targetPort", port["port"])
                    pods = [d for d in deployments if labels_match(selector, d["spec"]["template"]["metadata"]["labels"])]
                    names = {p.get("name") for d in pods for c in pod_containers(d) for p in c.get("ports", [])}
                    numbers = {p["containerPort"] for d in pods for c in pod_containers(d) for p in c.get("ports", [])}
                    if target not in names | numbers:
                        say(f"Service {name}: targetPort {target} is not a port of its pods")
        if kind == "HorizontalPodAutoscaler":
            ref = obj["spec"]["scaleTargetRef"]
            if (ref["kind"], ref["name"]) not in by:
                say(f"HPA {name}: targets {ref['kind']} {ref['name']}, which does not exist")
            if obj["spec"]["minReplicas"] > obj["spec"]["maxReplicas"]:
                say(f"HPA {name}: minReplicas above maxReplicas")

    hpa_targets = {o["spec"]["scaleTargetRef"]["name"] for o in objects if o["kind"] == "HorizontalPodAutoscaler"}
    pdbs = [o for o in objects if o["kind"] == "PodDisruptionBudget"]
    for dep in deployments:
        binary = (pod_containers(dep)[0].get("command") or [None])[0]
        name = dep["metadata"]["name"]
        labels = dep["spec"]["template"]["metadata"]["labels"]
        if binary == "citybrain-ingest" and name not in hpa_targets:
            say(f"{name}: ingest has no HorizontalPodAutoscaler")
        if binary == "citybrain-sink":
            partitions = dep["metadata"].get("annotations", {}).get("citybrain.io/topic-partitions")
            if partitions is None:
                say(f"{name}: no citybrain.io/topic-partitions annotation to bound replicas")
            elif dep["spec"]["replicas"] > int(partitions):
                say(f"{name}: {dep['spec']['replicas']} replicas but topics have {partitions} partitions")
            if name in hpa_targets:
                say(f"{name}: the sink must not be autoscaled (replicas are bounded by partitions)")
            if not any(labels_match(p["spec"]["selector"]["matchLabels"], labels) for p in pdbs):
                say(f"{name}: no PodDisruptionBudget covers the sink")
    return problems


def check_key_file(where, text, env, objects, say):
    keys = tomllib.loads(text).get("keys", [])
    if env.get("CITYBRAIN_ENV") == "production" and any("key" in k for k in keys):
        say(f"{where}: the API key file has keys in clear, which production refuses")
    digests = {k.get("sha256") for k in keys}
    for obj in objects:
        if obj["kind"] != "Secret":
            continue
        encoded = obj.get("data", {}).get("CITYBRAIN_SIMULATOR_API_KEY")
        if encoded and hashlib.sha256(base64.b64decode(encoded)).hexdigest() not in digests:
            say(f"{where}: the simulator's API key (Secret {obj['metadata']['name']}) is not in the key file")


def main():
    overlays = sys.argv[1:] or sorted(p.name for p in (K8S / "overlays").iterdir() if p.is_dir())
    failed = False
    for overlay in overlays:
        folder = K8S / "overlays" / overlay
        try:
            objects = render(folder)
            theirs = kubectl_render(folder)
        except Unsupported as err:
            print(f"{overlay}: {err}")
            failed = True
            continue
        problems = check(overlay, objects)
        if theirs is not None and canonical(theirs) != canonical(objects):
            ours, kube = set(canonical(objects)), set(canonical(theirs))
            problems.append(f"render differs from kubectl kustomize: {len(ours - kube)} objects only ours, {len(kube - ours)} only kubectl's")
            for doc in sorted(ours ^ kube)[:2]:
                problems.append("  " + doc.replace("\n", "\n  ")[:1500])
        for p in problems:
            print(f"{overlay}: {p}")
        cross = "compared with kubectl kustomize" if theirs is not None else "kubectl absent, not compared"
        print(f"{overlay}: {len(objects)} objects, {len(problems)} problems ({cross})")
        failed |= bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
